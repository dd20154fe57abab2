import type { Pool } from "undici";
import request from "undici/lib/api/api-request.js";
import Dispatcher from "undici/lib/dispatcher/dispatcher.js";
import PoolClass from "undici/lib/dispatcher/pool.js";
import { Defaults } from "../../schemas/index.ts";

// What undici's index does for every API; the sidecar calls only `request` (an upgrade goes through node:http).
if (Dispatcher.prototype.request === undefined) Object.assign(Dispatcher.prototype, { request });

/**
 * The connections to the local application. This module is imported on use,
 * so a sidecar without an app never loads undici. It takes undici's Pool and
 * request API alone: the package's index also loads fetch, WebSocket,
 * cookies and mocks, and through them Node's own copy of undici, which
 * doubled what undici cost a provider's start (docs/architecture.md §16).
 */
export function appPool(app: string): Pool {
  return new PoolClass(app, { connections: Defaults.appConnections, keepAliveTimeout: 30_000 });
}
