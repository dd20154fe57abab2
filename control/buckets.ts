import type { NatsConnection } from "@nats-io/transport-node";
import { Kvm, type KV, type KvOptions } from "@nats-io/kv";
import type { Logger } from "pino";
import { POLICY_BUCKETS, POLICY_KINDS, REGISTRY_BUCKET, REGISTRY_TTL_MS, type PolicyKind } from "../schemas/index.ts";

/** KV history kept per policy key: what `mesh history` and `mesh rollback` can reach. */
export const POLICY_HISTORY = 10;

export interface MeshBuckets {
  policy: Readonly<Record<PolicyKind, KV>>;
  registry: KV;
  /** replicas the buckets were created with */
  replicas: number;
}

/** nats-server refuses more replicas than the cluster has nodes; this is how it says so. */
function tooManyReplicas(err: unknown): boolean {
  return /insufficient resources|replicas > 1 not supported|no suitable peers/i.test(String((err as Error)?.message));
}

/**
 * Creates (or opens) a bucket with min(3, cluster size) replicas. The
 * cluster's size is not visible to a client, so try 3, then fewer.
 */
async function ensureBucket(kvm: Kvm, name: string, opts: Partial<KvOptions>, replicas: number[]): Promise<{ kv: KV; replicas: number }> {
  let lastErr: unknown;
  for (const r of replicas) {
    try {
      const kv = await kvm.create(name, { ...opts, replicas: r });
      return { kv, replicas: r };
    } catch (err) {
      lastErr = err;
      if (/already in use/i.test(String((err as Error).message))) {
        // It exists with another configuration (e.g. made by an older control): use it as it is.
        const kv = await kvm.open(name);
        return { kv, replicas: (await kv.status()).replicas };
      }
      if (!tooManyReplicas(err)) throw err;
    }
  }
  throw lastErr;
}

/** Idempotent: every control replica calls this at start. */
export async function ensureBuckets(nc: NatsConnection, logger: Logger): Promise<MeshBuckets> {
  const kvm = new Kvm(nc);
  const first = await ensureBucket(kvm, REGISTRY_BUCKET, { history: 1, ttl: REGISTRY_TTL_MS }, [3, 2, 1]);
  const replicas = [first.replicas];
  const policy = {} as Record<PolicyKind, KV>;
  for (const kind of POLICY_KINDS) {
    policy[kind] = (await ensureBucket(kvm, POLICY_BUCKETS[kind], { history: POLICY_HISTORY }, replicas)).kv;
  }
  logger.info({ replicas: first.replicas, buckets: [REGISTRY_BUCKET, ...Object.values(POLICY_BUCKETS)] }, "buckets ready");
  return { policy, registry: first.kv, replicas: first.replicas };
}
