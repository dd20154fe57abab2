import type { Msg, NatsConnection, Subscription } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { kvChangesSubject } from "../../schemas/index.ts";
import { kvOperation, kvSubject } from "../../runtime/index.ts";
import { BucketMissingError, type KvReader, type KvValue } from "./kv-reader.ts";
import { adoptHeaders } from "../wire-headers.ts";

/** A value as this sidecar applied it, for `/config`. */
export interface AppliedValue<T> {
  bucket: string;
  key: string;
  revision: number;
  appliedAt: string;
  document: Readonly<T>;
}

/** The newest revision of a key that failed its check, while no newer valid one has arrived. */
export interface RejectedValue {
  bucket: string;
  key: string;
  revision: number;
  problems: string[];
}

export type ValueCheck<T> = (doc: unknown, key: string) => { ok: true; value: Readonly<T> } | { ok: false; problems: string[] };

export interface KvFollowerOptions<T> {
  nc: NatsConnection;
  reader: KvReader;
  logger: Logger;
  bucket: string;
  /** `>` for every key, or one key */
  key: string;
  /** validates a value on receipt (the follower parsed it for this call alone: it may be kept); a failing value is never applied */
  check: ValueCheck<T>;
  /** the new value, or undefined when the key was deleted */
  onChange: (key: string, applied: AppliedValue<T> | undefined) => void;
  /**
   * The newest value of a key is invalid and there is no valid one to keep
   * (neither applied before nor in the key's history since its last
   * deletion). Authorization denies in that case; other kinds keep defaults.
   */
  onInvalid?: (key: string) => void;
  onRejected: (bucket: string) => void;
  /** no info log per change (the registry changes with every heartbeat) */
  quiet?: boolean;
  /** how often the bucket is checked for writes that never reached us; default 30 s */
  resyncMs?: number;
  /** pause between failed reads at start; default 1 s */
  retryMs?: number;
}

const DEFAULT_RESYNC_MS = 30_000;
/** one decoder for every value: constructing one per value showed in profiles (docs/scale.md) */
const utf8 = new TextDecoder();
const DEFAULT_RETRY_MS = 1_000;
/**
 * An announced revision that no replica or mirror returns yet is asked for
 * again this many times, 5 ms later and doubling (about 1.3 s in all).
 */
const ANNOUNCED_RETRIES = 8;
const ANNOUNCED_RETRY_FIRST_MS = 5;

/**
 * Follows one KV bucket without a JetStream consumer: the current values are
 * read with direct gets, and changes arrive as the core-NATS messages
 * JetStream republishes on `mesh.kv.<bucket>.<key>` (docs/security.md says
 * why no consumer). A change carries its value and JetStream's headers
 * naming the stored subject and revision; a change that names another key,
 * or carries no value (a bucket made by an older control republishes
 * headers only), is read from the stream instead. Revisions of a key are
 * applied only in increasing order, so a replayed announcement of an old
 * revision changes nothing. Every value is checked on receipt; an invalid one is
 * logged and counted and the last good value stays. A follower that starts
 * while the newest value is invalid applies the newest valid revision in the
 * key's history instead. Deletion falls back to defaults.
 *
 * Republished messages are at most once, so the follower reads the bucket
 * again after a reconnect, and when the bucket's last sequence shows a
 * write it never heard of.
 */
export class KvFollower<T> {
  readonly #o: KvFollowerOptions<T>;
  readonly #applied = new Map<string, AppliedValue<T>>();
  readonly #rejected = new Map<string, RejectedValue>();
  /** newest revision handled per key (applied, rejected or deleted): older ones are ignored */
  readonly #seen = new Map<string, number>();
  readonly #prefix: string;
  /** highest stream sequence handled, and the bucket's last sequence at the previous check */
  #maxSeq = 0;
  #lastChecked = 0;
  #sub: Subscription | undefined;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #serial: Promise<void> = Promise.resolve();

  constructor(opts: KvFollowerOptions<T>) {
    this.#o = opts;
    this.#prefix = `${kvChangesSubject(opts.bucket, "")}`;
  }

  get applied(): ReadonlyMap<string, AppliedValue<T>> {
    return this.#applied;
  }

  get rejected(): ReadonlyMap<string, RejectedValue> {
    return this.#rejected;
  }

  /** Resolves once the bucket's current content is applied; until it could be read, it keeps trying. */
  async start(): Promise<void> {
    this.#sub = this.#o.nc.subscribe(kvChangesSubject(this.#o.bucket, this.#o.key), { callback: (err, msg) => void (err || this.#onChange(msg)) });
    for (;;) {
      try {
        await this.#readAll();
        break;
      } catch (err) {
        if (this.#stopped) return;
        this.#o.logger.warn({ err, bucket: this.#o.bucket }, "cannot read policy yet; retrying");
        await new Promise((r) => setTimeout(r, this.#o.retryMs ?? DEFAULT_RETRY_MS).unref());
      }
    }
    this.#timer = setInterval(() => void this.#check(), this.#o.resyncMs ?? DEFAULT_RESYNC_MS);
    this.#timer.unref();
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#sub?.unsubscribe();
  }

  /** Reads the whole bucket again (after a reconnect: changes published meanwhile were lost). */
  resync(): void {
    this.#readAll().catch((err) => this.#o.logger.warn({ err, bucket: this.#o.bucket }, "policy resync failed"));
  }

  async #readAll(): Promise<void> {
    const { reader, bucket, key } = this.#o;
    let values: KvValue[];
    try {
      values = await reader.newest(bucket, key);
    } catch (err) {
      if (!(err instanceof BucketMissingError)) throw err;
      values = []; // control has not created it: nothing was ever written
    }
    for (const v of values) await this.#handle(v);
    // A key whose every message is gone (purged, expired) no longer exists.
    const present = new Set(values.map((v) => v.key));
    for (const k of [...this.#applied.keys()]) if (!present.has(k)) this.#remove(k, this.#seen.get(k) ?? 0);
  }

  async #check(): Promise<void> {
    try {
      const last = await this.#o.reader.lastSequence(this.#o.bucket);
      // A sequence the stream already had at the previous check and that still did not reach us was lost.
      if (this.#lastChecked > this.#maxSeq) await this.#readAll();
      this.#lastChecked = last;
    } catch (err) {
      if (!(err instanceof BucketMissingError)) this.#o.logger.debug({ err, bucket: this.#o.bucket }, "policy check failed");
    }
  }

  #onChange(msg: Msg): void {
    if (!msg.subject.startsWith(this.#prefix)) return;
    adoptHeaders(msg);
    const key = msg.subject.slice(this.#prefix.length);
    const revision = Number(msg.headers?.get("Nats-Sequence"));
    if (!(revision > (this.#seen.get(key) ?? 0))) return;
    if (storedUnder(msg, kvSubject(this.#o.bucket, key))) {
      const value: KvValue = { key, revision, operation: kvOperation(msg.headers), value: msg.data, created: new Date() };
      void this.#handle(value);
      return;
    }
    // Otherwise the announced revision is read from the stream itself: only a message stored under this
    // very key counts, so a reflected message that names another key's revision is ignored.
    const { bucket } = this.#o;
    this.#readAnnounced(key, revision).then(
      (v) => v && this.#handle(v),
      (err) => {
        this.#o.logger.warn({ err, bucket, key }, "could not read a changed policy; reading the bucket again");
        this.resync();
      },
    );
  }

  /**
   * The announced revision of `key`, or its newest when that one is gone
   * (history trimmed). A direct get may be answered by a replica that has not
   * stored it yet (the leader republishes as it stores), or by this region's
   * mirror of the bucket (docs/multi-region.md), either of which can lag the
   * announcement by a moment: while the answer is older than the announced
   * revision, it asks again a bounded number of times (docs/scale.md), then
   * gives up and the bucket is read again.
   */
  async #readAnnounced(key: string, revision: number): Promise<KvValue | undefined> {
    const { reader, bucket } = this.#o;
    for (let attempt = 0; ; attempt++) {
      const v = await reader.at(bucket, revision);
      if (v?.key === key) return v;
      const last = await reader.last(bucket, key);
      // Another key's revision (a reflected or forged announcement): only this key's newest counts.
      if (v || (last && last.revision >= revision)) return last;
      if (attempt + 1 >= ANNOUNCED_RETRIES) throw new Error(`revision ${revision} of '${key}' was announced but is not readable`);
      await new Promise((r) => setTimeout(r, ANNOUNCED_RETRY_FIRST_MS * 2 ** attempt).unref());
      if (this.#stopped || revision <= (this.#seen.get(key) ?? 0)) return undefined;
    }
  }


  /** One value at a time, so a key's revisions are decided in order. */
  #handle(v: KvValue): Promise<void> {
    this.#serial = this.#serial.then(() => this.#receive(v)).catch((err) => this.#o.logger.error({ err, bucket: this.#o.bucket, key: v.key }, "policy not handled"));
    return this.#serial;
  }

  async #receive(v: KvValue): Promise<void> {
    if (v.revision <= (this.#seen.get(v.key) ?? 0)) return;
    this.#seen.set(v.key, v.revision);
    this.#maxSeq = Math.max(this.#maxSeq, v.revision);
    if (v.operation !== "PUT") return this.#remove(v.key, v.revision);
    const result = this.#checkValue(v);
    if (result.ok) return this.#apply(v, result.value);
    const { bucket } = this.#o;
    this.#rejected.set(v.key, { bucket, key: v.key, revision: v.revision, problems: result.problems });
    this.#o.onRejected(bucket);
    if (this.#applied.has(v.key)) {
      this.#o.logger.error({ bucket, key: v.key, revision: v.revision, problems: result.problems }, "policy rejected: keeping the last good one");
      return;
    }
    let fallback: { value: KvValue; document: Readonly<T> } | undefined;
    try {
      fallback = await this.#newestValid(v.key, v.revision);
    } catch (err) {
      // The history cannot be read now (during an outage of the buckets' home only the newest values
      // can: docs/multi-region.md). Fail closed, and take this revision again at the next read.
      this.#seen.set(v.key, v.revision - 1);
      this.#o.logger.error({ err, bucket, key: v.key, revision: v.revision, problems: result.problems }, "policy rejected and its history cannot be read now");
      this.#o.onInvalid?.(v.key);
      return;
    }
    if (fallback) {
      this.#o.logger.error(
        { bucket, key: v.key, revision: v.revision, problems: result.problems, applied: fallback.value.revision },
        "policy rejected: applying the newest valid revision in its history",
      );
      return this.#apply(fallback.value, fallback.document);
    }
    this.#o.logger.error({ bucket, key: v.key, revision: v.revision, problems: result.problems }, "policy rejected and no valid revision to fall back on");
    this.#o.onInvalid?.(v.key);
  }

  /** The newest valid revision before `revision`, unless the key was deleted in between. */
  async #newestValid(key: string, revision: number): Promise<{ value: KvValue; document: Readonly<T> } | undefined> {
    const history = await this.#o.reader.history(this.#o.bucket, key);
    for (const v of history.filter((h) => h.revision < revision).reverse()) {
      if (v.operation !== "PUT") return undefined;
      const result = this.#checkValue(v);
      if (result.ok) return { value: v, document: result.value };
    }
    return undefined;
  }

  #apply(v: KvValue, document: Readonly<T>): void {
    const applied: AppliedValue<T> = { bucket: this.#o.bucket, key: v.key, revision: v.revision, appliedAt: new Date().toISOString(), document };
    this.#applied.set(v.key, applied);
    if ((this.#rejected.get(v.key)?.revision ?? 0) < v.revision) this.#rejected.delete(v.key);
    if (!this.#o.quiet) this.#o.logger.info({ bucket: this.#o.bucket, key: v.key, revision: v.revision }, "policy applied");
    this.#o.onChange(v.key, applied);
  }

  #remove(key: string, revision: number): void {
    this.#rejected.delete(key);
    const had = this.#applied.delete(key);
    if (had && !this.#o.quiet) this.#o.logger.info({ bucket: this.#o.bucket, key, revision }, "policy removed");
    // Also after an invalid value with nothing to fall back on: deletion means "no policy".
    this.#o.onChange(key, undefined);
  }

  #checkValue(v: KvValue): ReturnType<ValueCheck<T>> {
    let doc: unknown;
    try {
      doc = JSON.parse(utf8.decode(v.value));
    } catch (err) {
      return { ok: false, problems: [`value is not JSON: ${(err as Error).message}`] };
    }
    return this.#o.check(doc, v.key);
  }
}

/**
 * True when a change carries a value that JetStream stored under `subject`:
 * its `Nats-Subject` header (set by JetStream on what it republishes, and on
 * a direct get's answer, which a sidecar may reflect here but cannot write)
 * names it, and it is not a headers-only message (`Nats-Msg-Size`).
 */
function storedUnder(msg: Msg, subject: string): boolean {
  const h = msg.headers;
  return h !== undefined && h.get("Nats-Subject") === subject && !h.has("Nats-Msg-Size");
}
