import { createTwoFilesPatch } from "diff";
import { POLICY_HISTORY } from "../../control/client.ts";
import type { PolicyKind, PolicyRevision } from "../../schemas/index.ts";
import { toYaml } from "../../schemas/policy-text.ts";
import { NATS_FLAGS, OUTPUT_FLAG, UsageError, formatTable, jsonOutput, type Parsed } from "../args.ts";
import { CliError, Exit, controlRequest } from "../client.ts";
import type { Command } from "../command.ts";
import { KIND_ARG, kindOf, withControl } from "./policy.ts";

/**
 * `mesh history` and `mesh diff` (docs/cli.md): what changed in a service's
 * policy. KV numbers revisions across the whole bucket (1, 3, 6, 7), so each
 * change also gets its number among this document's changes that KV still
 * keeps (CHANGE 1, 2, 3, 4), and a summary of the top-level fields it changed;
 * `mesh diff` prints a unified diff between two revisions.
 */

/** The top-level fields whose values differ between two documents, in order of first appearance. */
export function changedFields(before: unknown, after: unknown): string[] {
  const obj = (v: unknown): Record<string, unknown> => (v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {});
  const [a, b] = [obj(before), obj(after)];
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
  return keys.filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]));
}

function describeChange(entry: PolicyRevision, previous: PolicyRevision | undefined): string {
  if (entry.operation !== "PUT") return "deleted";
  if (!previous || previous.operation !== "PUT") return "created";
  const fields = changedFields(previous.document, entry.document);
  return fields.length === 0 ? "re-applied, unchanged" : `changed ${fields.join(", ")}`;
}

async function history(p: Parsed): Promise<number> {
  const kind = kindOf(p.positionals[0]);
  const service = p.positionals[1]!;
  const json = jsonOutput(p);
  const reply = await withControl(p, (nc) => controlRequest(nc, "history", { kind, service }));
  const entries = reply.entries;
  if (json) {
    console.log(JSON.stringify(entries.map((e, i) => ({ change: i + 1, ...e })), null, 2));
    return Exit.ok;
  }
  const rows = [["CHANGE", "REVISION", "CREATED", "WHAT"]];
  entries.forEach((e, i) => rows.push([String(i + 1), String(e.revision), e.created, describeChange(e, entries[i - 1])]));
  console.log(formatTable(rows));
  const kept = entries.length >= POLICY_HISTORY ? ` (KV keeps the last ${POLICY_HISTORY}: older changes are gone)` : "";
  console.log(`${kind} ${service}: ${entries.length} change(s)${kept}; REVISION is the KV revision`);
  if (entries.length > 1) console.log(`what changed: mesh diff ${p.positionals[0]} ${service} ${entries.at(-2)!.revision} ${entries.at(-1)!.revision}`);
  return Exit.ok;
}

function revisionArg(what: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${what} must be a revision number (see mesh history), got '${value}'`);
  return n;
}

/** A revision's document as YAML, the way `mesh get` prints it; a deletion is empty. */
function asText(entry: PolicyRevision): string {
  if (entry.operation !== "PUT" || entry.document === undefined) return "";
  return typeof entry.document === "string" ? `${entry.document}\n` : toYaml(entry.document);
}

function colour(patch: string): string {
  return patch
    .split("\n")
    .map((l) => (l.startsWith("+") && !l.startsWith("+++") ? `\x1b[32m${l}\x1b[0m` : l.startsWith("-") && !l.startsWith("---") ? `\x1b[31m${l}\x1b[0m` : l))
    .join("\n");
}

async function diff(p: Parsed): Promise<number> {
  const kind: PolicyKind = kindOf(p.positionals[0]);
  const service = p.positionals[1]!;
  const from = revisionArg("REV1", p.positionals[2])!;
  const to = revisionArg("REV2", p.positionals[3]);
  const { entries, inForce } = await withControl(p, async (nc) => {
    const h = await controlRequest(nc, "history", { kind, service });
    // REV2 absent: the revision sidecars have in force, which is not always the newest.
    const got = to === undefined ? await controlRequest(nc, "get", { kind, service }) : undefined;
    return { entries: h.entries, inForce: got?.items[0] };
  });
  const target = to ?? (inForce && !inForce.noneValid ? inForce.revision : undefined);
  if (target === undefined) throw new CliError(Exit.rejected, `${kind} '${service}' has no revision in force; give REV2`);
  const pick = (rev: number) => {
    const e = entries.find((x) => x.revision === rev);
    if (!e) throw new CliError(Exit.rejected, `${kind} '${service}' has no revision ${rev} in its history (kept: ${entries.map((x) => x.revision).join(", ")})`);
    return e;
  };
  const [a, b] = [pick(from), pick(target)];
  const label = (e: PolicyRevision) => `${kind}/${service}@${e.revision}${e.revision === inForce?.revision ? " (in force)" : ""}`;
  const patch = createTwoFilesPatch(label(a), label(b), asText(a), asText(b), a.created, b.created);
  process.stdout.write(process.stdout.isTTY ? colour(patch) : patch);
  return Exit.ok;
}

export const HISTORY_COMMANDS: Readonly<Record<string, Command>> = {
  history: {
    synopsis: `history ${KIND_ARG} SERVICE [-o json]`,
    summary: "a policy's changes KV still keeps: its change count, KV revision, time and what changed",
    args: { flags: { ...OUTPUT_FLAG, ...NATS_FLAGS }, positionals: { min: 2, max: 2, names: "KIND SERVICE" } },
    run: history,
  },
  diff: {
    synopsis: `diff ${KIND_ARG} SERVICE REV1 [REV2]`,
    summary: "a unified diff of a policy between two KV revisions (REV2 default: the one in force)",
    args: { flags: NATS_FLAGS, positionals: { min: 3, max: 4, names: "KIND SERVICE REV1 REV2" } },
    run: diff,
  },
};
