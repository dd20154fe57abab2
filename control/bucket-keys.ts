import type { NatsConnection } from "@nats-io/transport-node";
import { JS_API, READABLE_BUCKETS, isServiceName, keysSubject, kvMirrorStream, kvStream, type BucketKeysPage, type ValidControlRequests } from "../schemas/index.ts";
import { STREAM_NOT_FOUND, kvKeysIn, kvSubjectsFilter, requestStreamInfo, type StreamInfoReply } from "../runtime/index.ts";
import { mirrorRegion } from "./buckets.ts";
import { ControlError } from "./errors.ts";

export const KEYS_LIMITS = {
  /** keys per page at most (control-keys-reply.schema.json): 1000 registry keys are ~130 KB, well under max_payload */
  pageKeys: 1_000,
  /** how long each STREAM.INFO may take: the home's, then the mirror's */
  streamInfoTimeoutMs: 2_000,
} as const;

/** What a KV key looks like (control-keys-reply.schema.json): a subject written around control may not. */
const KV_KEY = /^[-/=_A-Za-z0-9]+(\.[-/=_A-Za-z0-9]+)*$/;
const MAX_KEY_LENGTH = 256;

/**
 * The `keys` verb (docs/multi-region.md): lists the keys of a bucket a
 * sidecar may read, for a sidecar that cannot list them itself, from
 * control's view: the bucket's stream in its home cluster, else this
 * replica's region's mirror of it. Nothing a sidecar could not already read
 * (the same buckets as its STREAM.INFO imports, READABLE_BUCKETS), nothing
 * written; one page of at most 1000 keys per request.
 */
export class BucketKeys {
  readonly #nc: NatsConnection;
  readonly #home: string | undefined;

  /** `home`: the cluster holding the buckets (MeshBuckets.home). */
  constructor(nc: NatsConnection, home: string | undefined) {
    this.#nc = nc;
    this.#home = home;
  }

  async list(req: ValidControlRequests["keys"], subject: string): Promise<BucketKeysPage> {
    const service = subject.slice(keysSubject("").length);
    if (!isServiceName(service) || subject !== keysSubject(service)) throw new ControlError("bad_request", `keys are asked on ${keysSubject("<service>")}, not ${subject}`);
    // The schema refuses any other bucket already; this is the line that must never move.
    if (!READABLE_BUCKETS.includes(req.bucket)) throw new ControlError("bad_request", `bucket '${req.bucket}' is not one a sidecar may read`);
    const body = { subjects_filter: kvSubjectsFilter(req.bucket, req.filter), offset: req.offset };
    try {
      return pageOf(await this.#info(kvStream(req.bucket), req.bucket, body), req, "home");
    } catch (err) {
      if (err instanceof ControlError) throw err;
      const region = mirrorRegion(this.#nc, this.#home);
      const home = `its home${this.#home ? ` '${this.#home}'` : ""} does not answer (${(err as Error).message})`;
      if (!region) throw new ControlError("store_unavailable", `the keys of '${req.bucket}' cannot be listed: ${home}`, { cause: err });
      const mirror = kvMirrorStream(req.bucket, region);
      const info = await this.#info(mirror, req.bucket, body).catch((mirrorErr: Error) => {
        throw new ControlError("store_unavailable", `the keys of '${req.bucket}' cannot be listed: ${home}, nor does ${mirror} (${mirrorErr.message})`, { cause: err });
      });
      return pageOf(info, req, "mirror");
    }
  }

  /** STREAM.INFO of `stream`; a missing home stream is not_found, any other failure an Error. */
  async #info(stream: string, bucket: string, body: Record<string, unknown>): Promise<StreamInfoReply> {
    const reply = await requestStreamInfo(this.#nc, JS_API, stream, body, KEYS_LIMITS.streamInfoTimeoutMs);
    if (reply.error?.err_code === STREAM_NOT_FOUND && stream === kvStream(bucket)) throw new ControlError("not_found", `bucket '${bucket}' does not exist`);
    if (reply.error) throw new Error(`stream info of ${stream} failed: ${reply.error.description}`);
    return reply;
  }
}

/**
 * At most `pageKeys` of the keys from the request's offset on. The server
 * answers from that offset in sorted order (kvKeysIn sorts a single page the
 * same way), so `next` picks up exactly where this page stopped.
 */
function pageOf(reply: StreamInfoReply, req: ValidControlRequests["keys"], source: BucketKeysPage["source"]): BucketKeysPage {
  const read = kvKeysIn(reply, req.bucket).slice(0, KEYS_LIMITS.pageKeys);
  const keys = read.filter((k) => k.length <= MAX_KEY_LENGTH && KV_KEY.test(k));
  const next = req.offset + read.length;
  return { keys, source, ...(read.length > 0 && next < (reply.total ?? 0) ? { next } : {}) };
}
