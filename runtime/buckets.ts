import type { JetStreamManager } from "@nats-io/jetstream";
import type { KV, KvOptions, Kvm } from "@nats-io/kv";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import { kvStream } from "../schemas/index.ts";

/** nats-server refuses more replicas than the cluster has nodes; this is how it says so. */
export function tooManyReplicas(err: unknown): boolean {
  return /insufficient resources|replicas > 1 not supported|no suitable peers/i.test(String((err as Error)?.message));
}

/**
 * Runs `create` with 3 replicas, then 2, then 1, until the cluster accepts:
 * min(3, cluster size), since the cluster's size is not visible to a client.
 */
export async function withReplicaFallback<T>(create: (replicas: number) => Promise<T>, replicas: readonly number[] = [3, 2, 1]): Promise<T> {
  let lastErr: unknown;
  for (const r of replicas) {
    try {
      return await create(r);
    } catch (err) {
      lastErr = err;
      if (!tooManyReplicas(err)) throw err;
    }
  }
  throw lastErr;
}

/**
 * Creates a KV bucket (or opens it, when it exists with another
 * configuration, e.g. made by an older version) with the first replica count
 * the cluster accepts. An existing bucket keeps its configuration, except
 * its republish setting, which readers depend on.
 */
export async function ensureKv(kvm: Kvm, jsm: JetStreamManager, name: string, opts: Partial<KvOptions>, replicas: readonly number[] = [3, 2, 1]): Promise<{ kv: KV; replicas: number }> {
  return withReplicaFallback(async (r) => {
    try {
      return { kv: await kvm.create(name, { ...opts, replicas: r }), replicas: r };
    } catch (err) {
      if (!/already in use/i.test(String((err as Error).message))) throw err;
      if (opts.republish) await ensureRepublish(jsm, name, opts.republish);
      const kv = await kvm.open(name);
      return { kv, replicas: (await kv.status()).replicas };
    }
  }, replicas);
}

async function ensureRepublish(jsm: JetStreamManager, bucket: string, republish: NonNullable<KvOptions["republish"]>): Promise<void> {
  const { config } = await jsm.streams.info(kvStream(bucket));
  const current = config.republish;
  if (current?.src === republish.src && current.dest === republish.dest && Boolean(current.headers_only) === Boolean(republish.headers_only)) return;
  await jsm.streams.update(kvStream(bucket), { ...config, republish });
}

/** How long control keeps retrying its JetStream setup while a (re)started cluster settles. */
export const JETSTREAM_SETTLE_LIMIT_MS = 60_000;

/**
 * True for what JetStream says (or does not say) while a restarted cluster
 * elects its leaders: the meta group has a leader, but a stream's raft group
 * has none yet, and requests that only a stream leader answers (the create or
 * info of an existing stream) get no answer at all: nats.js's TimeoutError.
 */
function jetStreamSettling(err: unknown): boolean {
  const e = err as (Error & { cause?: Error }) | undefined;
  if (e?.name === "TimeoutError" || e?.cause?.name === "TimeoutError") return true;
  return /temporarily unavailable|leader not (found|available)|no metadata leader/i.test(String(e?.message));
}

/**
 * Runs `work` until it succeeds, retrying (logged at info, with backoff) while
 * JetStream is settling, for at most `limitMs`; other errors are thrown at
 * once. docs/architecture.md §14 ("mesh up --secure" race).
 */
export async function whileJetStreamSettles<T>(what: string, logger: Logger, work: () => Promise<T>, limitMs = JETSTREAM_SETTLE_LIMIT_MS): Promise<T> {
  const deadline = Date.now() + limitMs;
  let waitMs = 250;
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (err) {
      if (!jetStreamSettling(err) || Date.now() + waitMs > deadline) throw err;
      logger.info({ what, attempt, retryInMs: waitMs, reason: String((err as Error).message) }, `${what}: JetStream did not answer yet; retrying`);
      await sleep(waitMs);
      waitMs = Math.min(waitMs * 2, 2_000);
    }
  }
}
