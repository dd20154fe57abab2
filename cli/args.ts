import { isServiceName } from "../schemas/index.ts";
import { CliError, Exit } from "./client.ts";

/**
 * The one argument parser of the `mesh` CLI. Every command declares its
 * flags (with the environment variable each reads when absent) and its
 * positional arguments; this turns argv into values or a one-line usage
 * error (exit 2) that suggests what the user may have meant.
 */

export interface FlagSpec {
  type: "string" | "boolean";
  short?: string;
  /** the environment variable read when the flag is not given */
  env?: string;
  /** placeholder shown in help, e.g. URLS */
  value?: string;
  help: string;
}

export type FlagSpecs = Readonly<Record<string, FlagSpec>>;

export interface Parsed {
  /** flag values: from argv, else from the flag's environment variable; absent when neither */
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

export interface ArgsSpec {
  flags: FlagSpecs;
  /** positional arguments allowed; default none */
  positionals?: { min: number; max: number; names: string };
}

/** A mistake on the command line: exit 2, one line, naming the command. */
export class UsageError extends CliError {
  constructor(message: string) {
    super(Exit.usage, message);
  }
}

/** `-h` / `--help` anywhere before `--`. */
export class HelpRequested extends Error {}

/** Flags every command that talks to NATS takes. */
export const NATS_FLAGS: FlagSpecs = {
  nats: { type: "string", env: "NATS_URL", value: "URLS", help: "NATS servers, comma-separated (default nats://127.0.0.1:4222)" },
  creds: { type: "string", env: "NATS_CREDS", value: "FILE", help: "secure mode: this identity's key (see mesh creds)" },
};

export const OUTPUT_FLAG: FlagSpecs = { output: { type: "string", short: "o", value: "json", help: "print JSON instead of text" } };

/** Parses `argv` (what follows the command name) against `spec`; throws UsageError or HelpRequested. */
export function parseArgv(argv: readonly string[], spec: ArgsSpec): Parsed {
  const values: Parsed["values"] = {};
  const positionals: string[] = [];
  const byShort = new Map(Object.entries(spec.flags).flatMap(([name, f]) => (f.short ? [[f.short, name] as const] : [])));
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (arg === "-h" || arg === "--help") throw new HelpRequested();
    if (!arg.startsWith("-") || arg === "-") {
      positionals.push(arg);
      continue;
    }
    const long = arg.startsWith("--");
    const eq = arg.indexOf("=");
    const key = long ? arg.slice(2, eq === -1 ? undefined : eq) : arg.slice(1, 2);
    const name = long ? key : byShort.get(key);
    const flag = name === undefined ? undefined : spec.flags[name];
    if (!flag || name === undefined) throw new UsageError(`unknown option '${long ? `--${key}` : `-${key}`}'${suggest(key, Object.keys(spec.flags), "--")}`);
    const inline = long ? (eq === -1 ? undefined : arg.slice(eq + 1)) : arg.length > 2 ? arg.slice(2) : undefined;
    if (flag.type === "boolean") {
      if (inline !== undefined) throw new UsageError(`option '--${name}' takes no value`);
      values[name] = true;
      continue;
    }
    const value = inline ?? argv[++i];
    if (value === undefined) throw new UsageError(`option '--${name}' needs a value${flag.value ? ` (${flag.value})` : ""}`);
    values[name] = value;
  }
  for (const [name, flag] of Object.entries(spec.flags)) {
    if (values[name] !== undefined || !flag.env) continue;
    const fromEnv = process.env[flag.env];
    if (fromEnv === undefined || fromEnv === "") continue;
    values[name] = flag.type === "boolean" ? ["1", "true", "yes"].includes(fromEnv.toLowerCase()) : fromEnv;
  }
  const { min, max, names } = spec.positionals ?? { min: 0, max: 0, names: "" };
  if (positionals.length < min) throw new UsageError(`missing ${names.split(" ").slice(positionals.length, min).join(" ")}`);
  if (positionals.length > max) {
    const extra = positionals.slice(max).map((p) => `'${p}'`).join(" ");
    throw new UsageError(max === 0 ? `takes no arguments, got ${extra}` : `too many arguments: ${extra} (expected ${names})`);
  }
  return { values, positionals };
}

/** The help text of a command's flags, one per line. */
export function flagHelp(flags: FlagSpecs): string[] {
  return Object.entries(flags).map(([name, f]) => {
    const left = `${f.short ? `-${f.short}, ` : "    "}--${name}${f.type === "string" ? ` ${f.value ?? "VALUE"}` : ""}`;
    const env = f.env ? ` (env ${f.env})` : "";
    return `  ${left.padEnd(28)} ${f.help}${env}`;
  });
}

/** `, did you mean '…'?` when one candidate is close to `word` (edit distance), else "". */
export function suggest(word: string, candidates: readonly string[], prefix = ""): string {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(word, c);
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  const close = best !== undefined && (bestDistance <= 2 || (best.startsWith(word) && word.length >= 2));
  return close ? `; did you mean '${prefix}${best}'?` : "";
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length]!;
}

/** A string flag value, or undefined. */
export function stringValue(p: Parsed, name: string): string | undefined {
  const v = p.values[name];
  return typeof v === "string" ? v : undefined;
}

/** `-o json` or nothing; anything else is a usage error. */
export function jsonOutput(p: Parsed): boolean {
  const output = stringValue(p, "output");
  if (output !== undefined && output !== "json") throw new UsageError(`-o must be json, got '${output}'`);
  return output === "json";
}

/** A service name from the command line, or undefined when absent; a bad name is a usage error. */
export function serviceArg(what: string, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "string" || !isServiceName(value)) throw new UsageError(`${what} must be a service name, got '${String(value)}'`);
  return value;
}

/** An integer flag within bounds, or `fallback` when absent. */
export function integerArg(what: string, value: unknown, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`${what} must be an integer from ${min} to ${max}, got '${String(value)}'`);
  return n;
}

const UNITS_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `500ms`, `30s`, `5m`, `2h`, `1d` in milliseconds; anything else is a usage error. */
export function durationArg(flag: string, value: unknown, fallback: string): number {
  const text = typeof value === "string" ? value : fallback;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text);
  const ms = m ? Number(m[1]) * UNITS_MS[m[2]!]! : NaN;
  if (!(ms > 0)) throw new UsageError(`--${flag} must be a duration such as 30s, 5m or 2h, got '${text}'`);
  return ms;
}

/** Left-aligned columns, two spaces apart. */
export function formatTable(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? "").length)));
  return rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c]!)).join("  ").trimEnd()).join("\n");
}
