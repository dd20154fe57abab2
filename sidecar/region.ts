import type { NatsConnection } from "@nats-io/transport-node";

/** Region names as the schemas allow them (one label value, one subject-safe token). */
const REGION_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * This sidecar's region (docs/multi-region.md): its `--region`, else the
 * name of the NATS cluster its server belongs to (the server's INFO), read
 * anew each time since a reconnect may land in another cluster. Undefined
 * when neither says: then every instance counts as local.
 */
export function regionOf(configured: string | undefined, nc: NatsConnection): () => string | undefined {
  if (configured !== undefined) return () => configured;
  return () => {
    const cluster = nc.info?.cluster;
    return cluster !== undefined && REGION_NAME.test(cluster) ? cluster : undefined;
  };
}
