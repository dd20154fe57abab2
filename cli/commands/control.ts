import { Defaults } from "../../schemas/index.ts";
import { hostPort } from "../../runtime/index.ts";
import { NATS_FLAGS, UsageError, stringValue, type Parsed } from "../args.ts";
import { natsServers, type NatsFlags } from "../client.ts";
import type { Command } from "../command.ts";

async function control(p: Parsed): Promise<number> {
  const admin = stringValue(p, "admin") ?? Defaults.controlAdminListen;
  if (!hostPort(admin)) throw new UsageError(`--admin must be host:port, got '${admin}'`);
  // Loaded on use, as every heavy command is (docs/cli.md "Latency").
  const { runControl } = await import("../../control/index.ts");
  return runControl({ nats: natsServers(p.values as NatsFlags), creds: stringValue(p, "creds"), admin, logLevel: stringValue(p, "log-level") ?? "info" });
}

export const CONTROL_COMMAND: Command = {
  synopsis: "control [--nats URLS] [--admin 127.0.0.1:15100] [--creds FILE]",
  summary: "the control service (run several for HA)",
  details: "Creates the buckets and streams it needs, serves mesh.ctl.v1.* in a queue group, merges telemetry, and serves /metrics and the web dashboard (/dashboard/) on --admin.",
  args: {
    flags: {
      ...NATS_FLAGS,
      admin: { type: "string", env: "MESH_CONTROL_ADMIN", value: "127.0.0.1:15100", help: "admin listener: /healthz /readyz /metrics /dashboard/" },
      "log-level": { type: "string", env: "LOG_LEVEL", value: "info", help: "fatal, error, warn, info, debug, trace or silent" },
    },
  },
  run: control,
};
