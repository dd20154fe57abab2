import { inboxPrefixFor } from "../schemas/index.ts";
import { closeNats, closeServer, connectNats, exitWhenStopped, hostPort, instanceName, processLogger, startAdmin, untilSignalled } from "../runtime/index.ts";
import { controlConfig } from "./config-view.ts";
import { startControl } from "./service.ts";
import { startDashboard } from "./dashboard/index.ts";

export interface ControlOptions {
  nats: string[];
  creds?: string;
  /** `host:port` of the admin listener (metrics, readiness) */
  admin: string;
  logLevel: string;
}

/** `mesh control`: serves until SIGTERM or SIGINT, then stops and exits. Returns the exit code. */
export async function runControl(opts: ControlOptions): Promise<number> {
  const listen = hostPort(opts.admin);
  if (!listen) throw new RangeError(`--admin must be host:port, got '${opts.admin}'`);
  const instance = instanceName();
  const logger = processLogger(opts.logLevel, { component: "control", service: "mesh-control", instance });
  const { nc, connected } = await connectNats({
    servers: opts.nats,
    name: "mesh-control",
    // Its own inboxes: in secure mode control may read no others.
    inboxPrefix: inboxPrefixFor("control"),
    creds: opts.creds,
    logger,
  });
  const control = await startControl(nc, logger, undefined, instance);
  const dashboard = startDashboard(control, logger);
  const server = await startAdmin({
    ...listen,
    registry: control.registry,
    readiness: async () => (connected() ? { ready: true, reasons: [] } : { ready: false, reasons: ["nats disconnected"] }),
    title: `mesh control, instance ${instance}`,
    routes: {
      "/config": { description: "the configuration this control runs with and its limits, secrets redacted", json: () => controlConfig(opts, instance, nc) },
      "/dashboard/": { description: "the live dashboard (mesh dashboard opens it)", handle: dashboard.handle },
    },
  });
  control.setAdminUrl(`http://${urlHost(server.address.address)}:${server.address.port}`);
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
