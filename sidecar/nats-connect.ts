import { readFile } from "node:fs/promises";
import { connect, credsAuthenticator, nkeyAuthenticator, type Authenticator, type NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";

export interface ConnectOptions {
  servers: string[];
  name: string;
  creds?: string;
  reconnectTimeWaitMs?: number;
  logger: Logger;
}

/** A creds file holds a JWT and a seed; a `.nk` file holds only an nkey seed. */
async function authenticatorFrom(file: string): Promise<Authenticator> {
  const text = await readFile(file, "utf8");
  if (text.includes("BEGIN NATS USER JWT")) return credsAuthenticator(new TextEncoder().encode(text));
  const seed = text.split(/\s+/).find((word) => word.startsWith("SU"));
  if (!seed) throw new Error(`'${file}' holds neither NATS creds nor a user nkey seed`);
  return nkeyAuthenticator(new TextEncoder().encode(seed));
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
    reconnectTimeWait: opts.reconnectTimeWaitMs ?? 250,
    pingInterval: 10_000,
    ...(opts.creds ? { authenticator: await authenticatorFrom(opts.creds) } : {}),
  });
  const state = { up: true };
  void followStatus(nc, opts.logger, state);
  return { nc, connected: () => state.up && !nc.isClosed() };
}

async function followStatus(nc: NatsConnection, logger: Logger, state: { up: boolean }): Promise<void> {
  for await (const s of nc.status()) {
    switch (s.type) {
      case "disconnect":
      case "reconnect":
        state.up = s.type === "reconnect";
        logger.warn({ server: s.server }, `nats ${s.type}`);
        break;
      case "error":
        logger.error({ err: s.error }, "nats error");
        break;
      default:
        break;
    }
  }
}
