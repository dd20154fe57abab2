import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import { SERVICE_NAME, VERSION_NAME } from "./names.ts";

/**
 * One ajv instance for the repo: defaults applied, unknown keys rejected, all
 * errors reported. Schemas are not checked against the meta-schema at load
 * (that compiles the meta-schema in every process, ~100 ms of start-up);
 * test/schemas-meta.test.ts checks them instead, and strict mode still
 * refuses unknown keywords when a schema compiles.
 */
export const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true, validateSchema: false });
/** json-schema-to-typescript's annotation for a value of any JSON type (`"tsType": "unknown"`); ajv ignores it. */
ajv.addKeyword({ keyword: "tsType", schemaType: "string" });

export interface Problem {
  /** JSON path of the offending value, e.g. `rules[1].backends[0].weight`; `(root)` for the whole value */
  path: string;
  /** short, lowercase, quotes the offending value: `must be >= 0, got -10` */
  message: string;
}

/** What each `pattern` used in schemas/*.schema.json means to a person. */
export const PATTERN_MEANINGS: Readonly<Record<string, string>> = {
  [SERVICE_NAME.source]:
    "must be a service name: 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit",
  [VERSION_NAME.source]: "must be a version name: 1-32 letters, digits, '_' or '-'",
  "^/": "must start with /",
  "^[a-z0-9!#$%&'*+.^_`|~-]+$": "must be a lowercase HTTP header name",
  "^[a-z0-9*-]+$": "must be a service name or a glob of lowercase letters, digits, '-' and '*'",
  "^[A-Za-z0-9_-]{1,64}$": "must be an instance name: 1-64 letters, digits, '_' or '-'",
  "^http://[^/?#]+/?$": "must be an http:// origin (scheme, host and port, no path)",
  "^https?://[^?#]+$": "must be an http:// or https:// URL without query or fragment",
  "^[^:]+:[0-9]{1,5}$": "must be host:port",
  "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?Z$": "must be an ISO 8601 time in UTC, e.g. 2026-01-02T03:04:05.678Z",
  "^([0-9a-f]{32})?$": "must be a W3C trace id (32 lowercase hex digits) or empty",
  "^([0-9a-f]{16})?$": "must be a W3C span id (16 lowercase hex digits) or empty",
  "^[-/=_A-Za-z0-9]+(\\.[-/=_A-Za-z0-9]+)*$": "must be a KV key: tokens of letters, digits, '-', '/', '=' or '_', separated by '.'",
  "^(>|([-/=_A-Za-z0-9]+|\\*)(\\.([-/=_A-Za-z0-9]+|\\*))*(\\.>)?)$":
    "must be a KV key filter: tokens of letters, digits, '-', '/', '=' or '_', or '*', separated by '.', optionally ending in '>'",
};

/** Keywords whose problem names a field rather than judging a value. */
const NO_VALUE_QUOTED = new Set(["additionalProperties", "required", "uniqueItems"]);

/**
 * Turns ajv's errors into `path: message` problems a person can act on.
 * With `data` (the validated value) each message also quotes the offending value.
 */
export function problemsOf(errors: ErrorObject[] | null | undefined, data?: unknown): Problem[] {
  return (errors ?? []).filter((e) => e.keyword !== "propertyNames").map((e) => problemOf(e, data));
}

function problemOf(e: ErrorObject, data: unknown): Problem {
  const segments = pointerSegments(e.instancePath);
  const params = e.params as Record<string, unknown>;
  const value = data === undefined ? undefined : valueAt(data, segments);
  if (e.keyword === "additionalProperties") {
    return { path: pathOf([...segments, String(params.additionalProperty)]), message: "is not a known field" };
  }
  if (e.keyword === "required") {
    return { path: pathOf([...segments, String(params.missingProperty)]), message: "is required" };
  }
  if (e.propertyName !== undefined) {
    return { path: pathOf([...segments, e.propertyName]), message: `${messageOf(e, value)}, got ${quote(e.propertyName)}` };
  }
  const message = messageOf(e, value);
  const quoted = data !== undefined && !NO_VALUE_QUOTED.has(e.keyword) ? `, got ${quote(value)}` : "";
  return { path: pathOf(segments), message: message + quoted };
}

function messageOf(e: ErrorObject, value: unknown): string {
  const params = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case "enum":
      return `must be one of ${(params.allowedValues as unknown[]).map(String).join(", ")}`;
    case "const":
      return `must be ${quote(params.allowedValue)}`;
    case "pattern":
      return PATTERN_MEANINGS[String(params.pattern)] ?? `must match pattern ${String(params.pattern)}`;
    case "uniqueItems":
      return Array.isArray(value) ? `must not list ${quote(value[params.i as number])} twice` : "must not repeat items";
    case "minItems":
      return `must have at least ${String(params.limit)} item${params.limit === 1 ? "" : "s"}`;
    default:
      return (e.message ?? "is invalid").replace(/\bNOT\b/g, "not");
  }
}

/** `["rules", "1", "weight"]` -> `rules[1].weight`; no segments -> `(root)`. */
export function pathOf(segments: readonly (string | number)[]): string {
  const path = segments
    .map((s) => {
      const text = String(s);
      if (typeof s === "number" || /^\d+$/.test(text)) return `[${text}]`;
      return /^[A-Za-z0-9_$-]+$/.test(text) ? `.${text}` : `[${JSON.stringify(text)}]`;
    })
    .join("")
    .replace(/^\./, "");
  return path || "(root)";
}

function pointerSegments(pointer: string): string[] {
  return pointer === "" ? [] : pointer.split("/").slice(1).map((s) => s.replaceAll("~1", "/").replaceAll("~0", "~"));
}

function valueAt(data: unknown, segments: readonly string[]): unknown {
  let value = data;
  for (const s of segments) value = value !== null && typeof value === "object" ? (value as Record<string, unknown>)[s] : undefined;
  return value;
}

/** A value as it appears in a message: JSON, cut short. */
export function quote(value: unknown): string {
  const text = value === undefined ? "nothing" : (JSON.stringify(value) ?? String(value));
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** A value that crossed a process boundary: the value (typed by its schema), or what is wrong with it. */
export type Checked<T> = { ok: true; value: T } | { ok: false; problems: Problem[] };

/** Validates `value` in place (defaults applied); no copy, no freeze: for messages parsed just now. */
export function check<T>(validate: ValidateFunction, value: unknown): Checked<T> {
  return validate(value) ? { ok: true, value: value as T } : { ok: false, problems: problemsOf(validate.errors, value) };
}

/** `path: message; path: message`, at most `max` problems, then how many more. */
export function formatProblems(problems: readonly Problem[], max = 10): string {
  const shown = problems.slice(0, max).map((p) => `${p.path}: ${p.message}`);
  if (problems.length > max) shown.push(`and ${problems.length - max} more`);
  return shown.join("; ");
}

export class ValidationError extends Error {
  readonly problems: Problem[];
  constructor(what: string, problems: Problem[]) {
    super(`invalid ${what}: ${problems.map((p) => `${p.path}: ${p.message}`).join("; ")}`);
    this.name = "ValidationError";
    this.problems = problems;
  }
}

/** Validates (applying defaults) and freezes; throws ValidationError. */
export function validateFrozen<T>(validate: ValidateFunction, what: string, input: unknown): Readonly<T> {
  const copy = structuredClone(input);
  if (!validate(copy)) throw new ValidationError(what, problemsOf(validate.errors, copy));
  return deepFreeze(copy as T);
}

/** Freezes a value and everything it holds. */
export function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object") {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
