import type { NatsConnection } from "@nats-io/transport-node";

/**
 * JetStream's STREAM.INFO, asked as a plain request: nats.js's
 * `streams.info` reads every page of subjects at once, and a sidecar may
 * only send the request itself (secure mode's imports, docs/security.md).
 * Sidecars list a KV bucket's keys with it (`subjects_filter`), and so does
 * control for them when they cannot (the `keys` verb, docs/multi-region.md).
 */

/** The parts of a STREAM.INFO answer the mesh reads. */
export interface StreamInfoReply {
  error?: { code: number; err_code: number; description: string };
  /** subjects matching the filter, in all pages */
  total?: number;
  state?: { last_seq: number; subjects?: Record<string, number> };
}

/** JetStream's error code for a stream that does not exist. */
export const STREAM_NOT_FOUND = 10059;

/**
 * Subjects one answer holds at most (nats-server's JSMaxSubjectDetails).
 * From `offset` on, or when there are more, the server sorts them (byte
 * order) and pages; a single page comes unsorted.
 */
export const SUBJECTS_PAGE = 100_000;

/** STREAM.INFO of `stream` on the JetStream API at `api` (`$JS.API`, or secure mode's import). A JetStream error is in `error`. */
export async function requestStreamInfo(nc: NatsConnection, api: string, stream: string, body: Record<string, unknown>, timeoutMs: number): Promise<StreamInfoReply> {
  return (await nc.request(`${api}.STREAM.INFO.${stream}`, JSON.stringify(body), { timeout: timeoutMs })).json<StreamInfoReply>();
}

/** The `subjects_filter` of the keys of KV bucket `bucket` under `filter` (`>` = all). */
export function kvSubjectsFilter(bucket: string, filter: string): string {
  return `$KV.${bucket}.${filter}`;
}

/**
 * The keys of KV bucket `bucket` in one answer, sorted as the server sorts
 * its pages: for ASCII, which every KV key is, UTF-16 order is byte order.
 */
export function kvKeysIn(reply: StreamInfoReply, bucket: string): string[] {
  const prefix = kvSubjectsFilter(bucket, "");
  return Object.keys(reply.state?.subjects ?? {})
    .map((s) => s.slice(prefix.length))
    .sort();
}
