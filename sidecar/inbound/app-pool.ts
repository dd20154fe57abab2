import { Pool } from "undici";
import { Defaults } from "../../schemas/index.ts";

/**
 * The connections to the local application. This module is imported on use,
 * so a sidecar without an app never loads undici (docs/architecture.md §16).
 */
export function appPool(app: string): Pool {
  return new Pool(app, { connections: Defaults.appConnections, keepAliveTimeout: 30_000 });
}
