import type { NatsConnection, ServerInfo } from "@nats-io/transport-node";
import { INSTANCE_NAME } from "../schemas/index.ts";

/**
 * This sidecar's region (docs/multi-region.md): its `--region`, else the
 * name of the NATS cluster its server belongs to (the server's INFO), read
 * anew whenever the server's INFO changes, since a reconnect may land in
 * another cluster. Undefined when neither says: then every instance counts
 * as local. A cluster name is taken only as the schemas allow a region (one
 * label value, one subject-safe token: the instance-name pattern).
 */
export function regionOf(configured: string | undefined, nc: NatsConnection): () => string | undefined {
  if (configured !== undefined) return () => configured;
  let seen: ServerInfo | undefined;
  let region: string | undefined;
  return () => {
    const info = nc.info;
    if (info !== seen) {
      seen = info;
      const cluster = info?.cluster;
      region = cluster !== undefined && INSTANCE_NAME.test(cluster) ? cluster : undefined;
    }
    return region;
  };
}
