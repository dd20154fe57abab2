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
  kvMirrorStream,
  kvStream,
  quotaCounterTtlMs,
  type PolicyKind,
  type QuotaPer,
} from "../schemas/index.ts";
import { ensureKv, withReplicaFallback } from "../runtime/index.ts";
import { LEASE_BUCKET, LEASE_TTL_MS } from "./telemetry-lease.ts";

/** KV history kept per policy key: what `mesh history` and `mesh rollback` can reach. */
export const POLICY_HISTORY = 10;

export interface MeshBuckets {
  policy: Readonly<Record<PolicyKind, KV>>;
  registry: KV;
  /** global quota counters, one bucket per window length */
  quota: Readonly<Record<QuotaPer, KV>>;
  /** replicas the buckets were created with */
  replicas: number;
  /** the NATS cluster holding the policy buckets; undefined when not clustered */
  home: string | undefined;
}

/**
 * How sidecars follow a bucket (sidecar/policy/kv-follower.ts): JetStream
 * republishes each write, value and headers, on `mesh.kv.<bucket>.<key>`.
 * A follower takes a policy value from it only when JetStream's own headers
 * say it is stored under that very key and newer than what it has
 * (docs/security.md "How a sidecar follows a bucket").
 */
function republishOf(bucket: string): NonNullable<KvOptions["republish"]> {
  return { src: `$KV.${bucket}.>`, dest: kvChangesSubject(bucket), headers_only: false };
}

/**
 * Every KV bucket control creates, with the settings it creates it with:
 * ensureBuckets creates from this table and `mesh check` compares the live
 * buckets against it, so the settings are stated once.
 */
export interface BucketSpec {
  bucket: string;
  history: number;
  /** entries expire after this long; absent: never */
  ttlMs?: number;
  republish?: NonNullable<KvOptions["republish"]>;
  /** true: min(3, cluster size) replicas; false: always 1 */
  replicated: boolean;
}

export function bucketSpecs(): BucketSpec[] {
  return [
    { bucket: REGISTRY_BUCKET, history: 1, ttlMs: REGISTRY_TTL_MS, republish: republishOf(REGISTRY_BUCKET), replicated: true },
    ...POLICY_KINDS.map((kind) => ({ bucket: POLICY_BUCKETS[kind], history: POLICY_HISTORY, republish: republishOf(POLICY_BUCKETS[kind]), replicated: true })),
    // History 1: only the current count matters; the max age drops windows nobody asks for any more.
    // One replica: a revision-checked update is serialized only by a single stream store. In a
    // replicated stream the check runs before consensus, and concurrent updates with the same
    // revision can all succeed (nats-server#4320, fixed in 2.9.21 but still leader-local during a
    // leader change); that would grant permits twice. A counter node down = control unavailable
    // for quota (onUnavailable decides); a control restart loses nothing.
    ...QUOTA_PERS.map((per) => ({ bucket: QUOTA_COUNTER_BUCKETS[per], history: 1, ttlMs: quotaCounterTtlMs(per), replicated: false })),
    { bucket: LEASE_BUCKET, history: 1, ttlMs: LEASE_TTL_MS, replicated: true },
  ];
}

function specOf(bucket: string): BucketSpec {
  return bucketSpecs().find((s) => s.bucket === bucket)!;
}

/** The KV options a spec creates a bucket with. */
export function kvOptionsOf(spec: BucketSpec): Partial<KvOptions> {
  return { history: spec.history, ...(spec.ttlMs ? { ttl: spec.ttlMs } : {}), ...(spec.republish ? { republish: spec.republish } : {}) };
}

/** Idempotent: every control replica calls this at start. */
export async function ensureBuckets(nc: NatsConnection, logger: Logger): Promise<MeshBuckets> {
  const kvm = new Kvm(nc);
  const jsm = await jetstreamManager(nc);
  const first = await ensureKv(kvm, jsm, REGISTRY_BUCKET, kvOptionsOf(specOf(REGISTRY_BUCKET)), [3, 2, 1]);
  const replicas = [first.replicas];
  const policy = {} as Record<PolicyKind, KV>;
  for (const kind of POLICY_KINDS) {
    const bucket = POLICY_BUCKETS[kind];
    policy[kind] = (await ensureKv(kvm, jsm, bucket, kvOptionsOf(specOf(bucket)), replicas)).kv;
  }
  const quota = {} as Record<QuotaPer, KV>;
  for (const per of QUOTA_PERS) {
    const bucket = QUOTA_COUNTER_BUCKETS[per];
    quota[per] = (await ensureKv(kvm, jsm, bucket, kvOptionsOf(specOf(bucket)), [1])).kv;
  }
  const buckets = [REGISTRY_BUCKET, ...Object.values(POLICY_BUCKETS), ...Object.values(QUOTA_COUNTER_BUCKETS)];
  const home = (await jsm.streams.info(kvStream(POLICY_BUCKETS.Route))).cluster?.name;
  const region = mirrorRegion(nc, home);
  if (region) await ensurePolicyMirrors(jsm, region, logger);
  logger.info({ replicas: first.replicas, buckets, home }, "buckets ready");
  return { policy, registry: first.kv, quota, replicas: first.replicas, home };
}

/**
 * The region whose policy mirrors this control replica makes and reads: the
 * cluster it is connected to, unless that is the buckets' home (or either is
 * unknown: no supercluster). Read at each use: a reconnect may land elsewhere.
 */
export function mirrorRegion(nc: NatsConnection, home: string | undefined): string | undefined {
  const region = nc.info?.cluster;
  return home && region && region !== home ? region : undefined;
}

/**
 * A mirror of every policy bucket in `region` (docs/multi-region.md): with
 * `mirror_direct` the mirror answers the buckets' direct gets from sidecars
 * in its region, and it keeps answering, and lists keys, while the buckets'
 * home cluster is gone. Each control replica makes the one in its own
 * region; run one in every region. The registry and quota counters are not
 * mirrored: they are live state that only the home can change.
 */
async function ensurePolicyMirrors(jsm: JetStreamManager, region: string, logger: Logger): Promise<void> {
  for (const bucket of Object.values(POLICY_BUCKETS)) {
    const name = kvMirrorStream(bucket, region);
    await withReplicaFallback(async (replicas) => {
      try {
        await jsm.streams.add({
          name,
          mirror: { name: kvStream(bucket) },
          mirror_direct: true,
          allow_direct: true,
          max_msgs_per_subject: POLICY_HISTORY,
          placement: { cluster: region, tags: [] },
          num_replicas: replicas,
        });
      } catch (err) {
        if (!/already in use/i.test(String((err as Error).message))) throw err;
      }
    });
  }
  logger.info({ region }, "policy mirrors ready");
}
