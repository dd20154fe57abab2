// The `mesh` command: one dispatch table, every command in it, each parsed
// by the one argument parser (cli/args.ts). Exit codes
// (docs/architecture.md §8): 0 ok, 1 rejected input, 2 usage, 3 NATS or
// control unreachable.
import { HelpRequested, OUTPUT_FLAG, UsageError, flagHelp, jsonOutput, parseArgv, suggest } from "./args.ts";
import { CliError, Exit } from "./client.ts";
import type { Command } from "./command.ts";
import { bashCompletion, zshCompletion } from "./completion.ts";
import { formatVersions, versions } from "./version.ts";
import { CHECK_COMMAND } from "./commands/check.ts";
import { CONTROL_COMMAND } from "./commands/control.ts";
import { CREDS_COMMAND } from "./commands/creds.ts";
import { DASHBOARD_COMMAND } from "./commands/dashboard.ts";
import { LOGS_COMMAND } from "./commands/logs.ts";
import { HISTORY_COMMANDS } from "./commands/history.ts";
import { POLICY_COMMANDS } from "./commands/policy.ts";
import { RUN_COMMAND } from "./commands/run.ts";
import { SIDECAR_COMMAND } from "./commands/sidecar.ts";
import { TOP_COMMAND } from "./commands/top.ts";
import { UP_COMMAND } from "./commands/up.ts";

const ENSURE_NATS_SERVER: Command = {
  synopsis: "ensure-nats-server",
  summary: "find (on Debian/Ubuntu as root: install) nats-server 2.9+",
  args: { flags: {} },
  run: async () => {
    // Loaded on use, as every heavy command is (docs/cli.md "Latency").
    const { ensureNatsServer, natsServerVersion, NatsServerError } = await import("../local/index.ts");
    try {
      const bin = await ensureNatsServer((line) => process.stderr.write(`mesh ensure-nats-server: ${line}\n`));
      console.log(`${bin} ${await natsServerVersion(bin)}`);
      return Exit.ok;
    } catch (err) {
      if (!(err instanceof NatsServerError)) throw err;
      throw new CliError(Exit.unreachable, err.message);
    }
  },
};

const ENSURE_CHROMIUM: Command = {
  synopsis: "ensure-chromium",
  summary: "find (on Debian/Ubuntu as root: install) chromium, for the dashboard's browser tests",
  args: { flags: {} },
  run: async () => {
    // Loaded on use, as every heavy command is (docs/cli.md "Latency").
    const { ChromiumError, ensureChromium } = await import("../local/index.ts");
    try {
      console.log(await ensureChromium((line) => process.stderr.write(`mesh ensure-chromium: ${line}\n`)));
      return Exit.ok;
    } catch (err) {
      if (!(err instanceof ChromiumError)) throw err;
      throw new CliError(Exit.unreachable, err.message);
    }
  },
};

const HELP: Command = {
  synopsis: "help [COMMAND]",
  summary: "this text, or one command's",
  args: { flags: {}, positionals: { min: 0, max: 1, names: "COMMAND" } },
  run: async (p) => {
    const name = p.positionals[0];
    if (name === undefined) return console.log(usage()), Exit.ok;
    const command = commandOf(name);
    if (!command) throw new UsageError(`unknown command '${name}'${suggest(name, Object.keys(COMMANDS))}`);
    console.log(commandHelp(command));
    return Exit.ok;
  },
};

const VERSION: Command = {
  synopsis: "version [-o json]",
  summary: "natsmesh's version, the nats.js client's and Node's (also mesh --version)",
  args: { flags: OUTPUT_FLAG },
  run: async (p) => {
    const v = versions();
    console.log(jsonOutput(p) ? JSON.stringify(v) : formatVersions(v));
    return Exit.ok;
  },
};

const COMPLETION: Command = {
  synopsis: "completion bash|zsh",
  summary: "a shell completion script: source <(mesh completion bash)",
  args: { flags: {}, positionals: { min: 1, max: 1, names: "SHELL" } },
  run: async (p) => {
    const shell = p.positionals[0]!;
    if (shell !== "bash" && shell !== "zsh") throw new UsageError(`no completion for shell '${shell}' (bash or zsh)`);
    process.stdout.write(shell === "bash" ? bashCompletion(COMMANDS) : zshCompletion(COMMANDS));
    return Exit.ok;
  },
};

/** Every command, in the order `mesh help` lists them. */
const COMMANDS: Readonly<Record<string, Command>> = {
  up: UP_COMMAND,
  sidecar: SIDECAR_COMMAND,
  run: RUN_COMMAND,
  check: CHECK_COMMAND,
  control: CONTROL_COMMAND,
  ...POLICY_COMMANDS,
  ...HISTORY_COMMANDS,
  logs: LOGS_COMMAND,
  top: TOP_COMMAND,
  dashboard: DASHBOARD_COMMAND,
  creds: CREDS_COMMAND,
  "ensure-nats-server": ENSURE_NATS_SERVER,
  "ensure-chromium": ENSURE_CHROMIUM,
  completion: COMPLETION,
  version: VERSION,
  help: HELP,
};

function commandOf(name: string): Command | undefined {
  return Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
}

export function usage(): string {
  const rows = Object.values(COMMANDS).map((c) => `  mesh ${c.synopsis}\n      ${c.summary}`);
  return [
    "usage: mesh <command> [options]",
    "",
    ...rows,
    "",
    "mesh <command> --help shows a command's options. Every option also reads an environment",
    "variable (MESH_SERVICE, NATS_URL, ...). Commands reach NATS at --nats or NATS_URL (default",
    "nats://127.0.0.1:4222), in secure mode with --creds FILE or NATS_CREDS (see mesh creds).",
    "Exit codes: 0 ok, 1 rejected input, 2 usage, 3 NATS or control unreachable.",
  ].join("\n");
}

function commandHelp(c: Command): string {
  const flags = flagHelp(c.args.flags);
  return [`usage: mesh ${c.synopsis}`, "", c.summary, ...(c.details ? ["", c.details] : []), ...(flags.length ? ["", "options:", ...flags] : [])].join("\n");
}

/** `mesh <command> ...` (args = process.argv.slice(2)); returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  if (name === undefined) return fail(new UsageError("no command given (mesh help lists them)"), "mesh");
  if (name === "--help" || name === "-h") return HELP.run({ values: {}, positionals: [] });
  if (name === "--version" || name === "-V") return VERSION.run({ values: {}, positionals: [] });
  const command = commandOf(name);
  if (!command) return fail(new UsageError(`unknown command '${name}'${suggest(name, Object.keys(COMMANDS))} (mesh help lists them)`), "mesh");
  try {
    return await command.run(parseArgv(rest, command.args));
  } catch (err) {
    if (err instanceof HelpRequested) return console.log(commandHelp(command)), Exit.ok;
    return fail(err, `mesh ${name}`);
  }
}

/** Prints a CliError the way every command does and returns its exit code; anything else is a bug and is thrown. */
function fail(err: unknown, who: string): number {
  if (!(err instanceof CliError)) throw err;
  const hint = err instanceof UsageError && who !== "mesh" ? ` (see ${who} --help)` : "";
  console.error(`${who}: ${err.message}${hint}`);
  for (const p of err.problems) console.error(`  ${p}`);
  return err.exitCode;
}
