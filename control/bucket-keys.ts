import type { NatsConnection } from "@nats-io/transport-node";
import {
  JS_API,
  READABLE_BUCKETS,
  isServiceName,
  keysSubject,
  kvMirrorStream,
  kvStream,
  type BucketEntry,
  type BucketKeysPage,
  type ValidControlRequests,
} from "../schemas/index.ts";
import { STREAM_NOT_FOUND, kvKeysIn, kvSubject, mapLimitAll, requestDirectGet, requestStreamInfo, type KvValue, type StreamInfoReply } from "../runtime/index.ts";
import { mirrorRegion } from "./buckets.ts";
import { ControlError } from "./errors.ts";

export const KEYS_LIMITS = {
  /** keys per page at most (control-keys-reply.schema.json): 1000 registry keys are ~130 KB */
  pageKeys: 1_000,
  /** with values, a page stops growing past this share of the server's max_payload */
  replyShareOfMaxPayload: 0.75,
  /** how long each JetStream request may take: the home's STREAM.INFO, then the mirror's */
  requestTimeoutMs: 2_000,
  /** direct gets in flight at once for one page's values */
  readConcurrency: 64,
} as const;

/** What a KV key looks like (control-keys-reply.schema.json): a subject written around control may not. */
const KV_KEY = /^[-/=_A-Za-z0-9]+(\.[-/=_A-Za-z0-9]+)*$/;
const MAX_KEY_LENGTH = 256;
/** JSON around one entry besides its key and value, generously */
const ENTRY_OVERHEAD_BYTES = 128;

type KeysRequest = ValidControlRequests["keys"];

/**
 * The `keys` verb (docs/multi-region.md): lists the keys of a bucket a
 * sidecar may read, and on request their newest values, for a sidecar that
 * cannot read them itself while the buckets' home is gone. Control's view:
 * the bucket's stream in its home cluster, else this replica's region's
 * mirror of it, whose own name answers direct gets when the bucket's name no
 * longer does. Nothing a sidecar could not read before (the buckets of its
 * STREAM.INFO and DIRECT.GET imports, READABLE_BUCKETS), nothing written;
 * one bounded page per request.
 */
export class BucketKeys {
  readonly #nc: NatsConnection;
  readonly #home: string | undefined;

  /** `home`: the cluster holding the buckets (MeshBuckets.home). */
  constructor(nc: NatsConnection, home: string | undefined) {
    this.#nc = nc;
    this.#home = home;
  }

  async list(req: KeysRequest, subject: string): Promise<BucketKeysPage> {
    const service = subject.slice(keysSubject("").length);
    if (!isServiceName(service) || subject !== keysSubject(service)) throw new ControlError("bad_request", `keys are asked on ${keysSubject("<service>")}, not ${subject}`);
    // The schema refuses any other bucket already; this is the line that must never move.
    if (!READABLE_BUCKETS.includes(req.bucket)) throw new ControlError("bad_request", `bucket '${req.bucket}' is not one a sidecar may read`);
    const { stream, source, info } = await this.#listing(req);
    const read = kvKeysIn(info, req.bucket).slice(0, KEYS_LIMITS.pageKeys);
    const values = req.values ? await mapLimitAll(read, KEYS_LIMITS.readConcurrency, (key) => this.#newest(stream, req.bucket, key)) : [];
    return this.#page(req, read, values, info.total ?? 0, source);
  }

  /** STREAM.INFO of the bucket's stream, else of this region's mirror; which one answered. */
  async #listing(req: KeysRequest): Promise<{ stream: string; source: BucketKeysPage["source"]; info: StreamInfoReply }> {
    const body = { subjects_filter: kvSubject(req.bucket, req.filter), offset: req.offset };
    const home = kvStream(req.bucket);
    try {
      return { stream: home, source: "home", info: await this.#info(home, req.bucket, body) };
    } catch (err) {
      if (err instanceof ControlError) throw err;
      const region = mirrorRegion(this.#nc, this.#home);
      const why = `its home${this.#home ? ` '${this.#home}'` : ""} does not answer (${(err as Error).message})`;
      if (!region) throw new ControlError("store_unavailable", `the keys of '${req.bucket}' cannot be listed: ${why}`, { cause: err });
      const mirror = kvMirrorStream(req.bucket, region);
      const info = await this.#info(mirror, req.bucket, body).catch((mirrorErr: Error) => {
        throw new ControlError("store_unavailable", `the keys of '${req.bucket}' cannot be listed: ${why}, nor does ${mirror} (${mirrorErr.message})`, { cause: err });
      });
      return { stream: mirror, source: "mirror", info };
    }
  }

  /** STREAM.INFO of `stream`; a missing home stream is not_found, any other failure an Error. */
  async #info(stream: string, bucket: string, body: Record<string, unknown>): Promise<StreamInfoReply> {
    const reply = await requestStreamInfo(this.#nc, JS_API, stream, body, KEYS_LIMITS.requestTimeoutMs);
    if (reply.error?.err_code === STREAM_NOT_FOUND && stream === kvStream(bucket)) throw new ControlError("not_found", `bucket '${bucket}' does not exist`);
    if (reply.error) throw new Error(`stream info of ${stream} failed: ${reply.error.description}`);
    return reply;
  }

  /** The newest revision of `key`, by `stream`'s own name: a mirror answers it even when it no longer answers for the bucket. */
  async #newest(stream: string, bucket: string, key: string): Promise<KvValue | undefined> {
    return requestDirectGet(this.#nc, JS_API, stream, bucket, { last_by_subj: kvSubject(bucket, key) }, KEYS_LIMITS.requestTimeoutMs).catch((err: Error) => {
      throw new ControlError("store_unavailable", `the newest value of '${key}' in ${stream} cannot be read: ${err.message}`, { cause: err });
    });
  }

  /**
   * The keys read from the request's offset on (the server answers from that
   * offset in sorted order, and kvKeysIn sorts a single page the same way),
   * with their values when asked, up to the byte budget; `next` picks up
   * exactly where the page stopped.
   */
  #page(req: KeysRequest, read: string[], values: Array<KvValue | undefined>, total: number, source: BucketKeysPage["source"]): BucketKeysPage {
    const budget = (this.#nc.info?.max_payload ?? 1024 * 1024) * KEYS_LIMITS.replyShareOfMaxPayload;
    const keys: string[] = [];
    const entries: BucketEntry[] = [];
    let bytes = 0;
    let taken = 0;
    for (; taken < read.length; taken++) {
      const key = read[taken]!;
      if (key.length > MAX_KEY_LENGTH || !KV_KEY.test(key)) continue;
      const entry = req.values ? entryOf(values[taken]) : undefined;
      const size = key.length + ENTRY_OVERHEAD_BYTES + (entry?.value.length ?? 0);
      if (bytes + size > budget) {
        if (keys.length === 0) throw new ControlError("internal", `the newest value of '${key}' (${entry?.value.length} bytes in base64) does not fit in one answer`);
        break;
      }
      bytes += size;
      keys.push(key);
      if (entry) entries.push(entry);
    }
    const next = req.offset + taken;
    return { keys, source, ...(req.values ? { entries } : {}), ...(taken > 0 && next < total ? { next } : {}) };
  }
}

function entryOf(v: KvValue | undefined): BucketEntry | undefined {
  if (!v) return undefined;
  return { key: v.key, revision: v.revision, operation: v.operation, created: v.created.toISOString(), value: Buffer.from(v.value).toString("base64") };
}
