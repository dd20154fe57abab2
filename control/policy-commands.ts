import { readFile } from "node:fs/promises";
import { parseArgs, type ParseArgsConfig } from "node:util";
import type { NatsConnection } from "@nats-io/transport-node";
import { stringify } from "yaml";
import { formatProblem, kindFromNoun, parsePolicyText, type PolicyKind, type PolicyRevision } from "../schemas/index.ts";
import { CliError, Exit, connectCli, controlRequest, type NatsFlags } from "./client.ts";

/**
 * The policy commands of the `mesh` CLI: each parses its arguments, talks to
 * control over NATS, prints for people, and returns an exit code.
 */

const NATS_OPTIONS = { nats: { type: "string" }, creds: { type: "string" } } as const;

function parse<O extends ParseArgsConfig["options"]>(command: string, args: string[], options: O, positionals: [min: number, max: number]) {
  let parsed;
  try {
    parsed = parseArgs({ args, options: { ...NATS_OPTIONS, ...options }, allowPositionals: true, strict: true });
  } catch (err) {
    throw new CliError(Exit.usage, `mesh ${command}: ${(err as Error).message}`);
  }
  const n = parsed.positionals.length;
  if (n < positionals[0] || n > positionals[1]) throw new CliError(Exit.usage, `mesh ${command}: expected ${positionals.join(" to ")} arguments, got ${n}`);
  return parsed as { values: Record<string, string | boolean | undefined> & NatsFlags; positionals: string[] };
}

function kindOf(command: string, noun: string | undefined): PolicyKind {
  const kind = noun ? kindFromNoun(noun) : undefined;
  if (!kind) throw new CliError(Exit.usage, `mesh ${command}: unknown kind '${noun ?? ""}' (expected routes, authz or quotas)`);
  return kind;
}

async function withControl<T>(flags: NatsFlags, work: (nc: NatsConnection) => Promise<T>): Promise<T> {
  const nc = await connectCli(flags);
  try {
    return await work(nc);
  } finally {
    await nc.close();
  }
}

/** Reads and checks a policy file locally, so syntax errors come with line numbers and nothing is sent. */
async function readPolicyFile(command: string, file: string | undefined) {
  if (!file) throw new CliError(Exit.usage, `mesh ${command}: -f FILE is required`);
  let text: string;
  try {
    text = file === "-" ? await readStdin() : await readFile(file, "utf8");
  } catch (err) {
    throw new CliError(Exit.usage, `mesh ${command}: cannot read '${file}': ${(err as Error).message}`);
  }
  const parsed = parsePolicyText(text);
  if (!parsed.ok) throw new CliError(Exit.rejected, `${file}: rejected, nothing applied`, parsed.problems.map(formatProblem));
  return parsed;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

function printWarnings(warnings: Array<Parameters<typeof formatProblem>[0]>): void {
  for (const w of warnings) console.error(`warning: ${formatProblem(w)}`);
}

export async function apply(args: string[]): Promise<number> {
  const { values } = parse("apply", args, { file: { type: "string", short: "f" } }, [0, 0]);
  const file = await readPolicyFile("apply", values.file as string | undefined);
  const reply = await withControl(values, (nc) => controlRequest(nc, "apply", { documents: file.documents }));
  printWarnings(reply.warnings);
  for (const a of reply.applied) console.log(`${a.kind} ${a.service}: applied (revision ${a.revision})`);
  return Exit.ok;
}

export async function validate(args: string[]): Promise<number> {
  const { values } = parse("validate", args, { file: { type: "string", short: "f" }, offline: { type: "boolean" } }, [0, 0]);
  const file = await readPolicyFile("validate", values.file as string | undefined);
  if (!values.offline) {
    // Control also knows which versions have instances; without it the file is still checked.
    const reply = await withControl(values, (nc) => controlRequest(nc, "validate", { documents: file.documents })).catch((err) => {
      if (err instanceof CliError && err.exitCode === Exit.unreachable) {
        console.error(`note: ${err.message}; checked without the registry`);
        return { warnings: file.warnings };
      }
      throw err;
    });
    printWarnings(reply.warnings);
  } else printWarnings(file.warnings);
  console.log(`${values.file}: ${file.documents.length} document(s) valid`);
  return Exit.ok;
}

function printRevision(r: PolicyRevision): void {
  const rejected = r.rejected;
  if (rejected && r.noneValid) {
    const effect = r.kind === "Authz" ? "sidecars deny every caller" : "sidecars use defaults";
    console.log(`# ${r.kind} ${r.service}: revision ${rejected.revision} (${rejected.created}) is invalid and no earlier revision is valid: ${effect}`);
  } else console.log(`# ${r.kind} ${r.service}, revision ${r.revision} in force, ${r.created}`);
  if (rejected) {
    if (!r.noneValid) console.log(`# revision ${rejected.revision} (${rejected.created}) was rejected and is not applied:`);
    for (const p of rejected.problems) console.log(`#   ${p}`);
  }
  if (!r.noneValid) process.stdout.write(stringify(r.document));
}

export async function get(args: string[]): Promise<number> {
  const { values, positionals } = parse("get", args, { output: { type: "string", short: "o" } }, [1, 2]);
  const kind = kindOf("get", positionals[0]);
  const service = positionals[1];
  const reply = await withControl(values, (nc) => controlRequest(nc, "get", service ? { kind, service } : { kind }));
  if (values.output === "json") console.log(JSON.stringify(reply.items.map((i) => i.document), null, 2));
  else if (reply.items.length === 0) console.error(`no ${kind} policies`);
  else
    reply.items.forEach((item, i) => {
      if (i > 0) console.log("---");
      printRevision(item);
    });
  return Exit.ok;
}

export async function remove(args: string[]): Promise<number> {
  const { values, positionals } = parse("delete", args, {}, [2, 2]);
  const kind = kindOf("delete", positionals[0]);
  const reply = await withControl(values, (nc) => controlRequest(nc, "delete", { kind, service: positionals[1]! }));
  console.log(`${kind} ${positionals[1]}: deleted (revision ${reply.revision}); sidecars fall back to defaults`);
  return Exit.ok;
}

export async function history(args: string[]): Promise<number> {
  const { values, positionals } = parse("history", args, {}, [2, 2]);
  const kind = kindOf("history", positionals[0]);
  const reply = await withControl(values, (nc) => controlRequest(nc, "history", { kind, service: positionals[1]! }));
  for (const entry of reply.entries) {
    console.log(`revision ${entry.revision}  ${entry.created}  ${entry.operation === "PUT" ? "applied" : "deleted"}`);
    if (entry.document !== undefined) process.stdout.write(stringify(entry.document).replace(/^(?=.)/gm, "    "));
  }
  return Exit.ok;
}

export async function rollback(args: string[]): Promise<number> {
  const { values, positionals } = parse("rollback", args, { to: { type: "string" } }, [2, 2]);
  const kind = kindOf("rollback", positionals[0]);
  const to = values.to === undefined ? undefined : Number(values.to);
  if (to !== undefined && !(Number.isInteger(to) && to > 0)) throw new CliError(Exit.usage, `mesh rollback: --to must be a revision number, got '${values.to}'`);
  const reply = await withControl(values, (nc) => controlRequest(nc, "rollback", { kind, service: positionals[1]!, ...(to ? { to } : {}) }));
  console.log(`${kind} ${positionals[1]}: restored revision ${reply.restored} as revision ${reply.revision}`);
  return Exit.ok;
}

export async function services(args: string[]): Promise<number> {
  const { values } = parse("services", args, { output: { type: "string", short: "o" } }, [0, 0]);
  const reply = await withControl(values, (nc) => controlRequest(nc, "services", {}));
  if (values.output === "json") {
    console.log(JSON.stringify(reply.services, null, 2));
    return Exit.ok;
  }
  const rows = [["SERVICE", "VERSION", "INSTANCES", "HEALTH"]];
  for (const s of reply.services) {
    const others = [s.unready > 0 ? `${s.unready} unready` : "", s.draining > 0 ? `${s.draining} draining` : ""].filter(Boolean);
    const health = others.length > 0 ? [`${s.ready} ready`, ...others].join(", ") : `${s.ready}/${s.instances} ready`;
    rows.push([s.service, s.version, String(s.instances), health]);
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  for (const r of rows) console.log(r.map((cell, c) => cell.padEnd(widths[c]!)).join("  ").trimEnd());
  return Exit.ok;
}

/** Prints a CliError the way every command does and returns its exit code. */
export function reportCliError(err: unknown): number {
  if (!(err instanceof CliError)) throw err;
  console.error(err.message);
  for (const p of err.problems) console.error(`  ${p}`);
  return err.exitCode;
}
