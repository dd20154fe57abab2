import type { AddressInfo } from "node:net";
import type { NatsConnection } from "@nats-io/transport-node";
import pino, { type Logger } from "pino";
import { Registry } from "prom-client";
import type { Pool } from "undici";
import { clientInboxPrefix, type SidecarConfig } from "../schemas/index.ts";
import {
  closeNats,
  closeServer,
  connectNats,
  exitWhenStopped,
  hostPort,
  instanceName,
  processLogger,
  startAdmin,
  untilSignalled,
  type Readiness,
} from "../runtime/index.ts";
import { createAdmission, forbidden } from "./inbound/admission.ts";
import { AppHealth } from "./inbound/app-health.ts";
import { MeshCaller } from "./outbound/caller.ts";
import { Inbox } from "./inbox.ts";
import { streamSettingsOf } from "./streaming/exchange.ts";
import { Destinations } from "./resilience/destinations.ts";
import { InboundAdapter } from "./inbound/adapter.ts";
import { createMalformedReporter } from "./inbound/malformed.ts";
import { createMetrics, type SidecarMetrics } from "./observability/metrics.ts";
import { OutboundProxy } from "./outbound/listener.ts";
import { SidecarPolicies } from "./policy/policies.ts";
import { createQuotaGate, type QuotaGate } from "./inbound/quota-gate.ts";
import { RegistryHeartbeat } from "./inbound/registry-heartbeat.ts";
import { fanOut, type RequestObserver } from "./observability/request-record.ts";
import { createObservability } from "./observability/observability.ts";
import { regionOf } from "./region.ts";
import { setSidecarV8Flags } from "./v8-flags.ts";

export interface SidecarDeps {
  logger?: Logger;
  registry?: Registry;
  /** more observers of every request (telemetry, access logs, tracing) */
  observers?: RequestObserver[];
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

/** What the admin listener shows before and after the sidecar has connected. */
interface SidecarState {
  /** the startup step under way, for /readyz until `readiness` is set */
  starting: string;
  readiness?: () => Promise<Readiness>;
  config?: () => unknown;
  draining?: Promise<void>;
}

/** `host:port` of a validated config (the schema checks the form). */
function listenAddress(listen: string): { host: string; port: number } {
  return hostPort(listen)!;
}

/** The provider half: the app's pool, the inbound adapter, its health and its registry entry. */
interface ProviderParts {
  pool: Pool;
  quota: QuotaGate;
  inbound: InboundAdapter;
  health: AppHealth;
  heartbeat: RegistryHeartbeat;
}

async function providerParts(
  config: Readonly<SidecarConfig> & { app: string },
  c: { nc: NatsConnection; inbox: Inbox; instance: string; logger: Logger; observe: RequestObserver; policies: SidecarPolicies; metrics: SidecarMetrics; quota: QuotaGate; region: () => string | undefined },
): Promise<ProviderParts> {
  const { appPool } = await import("./inbound/app-pool.ts");
  const pool = appPool(config.app);
  const inbound = new InboundAdapter({
    nc: c.nc,
    inbox: c.inbox,
    streams: streamSettingsOf(config),
    maxBodyBytes: config.maxBodyBytes,
    instance: c.instance,
    logger: c.logger,
    observe: c.observe,
    gate: createAdmission({ service: config.service, policies: c.policies, quota: c.quota, metrics: c.metrics }),
    service: config.service,
    version: config.version,
    app: config.app,
    pool,
    defaultTimeoutMs: config.requestTimeoutMs,
    maxConcurrent: config.maxConcurrent,
    maxDeadlineMs: config.maxDeadlineMs,
    onMalformed: createMalformedReporter(c.logger, c.metrics.registry),
  });
  const heartbeat = new RegistryHeartbeat(c.nc, c.logger, { service: config.service, version: config.version, instance: c.instance, app: config.app }, c.region);
  const health = new AppHealth({
    pool,
    logger: c.logger,
    onDown: async () => {
      await heartbeat.setState("unready");
      await inbound.leave();
    },
    onUp: async () => {
      await inbound.start();
      await heartbeat.setState("ready");
    },
  });
  return { pool, quota: c.quota, inbound, health, heartbeat };
}

function callerParts(
  config: Readonly<SidecarConfig>,
  c: { nc: NatsConnection; inbox: Inbox; policies: SidecarPolicies; metrics: SidecarMetrics; logger: Logger; observe: RequestObserver; region: () => string | undefined },
) {
  const destinations = new Destinations({
    now: Date.now,
    random: Math.random,
    instances: c.policies.instances,
    hooks: { onBreakerChange: (service, version, to) => c.metrics.breaker(service, version, to) },
  });
  const mesh = new MeshCaller({
    nc: c.nc,
    caller: config.service,
    region: c.region,
    routes: c.policies.routes,
    destinations,
    onRetry: (service) => c.metrics.retry(config.service, service),
    inbox: c.inbox,
    streams: streamSettingsOf(config),
    defaultTimeoutMs: config.requestTimeoutMs,
    // Fail fast on what the provider would refuse anyway; its own check is the one that counts.
    authorize: (service, method, path) => {
      if (c.policies.authz.get(service)?.(config.service, method, path) !== "deny") return undefined;
      c.metrics.authz(service, config.service, "deny");
      return forbidden(config.service, service, method, path);
    },
  });
  return new OutboundProxy({
    caller: config.service,
    ...listenAddress(config.listen),
    maxPayload: () => c.nc.info?.max_payload ?? 1024 * 1024,
    streams: streamSettingsOf(config),
    maxBodyBytes: (service) => c.policies.routes.get(service)?.source.maxBodyBytes ?? config.maxBodyBytes,
    headersTimeoutMs: config.headersTimeoutMs,
    bodyIdleTimeoutMs: config.bodyIdleTimeoutMs,
    mesh,
    observe: c.observe,
    logger: c.logger,
  });
}

/** Starts a sidecar from a validated config; resolves once it has read policy, listens and has joined its queue groups. */
export async function startSidecar(config: Readonly<SidecarConfig>, deps: SidecarDeps = {}): Promise<Sidecar> {
  const instance = config.instance ?? instanceName();
  const logger = (deps.logger ?? pino({ level: config.logLevel })).child({ service: config.service, instance });
  // The admin port opens at once: /healthz is live and /readyz says what startup waits for (docs/architecture.md §14).
  const registry = deps.registry ?? new Registry();
  const state: SidecarState = { starting: `connecting to NATS at ${config.nats.join(",")}` };
  const admin = await startAdmin({
    ...listenAddress(config.admin),
    registry,
    readiness: () => state.readiness?.() ?? Promise.resolve({ ready: false, reasons: [state.starting] }),
    title: `sidecar of ${config.service} ${config.version}, instance ${instance}`,
    routes: {
      "/config": {
        description: "the policies this sidecar applied, with their revisions, and the revisions it rejected",
        json: () => state.config?.() ?? { service: config.service, version: config.version, instance, starting: state.starting },
      },
    },
  });
  logger.info({ admin: admin.address }, "admin listening");
  // Declared before the connection: its reconnect handler re-reads policy.
  let policies: SidecarPolicies | undefined;
  const { nc, connected } = await connectNats({
    servers: config.nats,
    name: `mesh-sidecar/${config.service}/${instance}`,
    creds: config.creds,
    inboxPrefix: clientInboxPrefix(config.service),
    logger,
    onReconnect: () => policies?.resync(),
    connectTimeoutMs: config.connectTimeoutMs,
    onWaiting: (reason) => (state.starting = reason),
  }).catch(async (err: unknown) => {
    await closeServer(admin.server);
    throw err;
  });
  state.starting = "policy not read yet";
  const region = regionOf(config.region, nc);
  // Metrics, telemetry to control, access logs to JetStream, spans to OTLP: all fed by one record per request.
  const observability = createObservability({
    nc,
    region,
    service: config.service,
    instance,
    version: config.version,
    otlpUrl: config.otlp,
    logger,
    metrics: createMetrics(registry),
  });
  const metrics = observability.metrics;
  const observe = fanOut([...observability.observers, ...(deps.observers ?? [])], (err) => logger.warn({ err }, "request observer failed"));
  // Every answer and stream this sidecar takes part in comes back to one inbox.
  const inbox = new Inbox(nc, config.service, (sender, expected) => logger.warn({ sender, expected }, "ignored a message from another service than expected"));
  // With an application to serve it is a provider; without, it only calls out.
  const app = config.app;
  const quota = app ? createQuotaGate({ nc, service: config.service, logger, onDecision: (caller, d) => metrics.quota(config.service, caller, d) }) : undefined;
  policies = new SidecarPolicies({
    nc,
    region,
    logger,
    registry: metrics.registry,
    service: config.service,
    provider: app !== undefined,
    onQuota: (policy) => quota?.setPolicy(policy),
  });
  const provider = app && quota ? await providerParts({ ...config, app }, { nc, inbox, instance, logger, observe, policies, metrics, quota, region }) : undefined;
  const outbound = callerParts(config, { nc, inbox, policies, metrics, logger, observe, region });

  const readiness = () => readinessOf(config, { state, connected, policies, provider });
  state.readiness = readiness;
  state.config = () => {
    const { applied, rejected } = policies.describe();
    return { service: config.service, version: config.version, instance, region: region() ?? null, policies: applied, rejectedPolicies: rejected };
  };
  // Policy first: no request is served under defaults that a policy overrides.
  await policies.start();
  const outboundAddress = await outbound.listen();
  if (provider) await joinMesh(provider);
  logger.info({ outbound: outboundAddress, admin: admin.address, app: config.app, version: config.version }, "sidecar started");

  const drain = () => {
    state.draining ??= drainAll(config.drainTimeoutMs, logger, async () => {
      // Through a NATS that is gone nothing can be drained: just finish what is in flight.
      const viaNats = connected();
      if (provider) await leaveMesh(provider, viaNats);
      await outbound.close();
      if (viaNats) await provider?.quota.close();
      if (viaNats) await provider?.heartbeat.stop();
      policies.stop();
      await observability.stop();
      await closeNats(nc, connected());
      await provider?.pool.close();
      await closeServer(admin.server);
    });
    return state.draining;
  };
  return { config, instance, nc, outbound: outboundAddress, admin: admin.address, readiness, drain };
}

/** What a sidecar's /readyz reports: ready when nothing stands in a request's way (docs/architecture.md §14). */
export function readinessOf(
  config: Readonly<Pick<SidecarConfig, "app">>,
  c: {
    state: Pick<SidecarState, "draining">;
    connected: () => boolean;
    policies: Pick<SidecarPolicies, "loaded">;
    provider: { health: { up: boolean }; inbound: { joined: boolean } } | undefined;
  },
): Promise<Readiness> {
  const reasons: string[] = [];
  if (c.state.draining) reasons.push("draining");
  if (!c.connected()) reasons.push("nats disconnected");
  if (!c.policies.loaded) reasons.push("policy not read yet");
  // The same verdict that takes the instance out of its queue groups, so the two always agree.
  if (c.provider && !c.provider.health.up) reasons.push(`application at '${config.app}' does not answer`);
  // The app answers, but the server does not have this instance's subscriptions yet (joining, or
  // rejoining after the app came back): a request now would find no responders.
  else if (c.provider && !c.provider.inbound.joined) reasons.push("not in its queue groups yet");
  return Promise.resolve({ ready: reasons.length === 0, reasons });
}

/** Joins the queue groups if the app answers (health rejoins later otherwise) and registers the instance. */
async function joinMesh(p: ProviderParts): Promise<void> {
  await p.health.start();
  if (p.health.up) await p.inbound.start();
  await p.heartbeat.start(p.health.up ? "ready" : "unready");
}

/** Says it is draining, leaves the queue groups and answers everything already received. */
async function leaveMesh(p: ProviderParts, viaNats: boolean): Promise<void> {
  p.health.stop();
  if (viaNats) await p.heartbeat.setState("draining");
  await p.inbound.drain(viaNats);
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

/**
 * `mesh sidecar`: starts from a validated config, runs until SIGTERM or
 * SIGINT, then drains and exits. Returns the exit code.
 */
export async function runSidecar(config: Readonly<SidecarConfig>): Promise<number> {
  const stopYoungGenerationCap = setSidecarV8Flags();
  const instance = config.instance ?? instanceName();
  // startSidecar adds service and instance to every line.
  const logger = processLogger(config.logLevel, { component: "sidecar" });
  const sidecar = await startSidecar({ ...config, instance }, { logger }).catch((err: unknown) => {
    logger.flush();
    throw err;
  });
  await untilSignalled(logger);
  await sidecar.drain();
  stopYoungGenerationCap();
  exitWhenStopped(logger);
  return 0;
}
