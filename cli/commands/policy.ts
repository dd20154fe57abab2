import { readFile } from "node:fs/promises";
import type { NatsConnection } from "@nats-io/transport-node";
import { formatProblem, kindFromNoun, parsePolicyText, type PolicyKind, type PolicyRevision } from "../../schemas/index.ts";
import { toYaml } from "../../schemas/policy-text.ts";
import { NATS_FLAGS, OUTPUT_FLAG, UsageError, jsonOutput, stringValue, type Parsed } from "../args.ts";
import { CliError, Exit, connectCli, controlRequest, type NatsFlags } from "../client.ts";
import type { Command } from "../command.ts";

/**
 * The policy commands of the `mesh` CLI: each talks to control over NATS,
 * prints for people, and returns an exit code.
 */

export const KIND_ARG = "routes|authz|quotas";
export function kindOf(noun: string | undefined): PolicyKind {
  const kind = noun ? kindFromNoun(noun) : undefined;
  if (!kind) throw new UsageError(`unknown kind '${noun ?? ""}' (expected routes, authz or quotas)`);
  return kind;
}

export async function withControl<T>(p: Parsed, work: (nc: NatsConnection) => Promise<T>): Promise<T> {
  const nc = await connectCli(p.values as NatsFlags);
  try {
    return await work(nc);
  } finally {
    await nc.close();
  }
}

/** Reads and checks a policy file locally, so syntax errors come with line numbers and nothing is sent. */
async function readPolicyFile(file: string | undefined, verdict: string) {
  if (!file) throw new UsageError("-f FILE is required");
  let text: string;
  try {
    text = file === "-" ? await readStdin() : await readFile(file, "utf8");
  } catch (err) {
    throw new UsageError(`cannot read '${file}': ${(err as Error).message}`);
  }
  const parsed = parsePolicyText(text);
  if (!parsed.ok) throw new CliError(Exit.rejected, `${file}: ${verdict}`, parsed.problems.map(formatProblem));
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

async function apply(p: Parsed): Promise<number> {
  const file = await readPolicyFile(stringValue(p, "file"), "rejected, nothing applied");
  const reply = await withControl(p, (nc) => controlRequest(nc, "apply", { documents: file.documents }));
  printWarnings(reply.warnings);
  for (const a of reply.applied) console.log(`${a.kind} ${a.service}: applied (revision ${a.revision})`);
  return Exit.ok;
}

async function validate(p: Parsed): Promise<number> {
  const values = p.values;
  const file = await readPolicyFile(stringValue(p, "file"), "invalid");
  if (!values.offline) {
    // Control also knows which versions have instances; without it the file is still checked.
    const reply = await withControl(p, (nc) => controlRequest(nc, "validate", { documents: file.documents })).catch((err) => {
      if (err instanceof CliError && err.exitCode === Exit.unreachable) {
        console.error(`note: ${err.message}; checked without the registry`);
        return { warnings: file.warnings };
      }
      throw err;
    });
    printWarnings(reply.warnings);
  } else printWarnings(file.warnings);
  console.log(`${stringValue(p, "file")}: ${file.documents.length} document(s) valid`);
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
  if (!r.noneValid) process.stdout.write(toYaml(r.document));
}

async function get(p: Parsed): Promise<number> {
  const kind = kindOf(p.positionals[0]);
  const service = p.positionals[1];
  const json = jsonOutput(p);
  const reply = await withControl(p, (nc) => controlRequest(nc, "get", service ? { kind, service } : { kind }));
  if (json) console.log(JSON.stringify(reply.items.map((i) => i.document), null, 2));
  else if (reply.items.length === 0) console.error(`no ${kind} policies`);
  else
    reply.items.forEach((item, i) => {
      if (i > 0) console.log("---");
      printRevision(item);
    });
  return Exit.ok;
}

async function remove(p: Parsed): Promise<number> {
  const kind = kindOf(p.positionals[0]);
  const service = p.positionals[1]!;
  const reply = await withControl(p, (nc) => controlRequest(nc, "delete", { kind, service }));
  console.log(`${kind} ${service}: deleted (revision ${reply.revision}); sidecars fall back to defaults`);
  return Exit.ok;
}

async function rollback(p: Parsed): Promise<number> {
  const kind = kindOf(p.positionals[0]);
  const service = p.positionals[1]!;
  const raw = stringValue(p, "to");
  const to = raw === undefined ? undefined : Number(raw);
  if (to !== undefined && !(Number.isInteger(to) && to > 0)) throw new UsageError(`--to must be a revision number, got '${raw}'`);
  const reply = await withControl(p, (nc) => controlRequest(nc, "rollback", { kind, service, ...(to ? { to } : {}) }));
  console.log(`${kind} ${service}: restored revision ${reply.restored} as revision ${reply.revision}`);
  return Exit.ok;
}

async function services(p: Parsed): Promise<number> {
  const json = jsonOutput(p);
  const reply = await withControl(p, (nc) => controlRequest(nc, "services", {}));
  if (json) {
    console.log(JSON.stringify(reply.services, null, 2));
    return Exit.ok;
  }
  // A REGIONS column only when some instance reports one (docs/multi-region.md).
  const withRegions = reply.services.some((s) => s.regions !== undefined);
  const rows = [["SERVICE", "VERSION", "INSTANCES", "HEALTH", ...(withRegions ? ["REGIONS"] : [])]];
  for (const s of reply.services) {
    const others = [s.unready > 0 ? `${s.unready} unready` : "", s.draining > 0 ? `${s.draining} draining` : ""].filter(Boolean);
    const health = others.length > 0 ? [`${s.ready} ready`, ...others].join(", ") : `${s.ready}/${s.instances} ready`;
    const regions = Object.entries(s.regions ?? {}).sort(([a], [b]) => a.localeCompare(b)).map(([r, n]) => `${r}:${n}`).join(" ");
    rows.push([s.service, s.version, String(s.instances), health, ...(withRegions ? [regions] : [])]);
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  for (const r of rows) console.log(r.map((cell, c) => cell.padEnd(widths[c]!)).join("  ").trimEnd());
  return Exit.ok;
}

const FILE_FLAG = { file: { type: "string", short: "f", value: "FILE", help: "policy documents, JSON or YAML, several per file; - for stdin" } } as const;
const KIND_SERVICE = { min: 2, max: 2, names: "KIND SERVICE" };

export const POLICY_COMMANDS: Readonly<Record<string, Command>> = {
  apply: { synopsis: "apply -f FILE", summary: "publish policy documents (all or nothing)", args: { flags: { ...FILE_FLAG, ...NATS_FLAGS } }, run: apply },
  validate: {
    synopsis: "validate -f FILE [--offline]",
    summary: "only check policy documents; nothing is published",
    args: { flags: { ...FILE_FLAG, offline: { type: "boolean", help: "check without asking control (no warnings about unknown versions)" }, ...NATS_FLAGS } },
    run: validate,
  },
  get: {
    synopsis: `get ${KIND_ARG} [SERVICE] [-o json]`,
    summary: "read policy: the revision in force, and a newer one that was rejected",
    args: { flags: { ...OUTPUT_FLAG, ...NATS_FLAGS }, positionals: { min: 1, max: 2, names: "KIND SERVICE" } },
    run: get,
  },
  delete: { synopsis: `delete ${KIND_ARG} SERVICE`, summary: "remove a policy; sidecars fall back to defaults", args: { flags: NATS_FLAGS, positionals: KIND_SERVICE }, run: remove },
  rollback: {
    synopsis: `rollback ${KIND_ARG} SERVICE [--to REVISION]`,
    summary: "restore a revision (default: the last valid one before the current)",
    args: { flags: { to: { type: "string", value: "REVISION", help: "the revision to restore" }, ...NATS_FLAGS }, positionals: KIND_SERVICE },
    run: rollback,
  },
  services: { synopsis: "services [-o json]", summary: "registered services, versions, instances, health", args: { flags: { ...OUTPUT_FLAG, ...NATS_FLAGS } }, run: services },
};
