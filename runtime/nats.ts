import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { authenticatorFromFile } from "./credentials.ts";
import { Defaults } from "../schemas/defaults.ts";

export interface ConnectOptions {
  servers: string[];
  name: string;
  creds?: string;
  reconnectTimeWaitMs?: number;
  /** where this connection's inboxes live; a sidecar uses its private `_INBOX.<service>.c` */
  inboxPrefix?: string;
  logger: Logger;
  /** called after each reconnect (core NATS messages sent meanwhile were lost) */
  onReconnect?: () => void;
}

/**
 * Connects for the life of the process: every listed server is tried, lost
 * connections are re-established forever, and the client keeps no async stack
 * traces (nats.js would otherwise build an Error per request).
 */
export interface MeshConnection {
  nc: NatsConnection;
  /** false between a disconnect and the reconnect that follows it */
  connected(): boolean;
}

export async function connectNats(opts: ConnectOptions): Promise<MeshConnection> {
  const nc = await connect({
    servers: opts.servers,
    name: opts.name,
    noAsyncTraces: true,
    waitOnFirstConnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: opts.reconnectTimeWaitMs ?? Defaults.reconnectTimeWaitMs,
    pingInterval: 10_000,
    ...(opts.inboxPrefix ? { inboxPrefix: opts.inboxPrefix } : {}),
    ...(opts.creds ? { authenticator: await authenticatorFromFile(opts.creds) } : {}),
  });
  const state = { up: true };
  void followStatus(nc, opts.logger, state, opts.onReconnect);
  return { nc, connected: () => state.up && !nc.isClosed() };
}

async function followStatus(nc: NatsConnection, logger: Logger, state: { up: boolean }, onReconnect?: () => void): Promise<void> {
  for await (const s of nc.status()) {
    switch (s.type) {
      case "disconnect":
      case "reconnect":
        state.up = s.type === "reconnect";
        logger.warn({ server: s.server }, `nats ${s.type}`);
        if (s.type === "reconnect") onReconnect?.();
        break;
      case "error":
        logger.error({ err: s.error }, "nats error");
        break;
      default:
        break;
    }
  }
}
