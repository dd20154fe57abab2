import { Defaults } from "../../schemas/index.ts";
import { hostPort } from "../../runtime/index.ts";
import { NATS_FLAGS, UsageError, integerArg, stringValue, type Parsed } from "../args.ts";
import { natsServers, type NatsFlags } from "../client.ts";
import type { Command } from "../command.ts";
import { unreachableExit } from "./sidecar.ts";

async function control(p: Parsed): Promise<number> {
  const admin = stringValue(p, "admin") ?? Defaults.controlAdminListen;
  if (!hostPort(admin)) throw new UsageError(`--admin must be host:port, got '${admin}'`);
  const timeout = p.values["connect-timeout"];
  const connectTimeoutMs = timeout === undefined ? undefined : integerArg("--connect-timeout", timeout, 0, 1);
  // Loaded on use, as every heavy command is (docs/cli.md "Latency").
  const { runControl } = await import("../../control/index.ts");
  return runControl({ nats: natsServers(p.values as NatsFlags), creds: stringValue(p, "creds"), admin, logLevel: stringValue(p, "log-level") ?? "info", connectTimeoutMs }).catch(
    unreachableExit,
  );
}

export const CONTROL_COMMAND: Command = {
  synopsis: "control [--nats URLS] [--admin 127.0.0.1:15100] [--creds FILE] [--connect-timeout MS]",
  summary: "the control service (run several for HA)",
  details: "Creates the buckets and streams it needs, serves mesh.ctl.v1.* in a queue group, merges telemetry, and serves /metrics and the web dashboard (/dashboard/) on --admin.",
  args: {
    flags: {
      ...NATS_FLAGS,
      admin: { type: "string", env: "MESH_CONTROL_ADMIN", value: "127.0.0.1:15100", help: "admin listener: /healthz /readyz /metrics /dashboard/" },
      "connect-timeout": { type: "string", env: "MESH_CONNECT_TIMEOUT", value: "MS", help: "exit 3 when NATS cannot be reached within MS at start (default: keep trying)" },
      "log-level": { type: "string", env: "LOG_LEVEL", value: "info", help: "fatal, error, warn, info, debug, trace or silent" },
    },
  },
  run: control,
};
