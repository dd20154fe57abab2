import { randomBytes } from "node:crypto";
import type { Server } from "node:http";
import { createRequire } from "node:module";
import { hostname } from "node:os";
import type { NatsConnection } from "@nats-io/transport-node";
import pino, { type Logger } from "pino";

/**
 * What every long-running mesh process (sidecar, control) does the same way:
 * its logger, its instance name, waiting for a signal, closing NATS within a
 * bound, and exiting once it has stopped.
 */

/** A drained connection is closed after this long even if the server never confirms. */
export const NATS_DRAIN_LIMIT_MS = 5_000;

/** `<host>-<6 hex>`: one subject token, unique enough within a service. */
export function instanceName(): string {
  return `${hostname().split(".")[0]!.replace(/[^A-Za-z0-9_-]/g, "-")}-${randomBytes(3).toString("hex")}`;
}

/** pino-pretty's options: one line per entry, `[time] LEVEL component service: message {fields}`. */
const PRETTY = {
  colorize: process.stdout.isTTY === true,
  translateTime: "SYS:HH:MM:ss.l",
  singleLine: true,
  ignore: "pid,hostname,component,service,instance",
  messageFormat: "{component}{if service} {service}{end}: {msg}",
};

/** `MESH_LOG_FORMAT`: `json` or `pretty`; absent, pretty on a terminal and JSON anywhere else (files, pipes, `mesh up`). */
export function logFormat(env = process.env.MESH_LOG_FORMAT, tty = process.stdout.isTTY === true): "json" | "pretty" {
  if (env === "json" || env === "pretty") return env;
  return tty ? "pretty" : "json";
}

/**
 * The process logger: JSON lines on stdout, asynchronously, with the fields
 * every mesh process logs with (`component`, `service`, `instance`). On a
 * terminal the lines are made readable by pino-pretty in pino's worker
 * thread, off the request path (docs/cli.md "Logs").
 */
export function processLogger(level: string, base: { component: string; service?: string; instance?: string }): Logger {
  if (logFormat() === "pretty") {
    findTransportWorker();
    return pino({ level, base }, pino.transport({ target: "pino-pretty", options: PRETTY }));
  }
  return pino({ level, base }, pino.destination({ sync: false }));
}

/**
 * pino is bundled (scripts/bundle-cli.mjs), so its transport cannot find the
 * worker thread's file next to its own source: it is told where thread-stream
 * keeps it (pino's documented `__bundlerPathsOverrides`). From the sources
 * this names the same file pino would have found.
 */
function findTransportWorker(): void {
  const fromPino = createRequire(createRequire(import.meta.url).resolve("pino"));
  const overrides = ((globalThis as { __bundlerPathsOverrides?: Record<string, string> }).__bundlerPathsOverrides ??= {});
  overrides["thread-stream-worker"] ??= fromPino.resolve("thread-stream/lib/worker.js");
}

/** Resolves with the first SIGTERM or SIGINT, logged. */
export function untilSignalled(logger: Logger): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      logger.info({ signal }, "stopping");
      resolve(signal);
    };
    process.once("SIGTERM", stop);
    process.once("SIGINT", stop);
  });
}

/** Flushes the logger and exits: stopped means nothing of ours is left to finish, so a lingering handle must not keep the process alive. */
export function exitWhenStopped(logger: Logger, code = 0): void {
  logger.flush();
  setTimeout(() => process.exit(code), 100).unref();
}

/**
 * `work`, or nothing after `ms`: for shutdown steps that wait on NATS (a
 * subscription's drain, a last KV write), which never settle while the
 * connection is down and reconnecting. The timer does not hold the process.
 */
export function atMost(work: Promise<unknown>, ms = NATS_DRAIN_LIMIT_MS): Promise<void> {
  const bounded = new Promise<void>((resolve) => setTimeout(resolve, ms).unref());
  return Promise.race([work.then(() => undefined, () => undefined), bounded]);
}

/** Drains the connection (flushing what is buffered) if NATS is there, within a bound; then it is closed regardless. */
export async function closeNats(nc: NatsConnection, connected: boolean): Promise<void> {
  if (connected) await atMost(nc.drain());
  if (!nc.isClosed()) await nc.close().catch(() => undefined);
}

/** Closes an HTTP server, its keep-alive connections included. */
export function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** `host:port` split; undefined when it is not one. */
export function hostPort(listen: string): { host: string; port: number } | undefined {
  const i = listen.lastIndexOf(":");
  const port = Number(listen.slice(i + 1));
  return i > 0 && Number.isInteger(port) && port >= 0 && port <= 65535 ? { host: listen.slice(0, i), port } : undefined;
}
