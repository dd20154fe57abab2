import { UP_DEFAULTS } from "../../local/index.ts";
import { NATS_FLAGS, OUTPUT_FLAG, integerArg, jsonOutput, stringValue, type Parsed } from "../args.ts";
import { meshChecks } from "../check/mesh.ts";
import { preChecks } from "../check/pre.ts";
import { formatJson, formatText } from "../check/report.ts";
import { Exit, natsServers, type NatsFlags } from "../client.ts";
import type { Command } from "../command.ts";

async function check(p: Parsed): Promise<number> {
  const json = jsonOutput(p);
  const basePort = integerArg("--base-port", p.values["base-port"], UP_DEFAULTS.basePort, 1, 65535);
  const results = p.values.pre === true ? await preChecks(basePort) : await meshChecks({ servers: natsServers(p.values as NatsFlags), creds: stringValue(p, "creds") });
  console.log(json ? formatJson(results) : formatText(results));
  return results.some((r) => r.status === "fail") ? Exit.rejected : Exit.ok;
}

export const CHECK_COMMAND: Command = {
  synopsis: "check [--nats URLS] [--creds FILE] [-o json] | check --pre [--base-port N]",
  summary: "is the mesh healthy? one line per check with ✓/✗ and a hint per failure (docs/run.md)",
  details: [
    "Checks NATS (reachable, version >= 2.9), JetStream (on, every bucket and stream with the settings control",
    "makes them with), control (answers, telemetry lease), the registry (instances ready), policy (valid, revision",
    "in force), secure mode (this identity's permissions) and the clock skew between host and server.",
    "--pre checks what mesh up needs before anything runs: nats-server, python3, free ports.",
    "Exit 0 when every check passes, 1 when one fails.",
  ].join("\n"),
  args: {
    flags: {
      ...NATS_FLAGS,
      ...OUTPUT_FLAG,
      pre: { type: "boolean", help: "check this machine before mesh up: nats-server, python3, free ports" },
      "base-port": { type: "string", env: "MESH_BASE_PORT", value: "N", help: `with --pre: the ports of mesh up --base-port N (default ${UP_DEFAULTS.basePort})` },
    },
  },
  run: check,
};
