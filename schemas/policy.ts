/**
 * The policy contract: kinds, their KV buckets, and the one way a policy
 * document enters the mesh, validated against its schema and the checks the
 * schema cannot express, with defaults applied and deep-frozen.
 */
import type { ValidateFunction } from "ajv";
import { validatorOf } from "./documents.ts";
import { checkAuthz, checkQuota, checkRoute, type SemanticCheck, type SemanticOptions } from "./policy-semantics.ts";
import { readPolicyText } from "./policy-text.ts";
import type { AuthzPolicy, PolicyProblem, QuotaPolicy, RoutePolicy } from "./policy-types.generated.ts";
import { deepFreeze, problemsOf, quote, type Problem } from "./validate.ts";

export type * from "./policy-types.generated.ts";
export type { SemanticOptions as PolicyValidationOptions } from "./policy-semantics.ts";

/** A validated policy document of any kind; `kind` tells which. */
export type PolicyDocument = RoutePolicy | AuthzPolicy | QuotaPolicy;

export type PolicyKind = PolicyDocument["kind"];

export const POLICY_KINDS: readonly PolicyKind[] = Object.freeze(["Route", "Authz", "Quota"] as const);

/** KV bucket of each kind; key = service name, value = the policy document. */
export const POLICY_BUCKETS: Readonly<Record<PolicyKind, string>> = Object.freeze({
  Route: "mesh_routes",
  Authz: "mesh_authz",
  Quota: "mesh_quotas",
});

/** KV bucket of service instances; key `<service>.<instance>`, refreshed by heartbeat. */
export const REGISTRY_BUCKET = "mesh_registry";

/**
 * The buckets every sidecar may read: the policy buckets and the registry,
 * by direct get and STREAM.INFO (secure mode's imports) and by the `keys`
 * verb. Not the quota counters, the telemetry lease or the access log
 * (docs/security.md). control-keys-request.schema.json lists the same.
 */
export const READABLE_BUCKETS: readonly string[] = Object.freeze([...Object.values(POLICY_BUCKETS), REGISTRY_BUCKET]);

const NOUNS: Readonly<Record<string, PolicyKind>> = {
  routes: "Route",
  route: "Route",
  authz: "Authz",
  quotas: "Quota",
  quota: "Quota",
};

/** CLI nouns: routes|authz|quotas (also route, quota, and the kind names), case-insensitively. */
export function kindFromNoun(noun: string): PolicyKind | undefined {
  return Object.hasOwn(NOUNS, noun.toLowerCase()) ? NOUNS[noun.toLowerCase()] : undefined;
}

export type ValidationResult<T> =
  | { ok: true; value: Readonly<T>; warnings: PolicyProblem[] }
  | { ok: false; problems: PolicyProblem[] };

export type ParseResult =
  | { ok: true; documents: Readonly<PolicyDocument>[]; warnings: PolicyProblem[] }
  | { ok: false; problems: PolicyProblem[] };

interface KindRules {
  validate: ValidateFunction;
  check: SemanticCheck;
}

/** Compiled once, at load. */
const RULES: Readonly<Record<PolicyKind, KindRules>> = {
  Route: { validate: validatorOf("route"), check: checkRoute },
  Authz: { validate: validatorOf("authz"), check: checkAuthz },
  Quota: { validate: validatorOf("quota"), check: checkQuota },
};

/**
 * One document (an already parsed JSON value): schema and semantic checks,
 * defaults applied, deep-frozen. `owned`: nobody else holds `doc` (it was
 * just parsed for this), so it is checked and frozen in place instead of
 * copied first (a sidecar checks every policy change it receives).
 */
export function validatePolicy(doc: unknown, opts: SemanticOptions = {}, owned = false): ValidationResult<PolicyDocument> {
  const checked = checkDocument(doc, opts, owned);
  const problems = checked.problems.map((p) => ({ document: 0, ...p }));
  if (problems.length > 0 || checked.value === undefined) return { ok: false, problems };
  return { ok: true, value: deepFreeze(checked.value), warnings: checked.warnings.map((p) => ({ document: 0, ...p })) };
}

/**
 * A value stored under `key` of `kind`'s bucket, as sidecars and control
 * judge it on read: valid, of the bucket's kind, and about its key's service.
 */
export function checkStoredPolicy(kind: PolicyKind, key: string, doc: unknown, owned = false): { ok: true; value: Readonly<PolicyDocument> } | { ok: false; problems: string[] } {
  const result = validatePolicy(doc, {}, owned);
  if (!result.ok) return { ok: false, problems: result.problems.map((p) => `${p.path}: ${p.message}`) };
  const policy = result.value;
  if (policy.kind !== kind) return { ok: false, problems: [`kind: expected ${kind}, got "${policy.kind}"`] };
  if (policy.service !== key) return { ok: false, problems: [`service: "${policy.service}" does not match key "${key}"`] };
  return { ok: true, value: policy };
}

interface Checked {
  value?: PolicyDocument;
  problems: Problem[];
  warnings: Problem[];
}

function checkDocument(doc: unknown, opts: SemanticOptions, owned = false): Checked {
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) {
    return { problems: [{ path: "(root)", message: `must be an object, got ${quote(doc)}` }], warnings: [] };
  }
  const kind = (doc as Record<string, unknown>).kind;
  if (!isPolicyKind(kind)) {
    const message = kind === undefined ? "is required" : `unknown kind ${quote(kind)} (expected Route, Authz or Quota)`;
    return { problems: [{ path: "kind", message }], warnings: [] };
  }
  let copy: Record<string, unknown>;
  try {
    copy = (owned ? doc : structuredClone(doc)) as Record<string, unknown>;
  } catch {
    return { problems: [{ path: "(root)", message: "must be plain JSON data" }], warnings: [] };
  }
  const { validate, check } = RULES[kind];
  const schemaProblems = validate(copy) ? [] : problemsOf(validate.errors, copy);
  const semantic = check(copy, opts);
  const reported = new Set(schemaProblems.map((p) => p.path));
  const problems = [...schemaProblems, ...semantic.errors.filter((p) => !reported.has(p.path))];
  return { value: copy as unknown as PolicyDocument, problems, warnings: semantic.warnings };
}

function isPolicyKind(kind: unknown): kind is PolicyKind {
  return typeof kind === "string" && (POLICY_KINDS as readonly string[]).includes(kind);
}

/**
 * A policy file's text: JSON (one object or an array of objects) or YAML
 * (documents separated by `---`). Every document is validated; all problems
 * of all documents are reported, including two documents for the same
 * (kind, service).
 */
export function parsePolicyText(text: string, opts: SemanticOptions = {}): ParseResult {
  const read = readPolicyText(text);
  if (!read.ok) return { ok: false, problems: read.problems.map((p) => ({ ...p, path: "(root)" })) };
  return checkDocuments(read.documents, opts);
}

/**
 * Several already parsed documents, as `mesh apply` sends them to control:
 * the same checks as for a file, all-or-nothing.
 */
export function validatePolicyDocuments(values: readonly unknown[], opts: SemanticOptions = {}): ParseResult {
  if (values.length === 0) return { ok: false, problems: [{ document: -1, path: "(root)", message: "no policy documents" }] };
  return checkDocuments(values.map((value, index) => ({ index, value })), opts);
}

function checkDocuments(raw: ReadonlyArray<{ index: number; value: unknown }>, opts: SemanticOptions): ParseResult {
  const documents: PolicyDocument[] = [];
  const problems: PolicyProblem[] = [];
  const warnings: PolicyProblem[] = [];
  const firstOf = new Map<string, number>();
  for (const { index, value } of raw) {
    const checked = checkDocument(value, opts);
    problems.push(...checked.problems.map((p) => ({ document: index, ...p })));
    warnings.push(...checked.warnings.map((p) => ({ document: index, ...p })));
    const duplicate = duplicateProblem(value, index, firstOf);
    if (duplicate) problems.push(duplicate);
    if (checked.value) documents.push(checked.value);
  }
  if (problems.length > 0) return { ok: false, problems };
  return { ok: true, documents: documents.map((d) => deepFreeze(d)), warnings };
}

/** Records the document's (kind, service); a problem when an earlier document had the same. */
function duplicateProblem(value: unknown, index: number, firstOf: Map<string, number>): PolicyProblem | undefined {
  const { kind, service } = (value ?? {}) as Record<string, unknown>;
  if (!isPolicyKind(kind) || typeof service !== "string") return undefined;
  const key = `${kind}/${service}`;
  const first = firstOf.get(key);
  if (first === undefined) {
    firstOf.set(key, index);
    return undefined;
  }
  return { document: index, path: "service", message: `another ${kind} for ${quote(service)} is document ${first + 1}` };
}

/**
 * `document 2: rules[1].backends[0].weight: must be >= 0, got -10`. Documents
 * are counted from 1 here, as people count them; problems of the whole file
 * have no document prefix, and the `(root)` path is left out.
 */
export function formatProblem(p: PolicyProblem): string {
  const where = p.document >= 0 ? `document ${p.document + 1}: ` : "";
  const path = p.path === "(root)" ? "" : `${p.path}: `;
  return `${where}${path}${p.message}`;
}
