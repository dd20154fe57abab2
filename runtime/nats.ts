import { setTimeout as sleep } from "node:timers/promises";
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
  /** give up the first connection after this many ms (NatsUnreachableError); absent: keep trying */
  connectTimeoutMs?: number;
  /** what the process is waiting for while it has not connected yet, for `/readyz` (docs/architecture.md §14) */
  onWaiting?: (reason: string) => void;
}

/** The first connection did not succeed within `--connect-timeout`; its message is the CLI's (exit 3). */
export class NatsUnreachableError extends Error {
  constructor(servers: readonly string[], reason: string) {
    super(`${natsUnreachable(servers)}: ${reason}`);
  }
}

/** `cannot reach NATS at URLS`: the words every command and process uses when NATS does not answer. */
export function natsUnreachable(servers: readonly string[]): string {
  return `cannot reach NATS at ${servers.join(",")}`;
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
  const nc = await firstConnect(opts);
  const state = { up: true };
  void followStatus(nc, opts.logger, state, opts.onReconnect);
  return { nc, connected: () => state.up && !nc.isClosed() };
}

/**
 * The first connection, retried with backoff until it succeeds or
 * `connectTimeoutMs` passes. Every failed attempt is logged at info with the
 * reason and the wait before the next, so a process pointed at a NATS that is
 * not there says so (docs/architecture.md §14).
 */
async function firstConnect(opts: ConnectOptions): Promise<NatsConnection> {
  const { firstConnectBackoffMs: backoff, firstConnectAttemptMs } = Defaults;
  const deadline = opts.connectTimeoutMs === undefined ? Infinity : Date.now() + opts.connectTimeoutMs;
  const authenticator = opts.creds ? await authenticatorFromFile(opts.creds) : undefined;
  const where = opts.servers.join(",");
  opts.onWaiting?.(`connecting to NATS at ${where}`);
  let waitMs: number = backoff.initial;
  for (let attempt = 1; ; attempt++) {
    try {
      const nc = await connect({
        servers: opts.servers,
        name: opts.name,
        noAsyncTraces: true,
        maxReconnectAttempts: -1,
        reconnectTimeWait: opts.reconnectTimeWaitMs ?? Defaults.reconnectTimeWaitMs,
        pingInterval: 10_000,
        timeout: Math.max(1, Math.min(firstConnectAttemptMs, deadline - Date.now())),
        ...(opts.inboxPrefix ? { inboxPrefix: opts.inboxPrefix } : {}),
        ...(authenticator ? { authenticator } : {}),
      });
      if (attempt > 1) opts.logger.info({ server: nc.getServer(), attempt }, `connected to NATS at ${nc.getServer()} after ${attempt} attempts`);
      return nc;
    } catch (err) {
      const reason = reasonOf(err);
      const left = deadline - Date.now();
      if (left <= 0) throw new NatsUnreachableError(opts.servers, reason);
      const nextMs = Math.min(waitMs, left);
      opts.logger.info({ servers: opts.servers, attempt, retryInMs: nextMs, reason }, `${natsUnreachable(opts.servers)}: ${reason}; retrying`);
      opts.onWaiting?.(`connecting to NATS at ${where}: attempt ${attempt} failed (${reason}), next in ${nextMs} ms`);
      await sleep(nextMs);
      waitMs = Math.min(waitMs * 2, backoff.max);
    }
  }
}

function reasonOf(err: unknown): string {
  const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
  return String(e?.message ?? e) + (e?.cause?.code && !String(e.message).includes(e.cause.code) ? ` (${e.cause.code})` : "");
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
