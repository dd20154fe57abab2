import { parseArgs, type ParseArgsConfig } from "node:util";
import { isServiceName } from "../schemas/index.ts";
import { CliError, Exit, type NatsFlags } from "./client.ts";

/** Shared argument handling of the observability commands (`mesh logs`, `mesh top`). */

const NATS_OPTIONS = { nats: { type: "string" }, creds: { type: "string" } } as const;

export type ParsedArgs = { values: Record<string, string | boolean | undefined> & NatsFlags; positionals: string[] };

/** Parses flags (plus --nats and --creds) and at most `maxPositionals` positionals; usage errors exit 2. */
export function parseCommand(command: string, args: string[], options: ParseArgsConfig["options"], maxPositionals: number): ParsedArgs {
  let parsed;
  try {
    parsed = parseArgs({ args, options: { ...NATS_OPTIONS, ...options }, allowPositionals: true, strict: true });
  } catch (err) {
    throw new CliError(Exit.usage, `mesh ${command}: ${(err as Error).message}`);
  }
  if (parsed.positionals.length > maxPositionals) {
    throw new CliError(Exit.usage, `mesh ${command}: expected at most ${maxPositionals} argument(s), got ${parsed.positionals.length}`);
  }
  return parsed as ParsedArgs;
}

/** A service name from the command line, or undefined when absent; a bad name exits 2. */
export function serviceArg(command: string, what: string, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "string" || !isServiceName(value)) throw new CliError(Exit.usage, `mesh ${command}: ${what} must be a service name, got '${String(value)}'`);
  return value;
}

const UNITS_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `500ms`, `30s`, `5m`, `2h`, `1d` in milliseconds; anything else exits 2. */
export function durationArg(command: string, flag: string, value: unknown, fallback: string): number {
  const text = typeof value === "string" ? value : fallback;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text);
  const ms = m ? Number(m[1]) * UNITS_MS[m[2]!]! : NaN;
  if (!(ms > 0)) throw new CliError(Exit.usage, `mesh ${command}: --${flag} must be a duration such as 30s, 5m or 2h, got '${text}'`);
  return ms;
}

/** Left-aligned columns, two spaces apart. */
export function formatTable(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? "").length)));
  return rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c]!)).join("  ").trimEnd()).join("\n");
}
