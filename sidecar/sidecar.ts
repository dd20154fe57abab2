import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import type { NatsConnection } from "@nats-io/transport-node";
import pino, { type Logger } from "pino";
import { Registry } from "prom-client";
import { Pool } from "undici";
import { Defaults, connectNats, startAdmin, type Readiness, type SidecarConfig } from "../schemas/index.ts";
import { InboundAdapter } from "./inbound.ts";
import { createMetrics } from "./metrics.ts";
import { OutboundProxy } from "./outbound.ts";
import { SidecarPolicies } from "./policies.ts";
import { RegistryHeartbeat } from "./registry.ts";

export interface SidecarDeps {
  logger?: Logger;
  registry?: Registry;
}

export interface Sidecar {
  readonly config: Readonly<SidecarConfig>;
  readonly instance: string;
  readonly nc: NatsConnection;
  readonly outbound: AddressInfo;
  readonly admin: AddressInfo;
  readiness(): Promise<Readiness>;
  /** Graceful stop: leave the queue groups, answer everything in flight, close. */
  drain(): Promise<void>;
}

function hostPort(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(":");
  return { host: listen.slice(0, i), port: Number(listen.slice(i + 1)) };
}

/** Starts a sidecar from a validated config; resolves once it listens and has joined its queue groups. */
export async function startSidecar(config: Readonly<SidecarConfig>, deps: SidecarDeps = {}): Promise<Sidecar> {
  const instance = config.instance ?? `${hostname().split(".")[0]}-${randomBytes(3).toString("hex")}`;
  const logger = (deps.logger ?? pino({ level: config.logLevel })).child({ service: config.service, instance });
  const metrics = createMetrics(deps.registry ?? new Registry());
  const { nc, connected } = await connectNats({
    servers: config.nats,
    name: `mesh-sidecar/${config.service}/${instance}`,
    creds: config.creds,
    logger,
  });
  const pool = config.app
    ? new Pool(config.app, { connections: Defaults.appConnections, keepAliveTimeout: 30_000 })
    : undefined;
  const inbound =
    pool && config.app
      ? new InboundAdapter({ nc, service: config.service, version: config.version, instance, app: config.app, pool, defaultTimeoutMs: config.requestTimeoutMs, metrics, logger })
      : undefined;
  const policies = new SidecarPolicies({ nc, logger, registry: metrics.registry, service: config.service, provider: inbound !== undefined });
  const outbound = new OutboundProxy({
    nc,
    caller: config.service,
    ...hostPort(config.listen),
    defaultTimeoutMs: config.requestTimeoutMs,
    metrics,
    logger,
    routes: policies.routes,
  });
  const heartbeat = config.app
    ? new RegistryHeartbeat(nc, logger, { service: config.service, version: config.version, instance, app: config.app })
    : undefined;

  let draining: Promise<void> | undefined;
  const readiness = async (): Promise<Readiness> => {
    const reasons: string[] = [];
    if (draining) reasons.push("draining");
    if (!connected()) reasons.push("nats disconnected");
    if (!policies.loaded) reasons.push("policy not read yet");
    if (pool && !(await appAnswers(pool))) reasons.push(`application at '${config.app}' does not answer`);
    return { ready: reasons.length === 0, reasons };
  };

  const admin = await startAdmin({
    ...hostPort(config.admin),
    registry: metrics.registry,
    readiness,
    routes: { "/config": () => ({ service: config.service, version: config.version, instance, policies: policies.describe() }) },
  });
  // Policy first: no request is served under defaults that a policy overrides.
  await policies.start();
  const outboundAddress = await outbound.listen();
  await inbound?.start();
  await heartbeat?.start();
  logger.info({ outbound: outboundAddress, admin: admin.address, app: config.app, version: config.version }, "sidecar started");

  const drain = () => {
    draining ??= drainAll(config.drainTimeoutMs, logger, async () => {
      // Through a NATS that is gone nothing can be drained: just finish what is in flight.
      const viaNats = connected();
      if (viaNats) await heartbeat?.setState("draining");
      await inbound?.drain(viaNats);
      await outbound.close();
      if (viaNats) await heartbeat?.stop();
      policies.stop();
      await (connected() ? nc.drain() : nc.close());
      await pool?.close();
      await closeServer(admin.server);
    });
    return draining;
  };
  return { config, instance, nc, outbound: outboundAddress, admin: admin.address, readiness, drain };
}

async function drainAll(timeoutMs: number, logger: Logger, steps: () => Promise<void>): Promise<void> {
  logger.info("draining");
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<"expired">((resolve) => {
    timer = setTimeout(() => resolve("expired"), timeoutMs);
    timer.unref();
  });
  const outcome = await Promise.race([steps().then(() => "done" as const), expired]);
  clearTimeout(timer);
  if (outcome === "expired") logger.error({ timeoutMs }, "drain timed out with requests still in flight");
  else logger.info("drained");
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** Any HTTP answer, even a 404, proves the application is up. */
async function appAnswers(pool: Pool): Promise<boolean> {
  try {
    const res = await pool.request({ method: "GET", path: "/", headersTimeout: Defaults.appProbeTimeoutMs, bodyTimeout: Defaults.appProbeTimeoutMs });
    await res.body.dump();
    return true;
  } catch {
    return false;
  }
}
