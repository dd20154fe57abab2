import type { NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { Kvm, type KV, type KvOptions } from "@nats-io/kv";
import type { Logger } from "pino";
import {
  POLICY_BUCKETS,
  POLICY_KINDS,
  QUOTA_COUNTER_BUCKETS,
  QUOTA_PERS,
  REGISTRY_BUCKET,
  REGISTRY_TTL_MS,
  kvChangesSubject,
  kvStream,
  quotaCounterTtlMs,
  type PolicyKind,
  type QuotaPer,
} from "../schemas/index.ts";

/** KV history kept per policy key: what `mesh history` and `mesh rollback` can reach. */
export const POLICY_HISTORY = 10;

export interface MeshBuckets {
  policy: Readonly<Record<PolicyKind, KV>>;
  registry: KV;
  /** global quota counters, one bucket per window length */
  quota: Readonly<Record<QuotaPer, KV>>;
  /** replicas the buckets were created with */
  replicas: number;
}

/** nats-server refuses more replicas than the cluster has nodes; this is how it says so. */
function tooManyReplicas(err: unknown): boolean {
  return /insufficient resources|replicas > 1 not supported|no suitable peers/i.test(String((err as Error)?.message));
}

/**
 * How sidecars follow a bucket (sidecar/kv-follower.ts): JetStream republishes
 * each write on `mesh.kv.<bucket>.<key>`. Policy buckets send headers only (a
 * change is a hint to read the newest revision); the registry sends its
 * values (heartbeats are applied as they come).
 */
function republishOf(bucket: string, headersOnly: boolean): NonNullable<KvOptions["republish"]> {
  return { src: `$KV.${bucket}.>`, dest: kvChangesSubject(bucket), headers_only: headersOnly };
}

/**
 * Creates (or opens) a bucket with min(3, cluster size) replicas. The
 * cluster's size is not visible to a client, so try 3, then fewer.
 */
async function ensureBucket(kvm: Kvm, jsm: JetStreamManager, name: string, opts: Partial<KvOptions>, replicas: number[]): Promise<{ kv: KV; replicas: number }> {
  let lastErr: unknown;
  for (const r of replicas) {
    try {
      const kv = await kvm.create(name, { ...opts, replicas: r });
      return { kv, replicas: r };
    } catch (err) {
      lastErr = err;
      if (/already in use/i.test(String((err as Error).message))) {
        // It exists with another configuration (e.g. made by an older control): use it as it is,
        // except that sidecars follow it only through its republished changes.
        if (opts.republish) await ensureRepublish(jsm, name, opts.republish);
        const kv = await kvm.open(name);
        return { kv, replicas: (await kv.status()).replicas };
      }
      if (!tooManyReplicas(err)) throw err;
    }
  }
  throw lastErr;
}

async function ensureRepublish(jsm: JetStreamManager, bucket: string, republish: NonNullable<KvOptions["republish"]>): Promise<void> {
  const { config } = await jsm.streams.info(kvStream(bucket));
  const current = config.republish;
  if (current?.src === republish.src && current.dest === republish.dest && Boolean(current.headers_only) === Boolean(republish.headers_only)) return;
  await jsm.streams.update(kvStream(bucket), { ...config, republish });
}

/** Idempotent: every control replica calls this at start. */
export async function ensureBuckets(nc: NatsConnection, logger: Logger): Promise<MeshBuckets> {
  const kvm = new Kvm(nc);
  const jsm = await jetstreamManager(nc);
  const registryOpts = { history: 1, ttl: REGISTRY_TTL_MS, republish: republishOf(REGISTRY_BUCKET, false) };
  const first = await ensureBucket(kvm, jsm, REGISTRY_BUCKET, registryOpts, [3, 2, 1]);
  const replicas = [first.replicas];
  const policy = {} as Record<PolicyKind, KV>;
  for (const kind of POLICY_KINDS) {
    const bucket = POLICY_BUCKETS[kind];
    policy[kind] = (await ensureBucket(kvm, jsm, bucket, { history: POLICY_HISTORY, republish: republishOf(bucket, true) }, replicas)).kv;
  }
  const quota = {} as Record<QuotaPer, KV>;
  for (const per of QUOTA_PERS) {
    // History 1: only the current count matters; the max age drops windows nobody asks for any more.
    // One replica: a revision-checked update is serialized only by a single stream store. In a
    // replicated stream the check runs before consensus, and concurrent updates with the same
    // revision can all succeed (nats-server#4320, fixed in 2.9.21 but still leader-local during a
    // leader change); that would grant permits twice. A counter node down = control unavailable
    // for quota (onUnavailable decides); a control restart loses nothing.
    quota[per] = (await ensureBucket(kvm, jsm, QUOTA_COUNTER_BUCKETS[per], { history: 1, ttl: quotaCounterTtlMs(per) }, [1])).kv;
  }
  const buckets = [REGISTRY_BUCKET, ...Object.values(POLICY_BUCKETS), ...Object.values(QUOTA_COUNTER_BUCKETS)];
  logger.info({ replicas: first.replicas, buckets }, "buckets ready");
  return { policy, registry: first.kv, quota, replicas: first.replicas };
}
