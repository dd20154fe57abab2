import { nanos, type NatsConnection } from "@nats-io/transport-node";
import { DiscardPolicy, RetentionPolicy, StorageType, jetstreamManager } from "@nats-io/jetstream";
import type { Logger } from "pino";
import { ACCESS_STREAM, ACCESS_SUBJECTS } from "../schemas/index.ts";
import { withReplicaFallback } from "../runtime/index.ts";

export { ACCESS_STREAM };

/** Limits of MESH_ACCESS; whichever is reached first drops the oldest records. */
export const ACCESS_STREAM_LIMITS = {
  maxAgeMs: 24 * 60 * 60 * 1000,
  maxBytes: 256 * 1024 * 1024,
} as const;

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
