import type { NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import type { Logger } from "pino";
import { ensureKv, whileJetStreamSettles } from "../runtime/index.ts";

/**
 * Which control replica exposes the mesh-wide metrics. Every replica merges
 * every sidecar's deltas (a plain subscription, so any of them can take over
 * with totals in hand), but only the holder of this lease shows them on
 * `/metrics`: Prometheus may scrape every replica and `sum` without counting
 * anything twice. The lease is a key in a KV bucket whose entries expire
 * after LEASE_TTL_MS, renewed with a revision-checked update.
 */
export const LEASE_BUCKET = "mesh_leases";
export const TELEMETRY_LEASE_KEY = "telemetry";
/** A holder that stops renewing loses the lease this long after its last renewal. */
export const LEASE_TTL_MS = 6_000;
export const LEASE_RENEW_MS = 2_000;

export interface Lease {
  /** true while this replica holds the lease */
  held(): boolean;
  /** gives the lease up at once, so another replica takes over on its next try */
  stop(): Promise<void>;
}

async function openBucket(nc: NatsConnection): Promise<KV> {
  return (await ensureKv(new Kvm(nc), await jetstreamManager(nc), LEASE_BUCKET, { history: 1, ttl: LEASE_TTL_MS })).kv; // bucketSpecs() (buckets.ts) lists the same
}

/** Tries to take (or keeps) the lease now and every LEASE_RENEW_MS; `onChange` hears of every gain and loss. */
export async function startLease(nc: NatsConnection, holder: string, logger: Logger, onChange: (held: boolean) => void): Promise<Lease> {
  const kv = await whileJetStreamSettles("opening the telemetry lease", logger, () => openBucket(nc));
  let revision: number | undefined;
  let stopped = false;

  const set = (next: number | undefined) => {
    const was = revision !== undefined;
    revision = next;
    if (was !== (next !== undefined)) {
      logger.info({ lease: TELEMETRY_LEASE_KEY, holder }, next !== undefined ? "telemetry lease taken: exposing mesh metrics" : "telemetry lease lost");
      onChange(next !== undefined);
    }
  };

  const tick = async (): Promise<void> => {
    try {
      set(revision !== undefined ? await kv.update(TELEMETRY_LEASE_KEY, holder, revision) : await kv.create(TELEMETRY_LEASE_KEY, holder));
    } catch {
      // Held by another replica, or our renewal failed: perhaps it was written but
      // its answer lost; then the entry is still ours.
      const entry = await kv.get(TELEMETRY_LEASE_KEY).catch(() => null);
      set(entry?.operation === "PUT" && entry.string() === holder ? entry.revision : undefined);
    }
  };

  await tick();
  let running: Promise<void> | undefined;
  const timer = setInterval(() => {
    if (!running && !stopped) running = tick().finally(() => (running = undefined));
  }, LEASE_RENEW_MS);
  timer.unref();

  return {
    held: () => revision !== undefined,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
      if (revision === undefined) return;
      await kv.delete(TELEMETRY_LEASE_KEY, { previousSeq: revision }).catch(() => undefined);
      set(undefined);
    },
  };
}
