import type { NatsConnection } from "@nats-io/transport-node";
import { Kvm, type KV, type KvEntry } from "@nats-io/kv";
import type { Logger } from "pino";

/** A policy as this sidecar applied it, for `/config`. */
export interface AppliedPolicy<T> {
  bucket: string;
  key: string;
  revision: number;
  appliedAt: string;
  document: Readonly<T>;
}

export type PolicyCheck<T> = (doc: unknown, key: string) => { ok: true; value: Readonly<T> } | { ok: false; problems: string[] };

export interface PolicyWatchOptions<T> {
  nc: NatsConnection;
  logger: Logger;
  bucket: string;
  /** `>` for every key, or one key */
  key: string;
  /** validates a value on receipt; a failing value is never applied */
  check: PolicyCheck<T>;
  /** called with the new policy, or undefined when the key was deleted */
  onChange: (key: string, policy: AppliedPolicy<T> | undefined) => void;
  onRejected: (bucket: string) => void;
  retryMs?: number;
  /** no info log per change (the registry changes with every heartbeat) */
  quiet?: boolean;
}

/**
 * Follows one KV bucket: reads what is there, then applies every change as it
 * happens. Values are validated on receipt; an invalid one is logged and
 * counted and the last good policy stays. Deletion falls back to defaults.
 */
export class PolicyWatch<T> {
  readonly #o: PolicyWatchOptions<T>;
  readonly #applied = new Map<string, AppliedPolicy<T>>();
  /** highest stream sequence seen, to resume a watch without gaps */
  #lastSeq = 0;
  #stopped = false;
  #iterator: { stop(): void } | undefined;

  constructor(opts: PolicyWatchOptions<T>) {
    this.#o = opts;
  }

  get applied(): ReadonlyMap<string, AppliedPolicy<T>> {
    return this.#applied;
  }

  /** Resolves once the bucket's current content is applied (at once when the bucket does not exist yet). */
  async start(): Promise<void> {
    const kv = await this.#open();
    if (kv) await this.#snapshot(kv);
    void this.#follow(kv);
  }

  stop(): void {
    this.#stopped = true;
    this.#iterator?.stop();
  }

  async #open(): Promise<KV | undefined> {
    try {
      const kv = await new Kvm(this.#o.nc).open(this.#o.bucket);
      await kv.status(); // open() does not check that the bucket exists
      return kv;
    } catch {
      return undefined;
    }
  }

  /** Current values first; the watch then resumes after the last sequence read here. */
  async #snapshot(kv: KV): Promise<void> {
    const status = await kv.status();
    this.#lastSeq = Math.max(this.#lastSeq, status.streamInfo.state.last_seq);
    const keys: string[] = [];
    for await (const key of await kv.keys(this.#o.key)) keys.push(key);
    for (const key of keys) {
      const entry = await kv.get(key);
      if (entry) this.#receive(entry);
    }
  }

  async #follow(kv: KV | undefined): Promise<void> {
    const retryMs = this.#o.retryMs ?? 1_000;
    while (!this.#stopped) {
      try {
        if (!kv) {
          kv = await this.#open();
          if (kv) await this.#snapshot(kv);
        }
        if (kv) {
          const watch = await kv.watch({ key: this.#o.key, resumeFromRevision: this.#lastSeq + 1 });
          this.#iterator = watch;
          for await (const entry of watch) this.#receive(entry);
        }
      } catch (err) {
        if (!this.#stopped) this.#o.logger.warn({ err, bucket: this.#o.bucket }, "policy watch interrupted; resuming");
      }
      if (!this.#stopped) await new Promise((r) => setTimeout(r, retryMs).unref());
    }
  }

  #receive(entry: KvEntry): void {
    this.#lastSeq = Math.max(this.#lastSeq, entry.revision);
    const current = this.#applied.get(entry.key);
    if (current && entry.revision <= current.revision) return;
    if (entry.operation !== "PUT") {
      if (!current) return;
      this.#applied.delete(entry.key);
      if (!this.#o.quiet) this.#o.logger.info({ bucket: this.#o.bucket, key: entry.key, revision: entry.revision }, "policy removed");
      this.#o.onChange(entry.key, undefined);
      return;
    }
    const result = this.#check(entry);
    if (!result.ok) {
      this.#o.logger.error(
        { bucket: this.#o.bucket, key: entry.key, revision: entry.revision, problems: result.problems },
        "policy rejected: keeping the last good one",
      );
      this.#o.onRejected(this.#o.bucket);
      return;
    }
    const applied = { bucket: this.#o.bucket, key: entry.key, revision: entry.revision, appliedAt: new Date().toISOString(), document: result.value };
    this.#applied.set(entry.key, applied);
    if (!this.#o.quiet) this.#o.logger.info({ bucket: this.#o.bucket, key: entry.key, revision: entry.revision }, "policy applied");
    this.#o.onChange(entry.key, applied);
  }

  #check(entry: KvEntry): ReturnType<PolicyCheck<T>> {
    let doc: unknown;
    try {
      doc = entry.json();
    } catch (err) {
      return { ok: false, problems: [`value is not JSON: ${(err as Error).message}`] };
    }
    return this.#o.check(doc, entry.key);
  }
}
