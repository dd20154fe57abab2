import { RequestError, type Msg, type NatsConnection } from "@nats-io/transport-node";
import { JS_API, MESH_JS_API, kvMirrorStream, kvStream } from "../../schemas/index.ts";
import {
  STREAM_NOT_FOUND,
  SUBJECTS_PAGE,
  kvKeysIn,
  kvSubject,
  mapLimitAll,
  requestDirectGet,
  requestStreamInfo,
  type KvValue,
  type StreamInfoReply,
} from "../../runtime/index.ts";
import { newestThroughControl } from "./control-keys.ts";

export type { KvValue } from "../../runtime/index.ts";

/** The bucket's stream does not exist (control has not created it): no keys, not an error. */
export class BucketMissingError extends Error {
  constructor(bucket: string) {
    super(`bucket '${bucket}' does not exist`);
    this.name = "BucketMissingError";
  }
}

const DEFAULT_TIMEOUT_MS = 2_000;
/** direct gets in flight at once while reading a whole bucket */
const READ_CONCURRENCY = 16;

export interface KvReaderOptions {
  /** each JetStream request's, ms; default 2000 */
  timeoutMs?: number;
  /** this sidecar's region, whose mirror of a bucket answers when the bucket's home does not (docs/multi-region.md) */
  region?: () => string | undefined;
  /**
   * this sidecar's service: when it cannot list a bucket's keys itself, it
   * asks control for them and their values on `mesh.ctl.v1.keys.<service>`;
   * absent: it does not
   */
  service?: string;
}

/**
 * Reads KV buckets through the two JetStream calls that never make the server
 * publish anywhere but the caller's own inbox: direct get (`DIRECT.GET`) and
 * `STREAM.INFO`. No consumer is ever created, so a sidecar needs no right to
 * create one (a consumer's deliver subject is a write path; docs/security.md).
 *
 * In secure mode the sidecar's account has no JetStream of its own and
 * reaches control's through imports under `$JS.mesh.API`; elsewhere the
 * buckets are in its own account under `$JS.API`. Which one answers is
 * found once, on first use.
 *
 * A whole bucket is read with STREAM.INFO of its stream (the keys) and
 * direct gets (the values); when its home cluster cannot answer, from this
 * region's mirror by its own name (not in secure mode, whose imports do not
 * reach the mirrors); when that fails too, control reads them for this
 * sidecar (verb `keys`) from its own view, its region's mirror
 * (docs/multi-region.md).
 */
export class KvReader {
  readonly #nc: NatsConnection;
  readonly #timeoutMs: number;
  readonly #region: () => string | undefined;
  readonly #service: string | undefined;
  #api: Promise<string> | undefined;

  constructor(nc: NatsConnection, opts: KvReaderOptions = {}) {
    this.#nc = nc;
    this.#timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#region = opts.region ?? (() => undefined);
    this.#service = opts.service;
  }

  /**
   * The newest revision of every key of `bucket` under `filter` (`>` = all)
   * that has one, deletions included; keys and values come from the same
   * stream, 16 direct gets at a time.
   */
  async newest(bucket: string, filter = ">"): Promise<KvValue[]> {
    let listed: { stream: string; keys: string[] };
    try {
      listed = await this.#keys(bucket, filter);
    } catch (err) {
      if (err instanceof BucketMissingError || this.#service === undefined) throw err;
      const values = await newestThroughControl(this.#nc, this.#service, bucket, filter).catch((controlErr: Error) => {
        throw new Error(`cannot read '${bucket}': ${(err as Error).message}; through control: ${controlErr.message}`, { cause: err });
      });
      if (!values) throw new BucketMissingError(bucket);
      return values;
    }
    const values = await mapLimitAll(listed.keys, READ_CONCURRENCY, (key) => this.#get(bucket, { last_by_subj: kvSubject(bucket, key) }, listed.stream));
    return values.filter((v): v is KvValue => v !== undefined);
  }

  /** The keys of `bucket` under `filter` that have a stored message, and the stream that listed them. */
  async #keys(bucket: string, filter: string): Promise<{ stream: string; keys: string[] }> {
    const keys: string[] = [];
    for (let offset = 0; ; offset += SUBJECTS_PAGE) {
      const { stream, info } = await this.#info(bucket, { subjects_filter: kvSubject(bucket, filter), offset });
      const page = kvKeysIn(info, bucket);
      keys.push(...page);
      if (page.length < SUBJECTS_PAGE || offset + page.length >= (info.total ?? 0)) return { stream, keys };
    }
  }

  /** The bucket's last stream sequence: it moved if anything was written since. */
  async lastSequence(bucket: string): Promise<number> {
    return (await this.#info(bucket, {})).info.state?.last_seq ?? 0;
  }

  /** The newest revision of `key`, or undefined when it has none. */
  async last(bucket: string, key: string): Promise<KvValue | undefined> {
    return this.#get(bucket, { last_by_subj: kvSubject(bucket, key) });
  }

  /** The message at stream sequence `revision`, whatever its key; undefined when it is gone. */
  async at(bucket: string, revision: number): Promise<KvValue | undefined> {
    return this.#get(bucket, { seq: revision });
  }

  /** Every stored revision of `key`, oldest first (at most the bucket's history). */
  async history(bucket: string, key: string): Promise<KvValue[]> {
    const out: KvValue[] = [];
    for (let seq = 1; ; ) {
      const v = await this.#get(bucket, { seq, next_by_subj: kvSubject(bucket, key) });
      if (!v) return out;
      out.push(v);
      seq = v.revision + 1;
    }
  }

  /** A direct get from the bucket's stream, or from `stream` (a mirror of it, by its own name). */
  async #get(bucket: string, body: Record<string, unknown>, stream = kvStream(bucket)): Promise<KvValue | undefined> {
    return requestDirectGet(this.#nc, await this.#apiPrefix(), stream, bucket, body, this.#timeoutMs);
  }

  /**
   * STREAM.INFO of the bucket's stream; when its home cluster cannot answer
   * (without a meta leader nobody can, docs/multi-region.md), of this
   * region's mirror, which holds the same subjects and sequences. Not in
   * secure mode: the sidecars' account imports no mirror's STREAM.INFO
   * (docs/security.md), so asking would only be a permissions violation.
   */
  async #info(bucket: string, body: Record<string, unknown>): Promise<{ stream: string; info: StreamInfoReply }> {
    const api = await this.#apiPrefix();
    const home = kvStream(bucket);
    try {
      return { stream: home, info: await this.#streamInfo(api, home, body, bucket) };
    } catch (err) {
      const region = this.#region();
      if (err instanceof BucketMissingError || region === undefined || api === MESH_JS_API) throw err;
      const mirror = kvMirrorStream(bucket, region);
      const info = await this.#streamInfo(api, mirror, body, bucket).catch(() => Promise.reject(err));
      return { stream: mirror, info };
    }
  }

  async #streamInfo(api: string, stream: string, body: Record<string, unknown>, bucket: string): Promise<StreamInfoReply> {
    let reply: StreamInfoReply;
    try {
      reply = await requestStreamInfo(this.#nc, api, stream, body, this.#timeoutMs);
    } catch (err) {
      // Nobody serves the JetStream API at all: this account has no JetStream, so no bucket either.
      // (A direct get nobody answers is another matter: the stream may be offline for now.)
      if (err instanceof RequestError && err.isNoResponders()) throw new BucketMissingError(bucket);
      throw err;
    }
    if (reply.error?.err_code === STREAM_NOT_FOUND) throw new BucketMissingError(bucket);
    if (reply.error) throw new Error(`stream info of '${bucket}' failed: ${reply.error.description}`);
    return reply;
  }

  /**
   * `$JS.mesh.API` when this account imports control's read API (secure
   * mode: it answers, even if only "no such stream"), else `$JS.API`.
   */
  #apiPrefix(): Promise<string> {
    this.#api ??= this.#probeApi().catch((err) => {
      this.#api = undefined; // unreachable for now: find out again next time
      throw err;
    });
    return this.#api;
  }

  /**
   * `$JS.mesh.API` first (secure mode may publish nothing else), with
   * STREAM.INFO and a direct get at once: in the first seconds after the
   * buckets' home cluster is gone only a direct get (from this region's
   * mirror) is answered, later neither, and whole buckets are read through
   * control until the home is back (docs/multi-region.md). No responders to
   * either: `$JS.API`. No answer in
   * time (a request crossing a gateway may get no "no responders"):
   * `$JS.API` if it answers with JetStream enabled.
   */
  async #probeApi(): Promise<string> {
    const stream = kvStream("mesh_routes");
    const ask = (subject: string, body: unknown) => this.#nc.request(subject, JSON.stringify(body), { timeout: this.#timeoutMs });
    const probe = (api: string) => Promise.any([ask(`${api}.STREAM.INFO.${stream}`, {}), ask(`${api}.DIRECT.GET.${stream}`, { seq: 1 })]);
    try {
      await probe(MESH_JS_API);
      return MESH_JS_API;
    } catch (err) {
      const errors = (err as AggregateError).errors ?? [err];
      if (errors.every((e) => e instanceof RequestError && e.isNoResponders())) return JS_API;
      const plain = await probe(JS_API).catch(() => undefined);
      if (plain && !jetStreamDisabled(plain)) return JS_API;
      throw errors[0];
    }
  }
}

/** what an account without JetStream answers on `$JS.API` */
const JETSTREAM_NOT_ENABLED = 10039;

function jetStreamDisabled(msg: Msg): boolean {
  try {
    return msg.json<StreamInfoReply>().error?.err_code === JETSTREAM_NOT_ENABLED;
  } catch {
    return false; // a direct get's answer: JetStream is there
  }
}
