import { nanos, type NatsConnection } from "@nats-io/transport-node";
import { DiscardPolicy, RetentionPolicy, StorageType, jetstreamManager } from "@nats-io/jetstream";
import type { Logger } from "pino";
import { ACCESS_STREAM, ACCESS_SUBJECTS } from "../schemas/index.ts";

export { ACCESS_STREAM };

/** Limits of MESH_ACCESS; whichever is reached first drops the oldest records. */
export const ACCESS_STREAM_LIMITS = {
  maxAgeMs: 24 * 60 * 60 * 1000,
  maxBytes: 256 * 1024 * 1024,
} as const;

/** nats-server refuses more replicas than the cluster has nodes; this is how it says so. */
export function tooManyReplicas(err: unknown): boolean {
  return /insufficient resources|replicas > 1 not supported|no suitable peers/i.test(String((err as Error)?.message));
}

/**
 * Runs `create` with 3 replicas, then 2, then 1, until the cluster accepts:
 * min(3, cluster size), since the cluster's size is not visible to a client.
 */
export async function withReplicaFallback<T>(create: (replicas: number) => Promise<T>, replicas = [3, 2, 1]): Promise<T> {
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
 * Creates MESH_ACCESS on `mesh.access.>` unless it exists. Idempotent: every
 * control replica calls it at start; an existing stream is used as it is (an
 * operator may have changed its limits on purpose).
 */
export async function ensureAccessStream(nc: NatsConnection, logger: Logger): Promise<{ replicas: number }> {
  const jsm = await jetstreamManager(nc);
  const existing = await jsm.streams.info(ACCESS_STREAM).catch(() => undefined);
  if (existing) return { replicas: existing.config.num_replicas };
  const replicas = await withReplicaFallback(async (num_replicas) => {
    try {
      await jsm.streams.add({
        name: ACCESS_STREAM,
        subjects: [ACCESS_SUBJECTS],
        retention: RetentionPolicy.Limits,
        storage: StorageType.File,
        discard: DiscardPolicy.Old,
        max_age: nanos(ACCESS_STREAM_LIMITS.maxAgeMs),
        max_bytes: ACCESS_STREAM_LIMITS.maxBytes,
        num_replicas,
      });
    } catch (err) {
      // Another replica created it meanwhile.
      if (!/already in use/i.test(String((err as Error).message))) throw err;
    }
    return num_replicas;
  });
  logger.info({ stream: ACCESS_STREAM, subjects: ACCESS_SUBJECTS, replicas, ...ACCESS_STREAM_LIMITS }, "access log stream ready");
  return { replicas };
}
