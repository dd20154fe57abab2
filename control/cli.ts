// The `mesh` CLI, except `mesh sidecar`, which bin/mesh.js sends straight to
// sidecar/main.ts. Each command is one row of COMMANDS.
// Exit codes (DESIGN §2): 0 ok, 1 rejected input, 2 usage, 3 NATS or control unreachable.
import { natsServerVersion, ensureNatsServer, NatsServerError } from "./nats-binary.ts";
import { runControl } from "./control-main.ts";
import { credsCommand } from "./creds.ts";
import { apply, get, history, remove, reportCliError, rollback, services, validate } from "./policy-commands.ts";
import { up } from "./up.ts";
import { LOGS_SYNOPSIS, logs } from "./logs-command.ts";
import { TOP_SYNOPSIS, top } from "./top-command.ts";

interface Command {
  /** what follows `mesh` in the usage text */
  synopsis: string;
  summary: string;
  /** gets the arguments after the command name; returns the exit code */
  run: (args: string[]) => Promise<number>;
}

/** Runs a command that reports failures as CliError (message and exit code). */
const reporting =
  (run: (args: string[]) => Promise<number>) =>
  (args: string[]): Promise<number> =>
    run(args).catch(reportCliError);

const COMMANDS: Record<string, Command> = {
  up: {
    synopsis: "up [--nodes 3] [--no-demo] [--data DIR] [--base-port 8080]",
    summary: "the local mesh: NATS cluster, demo apps and sidecars; Ctrl-C stops it",
    run: up,
  },
  sidecar: {
    synopsis: "sidecar --service NAME [--version v1] [--app URL] [--listen ADDR] [--admin ADDR] [--nats URLS] [--creds FILE]",
    summary: "one sidecar; without --app it only calls out (see mesh sidecar --help)",
    run: sidecarElsewhere,
  },
  control: {
    synopsis: "control [--nats URLS] [--admin 127.0.0.1:15100] [--creds FILE]",
    summary: "the control service (run several for HA)",
    run: reporting(runControl),
  },
  apply: { synopsis: "apply -f FILE", summary: "publish policy documents (JSON or YAML, several per file)", run: reporting(apply) },
  validate: { synopsis: "validate -f FILE [--offline]", summary: "only check policy documents", run: reporting(validate) },
  get: { synopsis: "get routes|authz|quotas [SERVICE] [-o json]", summary: "read policy", run: reporting(get) },
  delete: { synopsis: "delete KIND SERVICE", summary: "remove policy", run: reporting(remove) },
  history: { synopsis: "history KIND SERVICE", summary: "policy revisions from KV history", run: reporting(history) },
  rollback: { synopsis: "rollback KIND SERVICE [--to REVISION]", summary: "restore a policy revision", run: reporting(rollback) },
  services: { synopsis: "services [-o json]", summary: "registered services, versions, instances, health", run: reporting(services) },
  logs: { synopsis: LOGS_SYNOPSIS, summary: "access records of calls to SERVICE (or --from a caller), from stream MESH_ACCESS", run: reporting(logs) },
  top: { synopsis: TOP_SYNOPSIS, summary: "live request rate, success rate and p50/p99 per service pair, from control", run: reporting(top) },
  creds: {
    synopsis: "creds --out DIR SERVICE...",
    summary: "secure mode: nkey seeds per service, control and admin, and auth.conf for nats.conf",
    run: credsCommand,
  },
  "ensure-nats-server": {
    synopsis: "ensure-nats-server",
    summary: "find (on Debian/Ubuntu as root: install) nats-server 2.9+",
    run: ensureNatsServerCommand,
  },
  help: { synopsis: "help", summary: "this text", run: async () => (console.log(usage()), 0) },
};

export function usage(): string {
  const rows = Object.values(COMMANDS).map((c) => {
    return `  mesh ${c.synopsis}\n      ${c.summary}`;
  });
  return [
    "usage: mesh <command> [options]",
    "",
    ...rows,
    "",
    "Every flag also reads an environment variable (MESH_SERVICE, NATS_URL, ...).\nPolicy commands and control reach NATS at --nats or NATS_URL (default nats://127.0.0.1:4222),\nin secure mode with --creds FILE or NATS_CREDS (see mesh creds).",
    "Exit codes: 0 ok, 1 rejected input, 2 usage, 3 NATS or control unreachable.",
  ].join("\n");
}

/** `mesh <command> ...` (args = process.argv.slice(2)); returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  if (name === "--help" || name === "-h") return COMMANDS.help!.run([]);
  const command = name === undefined ? undefined : COMMANDS[name];
  if (!command || !Object.hasOwn(COMMANDS, name!)) {
    console.error(`${name === undefined ? "mesh: no command given" : `mesh: unknown command '${name}'`}\n\n${usage()}`);
    return 2;
  }
  return command.run(rest);
}

async function sidecarElsewhere(): Promise<number> {
  console.error("mesh sidecar: run it through bin/mesh.js (npx mesh sidecar ...)");
  return 2;
}

async function ensureNatsServerCommand(args: string[]): Promise<number> {
  if (args.length) {
    console.error(`mesh ensure-nats-server: takes no arguments\n\n${usage()}`);
    return 2;
  }
  try {
    const bin = await ensureNatsServer((line) => process.stderr.write(`mesh ensure-nats-server: ${line}\n`));
    console.log(`${bin} ${await natsServerVersion(bin)}`);
    return 0;
  } catch (err) {
    if (!(err instanceof NatsServerError)) throw err;
    console.error(`mesh ensure-nats-server: ${err.message}`);
    return 3;
  }
}
