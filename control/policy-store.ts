import type { KV, KvEntry } from "@nats-io/kv";
import {
  checkRegistryEntry,
  checkStoredPolicy,
  parsePolicyText,
  registryKey,
  validatePolicy,
  validatePolicyDocuments,
  type ControlReplies,
  type ParseResult,
  type PolicyKind,
  type PolicyRevision,
  type RegistryEntry,
  type ServiceSummary,
  type ValidControlRequests,
} from "../schemas/index.ts";
import { mapLimit, mapLimitAll } from "../runtime/index.ts";
import type { MeshBuckets } from "./buckets.ts";
import { ControlError } from "./errors.ts";

/**
 * KV round trips in flight at once when a verb touches many keys: a 500-document
 * apply or a 2000-entry registry read is a few RTTs, not 500 or 2000 (docs/scale.md).
 */
const KV_CONCURRENCY = 64;

/**
 * What control does with policy: validate, publish, read back, roll back.
 * Every write goes through validation here, so a sidecar only ever receives
 * an invalid value if someone bypasses control and writes KV directly.
 */
export class PolicyStore {
  readonly #b: MeshBuckets;

  constructor(buckets: MeshBuckets) {
    this.#b = buckets;
  }

  async validate(req: ValidControlRequests["validate"]): Promise<ControlReplies["validate"]> {
    return { warnings: (await this.#check(req.documents)).warnings };
  }

  /**
   * All or nothing: every document validates, or none is written. The writes
   * go out together (distinct keys: validation refuses duplicates); if any
   * fails, the ones that succeeded are put back as they were.
   */
  async apply(req: ValidControlRequests["apply"]): Promise<ControlReplies["apply"]> {
    try {
      return await this.#apply(req);
    } catch (err) {
      if (err instanceof ControlError || !storeUnreachable(err)) throw err;
      throw this.#unavailable(err);
    }
  }

  async #apply(req: ValidControlRequests["apply"]): Promise<ControlReplies["apply"]> {
    const { documents, warnings } = await this.#check(req.documents);
    const previous = await mapLimitAll(documents, KV_CONCURRENCY, (d) => this.#kv(d.kind).get(d.service));
    const writes = await mapLimit(documents, KV_CONCURRENCY, (doc) => this.#kv(doc.kind).put(doc.service, JSON.stringify(doc)));
    const failed = writes.find((w) => w.status === "rejected");
    if (failed) {
      const done = documents.flatMap((doc, i) => (writes[i]!.status === "fulfilled" ? [{ doc, before: previous[i]! }] : []));
      await this.#undo(done);
      if (storeUnreachable(failed.reason)) throw this.#unavailable(failed.reason);
      throw new ControlError("internal", `apply failed and was undone: ${(failed.reason as Error).message}`, { cause: failed.reason });
    }
    const applied = documents.map((doc, i) => ({ kind: doc.kind, service: doc.service, revision: (writes[i] as PromiseFulfilledResult<number>).value }));
    return { applied, warnings };
  }

  /** The revision in force per key: the newest valid one, as a sidecar starting now would apply it, saying so when a newer one is rejected. */
  async get(req: ValidControlRequests["get"]): Promise<ControlReplies["get"]> {
    const kv = this.#kv(req.kind);
    const keys = req.service ? [req.service] : await collect(await kv.keys());
    const entries = await mapLimitAll(keys.sort(), KV_CONCURRENCY, (key) => kv.get(key));
    const current = entries.filter((e): e is KvEntry => e?.operation === "PUT");
    const items = await mapLimitAll(current, KV_CONCURRENCY, (e) => this.#inForce(req.kind, revisionOf(req.kind, e)));
    if (req.service && items.length === 0) throw new ControlError("not_found", `no ${req.kind} policy for '${req.service}'`);
    return { items };
  }

  async delete(req: ValidControlRequests["delete"]): Promise<ControlReplies["delete"]> {
    const kv = this.#kv(req.kind);
    const current = await kv.get(req.service);
    if (!current || current.operation !== "PUT") throw new ControlError("not_found", `no ${req.kind} policy for '${req.service}'`);
    await kv.delete(req.service, { previousSeq: current.revision });
    const after = await kv.get(req.service);
    return { revision: after?.revision ?? current.revision };
  }

  async history(req: ValidControlRequests["history"]): Promise<ControlReplies["history"]> {
    const entries = await this.#history(req.kind, req.service);
    if (entries.length === 0) throw new ControlError("not_found", `no ${req.kind} history for '${req.service}'`);
    return { entries };
  }

  /** Restores `to`, or else the last valid revision before the current one. */
  async rollback(req: ValidControlRequests["rollback"]): Promise<ControlReplies["rollback"]> {
    const entries = await this.#history(req.kind, req.service);
    const current = entries.at(-1);
    if (!current) throw new ControlError("not_found", `no ${req.kind} history for '${req.service}'`);
    const candidates = entries.filter((e) => e.operation === "PUT" && (req.to === undefined ? e.revision < current.revision : e.revision === req.to));
    const target = candidates.reverse().find((e) => validatePolicy(e.document).ok);
    if (!target) throw new ControlError("not_found", noRollbackTarget(req, entries));
    const revision = await this.#kv(req.kind).update(req.service, JSON.stringify(target.document), current.revision).catch((err) => {
      throw new ControlError("conflict", `'${req.service}' changed during the rollback; try again`, { cause: err });
    });
    return { restored: target.revision, revision };
  }

  /**
   * A policy file's text checked as `mesh validate` checks it (parse, schema,
   * semantics, warnings about versions without instances); nothing is written.
   */
  async validateText(text: string): Promise<ParseResult> {
    const known = await this.knownVersions();
    return parsePolicyText(text, { knownVersions: (service) => known.get(service) ?? new Set() });
  }

  /** Every live instance in the registry, as control wrote it; entries written into KV by hand are skipped. */
  async instances(): Promise<RegistryEntry[]> {
    return (await currentEntries(this.#b.registry)).flatMap((entry) => registryEntryOf(entry.key, entry) ?? []);
  }

  async services(): Promise<ControlReplies["services"]> {
    const byVersion = new Map<string, ServiceSummary>();
    for (const instance of await this.instances()) {
      const id = `${instance.service}/${instance.version}`;
      const summary = byVersion.get(id) ?? { service: instance.service, version: instance.version, instances: 0, ready: 0, unready: 0, draining: 0, names: [] };
      summary.instances++;
      summary[instance.state]++;
      summary.names.push(instance.instance);
      if (instance.region !== undefined || summary.regions) {
        summary.regions ??= {};
        const region = instance.region ?? "-";
        summary.regions[region] = (summary.regions[region] ?? 0) + 1;
      }
      byVersion.set(id, summary);
    }
    const services = [...byVersion.values()].sort((a, b) => a.service.localeCompare(b.service) || a.version.localeCompare(b.version));
    return { services };
  }

  /** Versions with a registered instance, for warnings about backends nobody serves. */
  async knownVersions(): Promise<Map<string, Set<string>>> {
    const known = new Map<string, Set<string>>();
    for (const s of (await this.services()).services) {
      const set = known.get(s.service) ?? new Set<string>();
      set.add(s.version);
      known.set(s.service, set);
    }
    return known;
  }

  async #inForce(kind: PolicyKind, current: PolicyRevision): Promise<PolicyRevision> {
    const checked = checkStoredPolicy(kind, current.service, current.document);
    if (checked.ok) return current;
    const rejected = { revision: current.revision, created: current.created, problems: checked.problems };
    const older = (await this.#history(kind, current.service)).filter((e) => e.revision < current.revision).reverse();
    for (const e of older) {
      if (e.operation !== "PUT") break;
      if (checkStoredPolicy(kind, e.service, e.document).ok) return { ...e, rejected };
    }
    return { ...current, rejected, noneValid: true };
  }

  async #check(values: unknown[]) {
    const known = await this.knownVersions();
    const result = validatePolicyDocuments(values, { knownVersions: (service) => known.get(service) ?? new Set() });
    if (!result.ok) throw new ControlError("rejected", "policy rejected: nothing was applied", { problems: result.problems });
    return result;
  }

  async #history(kind: PolicyKind, service: string): Promise<PolicyRevision[]> {
    const entries = await collect(await this.#kv(kind).history({ key: service }));
    return entries.map((e) => revisionOf(kind, e));
  }

  async #undo(done: Array<{ doc: { kind: PolicyKind; service: string }; before: KvEntry | null }>): Promise<void> {
    await mapLimit(done, KV_CONCURRENCY, async ({ doc, before }) => {
      const kv = this.#kv(doc.kind);
      if (before?.operation === "PUT") await kv.put(doc.service, before.value);
      else await kv.delete(doc.service);
    });
  }

  /** The buckets' home cluster is gone (docs/multi-region.md): nothing was written. */
  #unavailable(err: unknown): ControlError {
    const home = this.#b.home ? ` (home cluster '${this.#b.home}')` : "";
    const message = `the policy buckets${home} cannot be reached, so nothing was applied: is their region down? (${(err as Error).message})`;
    return new ControlError("store_unavailable", message, { cause: err });
  }

  #kv(kind: PolicyKind): KV {
    return this.#b.policy[kind];
  }
}

/**
 * A registry value that fits registry-entry.schema.json and is stored under
 * its own `<service>.<instance>` key, or undefined. Control writes only such
 * entries; anything else was written into KV by hand, and is skipped.
 */
function registryEntryOf(key: string, entry: KvEntry): RegistryEntry | undefined {
  let value: unknown;
  try {
    value = entry.json();
  } catch {
    return undefined;
  }
  const checked = checkRegistryEntry(value);
  return checked.ok && key === registryKey(checked.value.service, checked.value.instance) ? checked.value : undefined;
}

/** Why a rollback has nothing to restore, in plain words, with the revisions KV keeps (at most POLICY_HISTORY). */
function noRollbackTarget(req: ValidControlRequests["rollback"], entries: PolicyRevision[]): string {
  const what = `${req.kind} '${req.service}'`;
  if (req.to === undefined) return `${what} has no valid revision before the current one in its history`;
  const found = entries.find((e) => e.revision === req.to);
  if (!found) return `${what} has no revision ${req.to} in its history (kept: ${entries.map((e) => e.revision).join(", ")})`;
  return found.operation === "PUT" ? `revision ${req.to} of ${what} is not a valid document` : `revision ${req.to} of ${what} is a deletion`;
}

function revisionOf(kind: PolicyKind, e: KvEntry): PolicyRevision {
  const revision: PolicyRevision = { kind, service: e.key, revision: e.revision, created: e.created.toISOString(), operation: e.operation };
  if (e.operation === "PUT") {
    try {
      revision.document = e.json();
    } catch {
      revision.document = e.string();
    }
  }
  return revision;
}

/**
 * The live value of every key, read through one ordered consumer instead of a
 * get per key (2000 registry entries: tens of ms, not a round trip each;
 * docs/scale.md), up to the last write when the read began. Deleted keys are left out.
 */
async function currentEntries(kv: KV): Promise<KvEntry[]> {
  // Heartbeats keep writing while we read: what was stored when we started is enough, so stop there.
  const lastSeq = (await kv.status()).streamInfo.state.last_seq;
  const last = new Map<string, KvEntry>();
  for await (const e of await kv.history()) {
    last.set(e.key, e);
    if (e.revision >= lastSeq) break;
  }
  return [...last.values()].filter((e) => e.operation === "PUT");
}

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

/**
 * A write nobody could take: no responders (the bucket's stream has no
 * server at all, its cluster is gone), no answer in time, or JetStream
 * saying it is "temporarily unavailable" (no meta leader: the lost region
 * took the quorum with it) (docs/multi-region.md).
 */
function storeUnreachable(err: unknown): boolean {
  const text = `${(err as Error)?.message} ${String((err as Error)?.cause ?? "")}`;
  return /no responders|timeout|timed out|503|temporarily unavailable/i.test(text);
}
