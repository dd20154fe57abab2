import { RequestError, type Msg, type NatsConnection } from "@nats-io/transport-node";
import { JS_API, MESH_JS_API, kvMirrorStream, kvStream } from "../../schemas/index.ts";

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

/** The bucket's stream does not exist (control has not created it): no keys, not an error. */
export class BucketMissingError extends Error {
  constructor(bucket: string) {
    super(`bucket '${bucket}' does not exist`);
    this.name = "BucketMissingError";
  }
}

const DEFAULT_TIMEOUT_MS = 2_000;
/** stream info pages subjects this many at a time (the server's own page size) */
const SUBJECTS_PAGE = 100_000;

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
 */
export class KvReader {
  readonly #nc: NatsConnection;
  readonly #timeoutMs: number;
  readonly #region: () => string | undefined;
  #api: Promise<string> | undefined;

  /** `region`: this sidecar's, whose mirror of a bucket answers when the bucket's home does not (docs/multi-region.md). */
  constructor(nc: NatsConnection, timeoutMs = DEFAULT_TIMEOUT_MS, region: () => string | undefined = () => undefined) {
    this.#nc = nc;
    this.#timeoutMs = timeoutMs;
    this.#region = region;
  }

  /** Keys of `bucket` under `filter` (`>` = all) that have a stored message (deleted ones included). */
  async keys(bucket: string, filter = ">"): Promise<string[]> {
    const prefix = `$KV.${bucket}.`;
    const keys: string[] = [];
    for (let offset = 0; ; offset += SUBJECTS_PAGE) {
      const info = await this.#info(bucket, { subjects_filter: `${prefix}${filter}`, offset });
      const subjects = Object.keys(info.state?.subjects ?? {});
      for (const s of subjects) keys.push(s.slice(prefix.length));
      if (subjects.length < SUBJECTS_PAGE || offset + subjects.length >= (info.total ?? 0)) return keys;
    }
  }

  /** The bucket's last stream sequence: it moved if anything was written since. */
  async lastSequence(bucket: string): Promise<number> {
    return (await this.#info(bucket, {})).state?.last_seq ?? 0;
  }

  /** The newest revision of `key`, or undefined when it has none. */
  async last(bucket: string, key: string): Promise<KvValue | undefined> {
    return this.#get(bucket, { last_by_subj: `$KV.${bucket}.${key}` });
  }

  /** The message at stream sequence `revision`, whatever its key; undefined when it is gone. */
  async at(bucket: string, revision: number): Promise<KvValue | undefined> {
    return this.#get(bucket, { seq: revision });
  }

  /** Every stored revision of `key`, oldest first (at most the bucket's history). */
  async history(bucket: string, key: string): Promise<KvValue[]> {
    const out: KvValue[] = [];
    for (let seq = 1; ; ) {
      const v = await this.#get(bucket, { seq, next_by_subj: `$KV.${bucket}.${key}` });
      if (!v) return out;
      out.push(v);
      seq = v.revision + 1;
    }
  }

  async #get(bucket: string, body: Record<string, unknown>): Promise<KvValue | undefined> {
    const api = await this.#apiPrefix();
    const msg = await this.#request(`${api}.DIRECT.GET.${kvStream(bucket)}`, body, bucket);
    const code = msg.headers?.code ?? 0;
    if (code === 404) return undefined;
    if (code >= 300) throw new Error(`direct get from '${bucket}' failed: ${code} ${msg.headers?.description ?? ""}`);
    return valueOf(bucket, msg);
  }

  /**
   * STREAM.INFO of the bucket's stream; when its home cluster cannot answer
   * (without a meta leader nobody can, docs/multi-region.md), of this
   * region's mirror, which holds the same subjects and sequences.
   */
  async #info(bucket: string, body: Record<string, unknown>): Promise<StreamInfoReply> {
    try {
      return await this.#streamInfo(kvStream(bucket), body, bucket);
    } catch (err) {
      const region = this.#region();
      if (err instanceof BucketMissingError || region === undefined) throw err;
      return this.#streamInfo(kvMirrorStream(bucket, region), body, bucket).catch(() => Promise.reject(err));
    }
  }

  async #streamInfo(stream: string, body: Record<string, unknown>, bucket: string): Promise<StreamInfoReply> {
    const api = await this.#apiPrefix();
    const reply = (await this.#request(`${api}.STREAM.INFO.${stream}`, body, bucket)).json<StreamInfoReply>();
    if (reply.error?.err_code === STREAM_NOT_FOUND) throw new BucketMissingError(bucket);
    if (reply.error) throw new Error(`stream info of '${bucket}' failed: ${reply.error.description}`);
    return reply;
  }

  async #request(subject: string, body: Record<string, unknown>, bucket: string): Promise<Msg> {
    try {
      return await this.#nc.request(subject, JSON.stringify(body), { timeout: this.#timeoutMs });
    } catch (err) {
      // Nobody serves the JetStream API at all: this account has no JetStream, so no bucket either.
      // (A direct get nobody answers is another matter: the stream may be offline for now.)
      if (err instanceof RequestError && err.isNoResponders() && subject.includes(".STREAM.INFO.")) throw new BucketMissingError(bucket);
      throw err;
    }
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
   * STREAM.INFO and a direct get at once: while the buckets' home cluster is
   * gone only a direct get (from this region's mirror) is answered
   * (docs/multi-region.md). No responders to either: `$JS.API`. No answer in
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

const STREAM_NOT_FOUND = 10059;
/** what an account without JetStream answers on `$JS.API` */
const JETSTREAM_NOT_ENABLED = 10039;

interface StreamInfoReply {
  error?: { code: number; err_code: number; description: string };
  total?: number;
  state?: { last_seq: number; subjects?: Record<string, number> };
}

function jetStreamDisabled(msg: Msg): boolean {
  try {
    return msg.json<StreamInfoReply>().error?.err_code === JETSTREAM_NOT_ENABLED;
  } catch {
    return false; // a direct get's answer: JetStream is there
  }
}

function valueOf(bucket: string, msg: Msg): KvValue {
  const h = msg.headers!;
  const subject = h.get("Nats-Subject");
  const op = h.get("KV-Operation");
  return {
    key: subject.slice(`$KV.${bucket}.`.length),
    revision: Number(h.get("Nats-Sequence")),
    operation: op === "DEL" || op === "PURGE" ? op : "PUT",
    value: msg.data,
    created: new Date(h.get("Nats-Time-Stamp")),
  };
}
