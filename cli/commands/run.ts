import { hostPort } from "../../runtime/index.ts";
import { parseSidecarConfig, ValidationError } from "../../schemas/index.ts";
import { run } from "../../local/run.ts";
import { UsageError, integerArg, stringValue, type FlagSpecs, type Parsed } from "../args.ts";
import { CliError, Exit } from "../client.ts";
import type { Command } from "../command.ts";
import { SIDECAR_COMMAND, sidecarConfigInput } from "./sidecar.ts";

/** `mesh sidecar`'s flags, less --app (the app is the command), plus --app-port. */
const { app: _app, ...sidecarFlags } = SIDECAR_COMMAND.args.flags;
const RUN_FLAGS: FlagSpecs = {
  ...sidecarFlags,
  listen: { ...sidecarFlags.listen!, help: "outbound listener, the app's http_proxy (default: a free port)" },
  admin: { ...sidecarFlags.admin!, help: "admin listener: /healthz /readyz /metrics /config (default: a free port)" },
  "app-port": { type: "string", env: "MESH_APP_PORT", value: "N", help: "the port the app listens on, given to it as PORT (default: a free port)" },
};
/** Flags mesh run sets on the sidecar itself. */
const OWN = new Set(["service", "version", "listen", "admin", "app-port"]);

async function runCommand(p: Parsed): Promise<number> {
  const service = stringValue(p, "service");
  if (service === undefined) throw new UsageError("--service is required");
  if (p.positionals.length === 0) throw new UsageError("no command to run: mesh run --service NAME -- CMD ARGS...");
  const appPort = p.values["app-port"] === undefined ? undefined : integerArg("--app-port", p.values["app-port"], 0, 1, 65535);
  for (const flag of ["listen", "admin"]) {
    const v = stringValue(p, flag);
    if (v !== undefined && !hostPort(v)) throw new UsageError(`--${flag} must be host:port, got '${v}'`);
  }
  // Every sidecar option is checked here, so nothing starts on a bad one.
  let version: string;
  try {
    version = parseSidecarConfig({ ...sidecarConfigInput(p), app: `http://127.0.0.1:${appPort ?? 1}` }).version;
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    throw new CliError(Exit.usage, "invalid sidecar options", err.problems.map((x) => `${x.path}: ${x.message}`));
  }
  const sidecarArgs = Object.keys(sidecarFlags)
    .filter((name) => !OWN.has(name))
    .flatMap((name) => {
      const v = stringValue(p, name);
      return v === undefined ? [] : [`--${name}`, v];
    });
  return run({ service, version, appPort, listen: stringValue(p, "listen"), admin: stringValue(p, "admin"), sidecarArgs, command: p.positionals });
}

export const RUN_COMMAND: Command = {
  synopsis: "run --service NAME [--version v1] [--app-port N] [sidecar options] -- CMD ARGS...",
  summary: "an app and its sidecar together, like dapr run (docs/run.md)",
  details: [
    "Picks free ports, starts the sidecar and CMD with PORT, http_proxy/HTTP_PROXY (no_proxy/NO_PROXY for",
    "localhost,127.0.0.1) and MESH_OUTBOUND set, prefixes their output with [app] and [sidecar], and passes",
    "SIGINT and SIGTERM to the app. When the app exits the sidecar drains and stops; the exit code is the",
    "app's (128+n after signal n; 127 when CMD cannot start).",
  ].join("\n"),
  args: { flags: RUN_FLAGS, positionals: { min: 0, max: 1_000, names: "CMD ARGS..." } },
  run: runCommand,
};
