import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { parseArgs } from "node:util";
import pino from "pino";
import { Defaults, connectNats, inboxPrefixFor, startAdmin } from "../schemas/index.ts";
import { CliError, Exit, natsServers } from "./client.ts";
import { startControl } from "./service.ts";

/** `mesh control [--nats URLS] [--admin 127.0.0.1:15100] [--creds FILE]`: runs until SIGTERM or SIGINT. */
export async function runControl(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: { nats: { type: "string" }, admin: { type: "string" }, creds: { type: "string" }, "log-level": { type: "string" } },
      strict: true,
    }));
  } catch (err) {
    throw new CliError(Exit.usage, `mesh control: ${(err as Error).message}`);
  }
  const admin = values.admin ?? process.env.MESH_CONTROL_ADMIN ?? Defaults.controlAdminListen;
  const colon = admin.lastIndexOf(":");
  const port = Number(admin.slice(colon + 1));
  if (colon < 1 || !Number.isInteger(port)) throw new CliError(Exit.usage, `mesh control: --admin must be host:port, got '${admin}'`);
  // The field set every mesh process logs with: component, service, instance.
  const instance = `${hostname().split(".")[0]}-${randomBytes(3).toString("hex")}`;
  const base = { component: "control", service: "mesh-control", instance };
  const logger = pino({ level: values["log-level"] ?? process.env.LOG_LEVEL ?? "info", base }, pino.destination({ sync: false }));

  const { nc, connected } = await connectNats({
    servers: natsServers(values),
    name: "mesh-control",
    // Its own inboxes: in secure mode control may read no others.
    inboxPrefix: inboxPrefixFor("control"),
    creds: values.creds ?? process.env.NATS_CREDS,
    logger,
  });
  const control = await startControl(nc, logger, undefined, instance);
  const server = await startAdmin({
    host: admin.slice(0, colon),
    port,
    registry: control.registry,
    readiness: async () => (connected() ? { ready: true, reasons: [] } : { ready: false, reasons: ["nats disconnected"] }),
  });
  logger.info({ admin: server.address }, "control started");
  await new Promise<void>((resolve) => {
    process.once("SIGTERM", () => resolve());
    process.once("SIGINT", () => resolve());
  });
  await control.stop().catch((err) => logger.warn({ err }, "control did not drain"));
  await (connected() ? nc.drain() : nc.close()).catch(() => undefined);
  server.server.close();
  logger.info("control stopped");
  logger.flush();
  // Stopped: a lingering handle must not keep the process alive.
  setTimeout(() => process.exit(0), 100).unref();
  return Exit.ok;
}
