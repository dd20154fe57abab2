import type { Msg, MsgHdrs, NatsConnection } from "@nats-io/transport-node";

/**
 * Reading a KV bucket's stream with the two JetStream calls that never make
 * the server publish anywhere but the asker's own inbox, asked as plain
 * requests: `STREAM.INFO` (the keys, by `subjects_filter`) and `DIRECT.GET`
 * (a value). A sidecar may send nothing else (secure mode's imports,
 * docs/security.md), and nats.js's `streams.info` reads every page of
 * subjects at once. Control reads the same way for a sidecar that cannot
 * (the `keys` verb, docs/multi-region.md).
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

/** The subject of `key` in KV bucket `bucket`; a filter (`*`, `>`) gives a `subjects_filter`. */
export function kvSubject(bucket: string, key: string): string {
  return `$KV.${bucket}.${key}`;
}

/**
 * The keys of KV bucket `bucket` in one answer, sorted as the server sorts
 * its pages: for ASCII, which every KV key is, UTF-16 order is byte order.
 */
export function kvKeysIn(reply: StreamInfoReply, bucket: string): string[] {
  const prefix = kvSubject(bucket, "");
  return Object.keys(reply.state?.subjects ?? {})
    .map((s) => s.slice(prefix.length))
    .sort();
}

/** One stored revision of a KV key, as a direct get returns it. */
export interface KvValue {
  key: string;
  /** the stream sequence: the bucket-wide revision */
  revision: number;
  operation: "PUT" | "DEL" | "PURGE";
  value: Uint8Array;
  /** when the server stored it */
  created: Date;
}

/**
 * A direct get (`last_by_subj`, `seq`, `next_by_subj`) of KV bucket
 * `bucket` from `stream`: the bucket's own, or a mirror of it by its own
 * name (a mirror keeps the bucket's subjects and sequences). Undefined when
 * there is no such message.
 */
export async function requestDirectGet(nc: NatsConnection, api: string, stream: string, bucket: string, body: Record<string, unknown>, timeoutMs: number): Promise<KvValue | undefined> {
  const msg = await nc.request(`${api}.DIRECT.GET.${stream}`, JSON.stringify(body), { timeout: timeoutMs });
  const code = msg.headers?.code ?? 0;
  if (code === 404) return undefined;
  if (code >= 300) throw new Error(`direct get from '${bucket}' failed: ${code} ${msg.headers?.description ?? ""}`);
  return kvValueOf(bucket, msg);
}

/** A KV message's operation, from its `KV-Operation` header (absent: a put). */
export function kvOperation(h: MsgHdrs | undefined): KvValue["operation"] {
  const op = h?.get("KV-Operation");
  return op === "DEL" || op === "PURGE" ? op : "PUT";
}

function kvValueOf(bucket: string, msg: Msg): KvValue {
  const h = msg.headers!;
  return {
    key: h.get("Nats-Subject").slice(kvSubject(bucket, "").length),
    revision: Number(h.get("Nats-Sequence")),
    operation: kvOperation(h),
    value: msg.data,
    created: new Date(h.get("Nats-Time-Stamp")),
  };
}
