import type { NatsConnection } from "@nats-io/transport-node";
import { Registry } from "prom-client";
import { inboxPrefixFor } from "../schemas/index.ts";
import { closeNats, closeServer, connectNats, exitWhenStopped, hostPort, instanceName, processLogger, startAdmin, untilSignalled, type Readiness } from "../runtime/index.ts";
import { controlConfig } from "./config-view.ts";
import { startControl } from "./service.ts";
import { startDashboard } from "./dashboard/index.ts";

export interface ControlOptions {
  nats: string[];
  creds?: string;
  /** `host:port` of the admin listener (metrics, readiness) */
  admin: string;
  logLevel: string;
  /** give up the first NATS connection after this many ms (exit 3); absent: keep trying */
  connectTimeoutMs?: number;
}

/** `mesh control`: serves until SIGTERM or SIGINT, then stops and exits. Returns the exit code. */
export async function runControl(opts: ControlOptions): Promise<number> {
  const listen = hostPort(opts.admin);
  if (!listen) throw new RangeError(`--admin must be host:port, got '${opts.admin}'`);
  const instance = instanceName();
  const logger = processLogger(opts.logLevel, { component: "control", service: "mesh-control", instance });
  // The admin port opens at once; /readyz says what startup waits for (docs/architecture.md §14).
  const registry = new Registry();
  const state: { starting: string; readiness?: () => Readiness; nc?: NatsConnection } = { starting: `connecting to NATS at ${opts.nats.join(",")}` };
  const server = await startAdmin({
    ...listen,
    registry,
    readiness: async () => state.readiness?.() ?? { ready: false, reasons: [state.starting] },
    title: `mesh control, instance ${instance}`,
    routes: {
      "/config": { description: "the configuration this control runs with and its limits, secrets redacted", json: () => controlConfig(opts, instance, state.nc) },
    },
  });
  logger.info({ admin: server.address }, "admin listening");
  let connection;
  try {
    connection = await connectNats({
      servers: opts.nats,
      name: "mesh-control",
      // Its own inboxes: in secure mode control may read no others.
      inboxPrefix: inboxPrefixFor("control"),
      creds: opts.creds,
      logger,
      connectTimeoutMs: opts.connectTimeoutMs,
      onWaiting: (reason) => (state.starting = reason),
    });
  } catch (err) {
    await closeServer(server.server);
    logger.flush();
    throw err;
  }
  const { nc, connected } = connection;
  state.nc = nc;
  state.starting = "creating buckets and streams";
  const control = await startControl(nc, logger, registry, instance);
  const dashboard = startDashboard(control, logger);
  // Listed once there is something to show (docs/dashboard.md).
  server.register("/dashboard/", { description: "the live dashboard (mesh dashboard opens it)", handle: dashboard.handle });
  control.setAdminUrl(`http://${urlHost(server.address.address)}:${server.address.port}`);
  state.readiness = () => (connected() ? { ready: true, reasons: [] } : { ready: false, reasons: ["nats disconnected"] });
  logger.info({ admin: server.address }, "control started");
  await untilSignalled(logger);
  dashboard.stop();
  await control.stop().catch((err) => logger.warn({ err }, "control did not drain"));
  await closeNats(nc, connected());
  await closeServer(server.server);
  logger.info("control stopped");
  exitWhenStopped(logger);
  return 0;
}

/** An address as a URL host: IPv6 in brackets; a wildcard bind is reached on loopback. */
function urlHost(address: string): string {
  if (address === "0.0.0.0") return "127.0.0.1";
  if (address === "::") return "[::1]";
  return address.includes(":") ? `[${address}]` : address;
}
