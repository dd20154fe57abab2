/**
 * Checks on policy documents that JSON Schema cannot express. They run on the
 * defaults-applied copy even when the schema found problems, so they look at
 * shapes defensively and skip what is not what the schema asks for (the
 * schema has reported it already).
 */
import { compileGlob, globProblem } from "./glob.ts";
import { headerRegexProblem } from "./header-regex.ts";
import { ANY_VERSION } from "./names.ts";
import { quote, type Problem } from "./validate.ts";

export interface SemanticOptions {
  /** versions with at least one registered instance of a service; undefined = not known, no warnings */
  knownVersions?: (service: string) => ReadonlySet<string> | undefined;
}

export interface Findings {
  errors: Problem[];
  warnings: Problem[];
}

export type SemanticCheck = (doc: Obj, opts: SemanticOptions) => Findings;

type Obj = Record<string, unknown>;

function asObject(value: unknown): Obj | undefined {
  return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Obj) : undefined;
}

function asList(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

function findings(): Findings {
  return { errors: [], warnings: [] };
}

export const checkRoute: SemanticCheck = (doc, opts) => {
  const f = findings();
  checkPerTryTimeout(doc, f);
  const known = typeof doc.service === "string" ? opts.knownVersions?.(doc.service) : undefined;
  const versions = (path: string, value: unknown) => checkVersion(path, value, doc.service, known, f);
  asList(doc.rules).forEach((item, i) => {
    const rule = asObject(item);
    if (rule) checkRouteRule(`rules[${i}]`, rule, versions, f);
  });
  return f;
};

function checkPerTryTimeout(doc: Obj, f: Findings): void {
  const perTry = asObject(doc.retries)?.perTryTimeoutMs;
  if (typeof perTry === "number" && typeof doc.timeoutMs === "number" && perTry > doc.timeoutMs) {
    f.errors.push({ path: "retries.perTryTimeoutMs", message: `must not exceed timeoutMs (${doc.timeoutMs}), got ${perTry}` });
  }
}

type VersionCheck = (path: string, value: unknown) => void;

function checkRouteRule(path: string, rule: Obj, versions: VersionCheck, f: Findings): void {
  if (rule.backends === undefined && rule.fault === undefined && rule.mirror === undefined) {
    f.errors.push({ path, message: "must have backends, fault or mirror" });
  }
  checkMatch(`${path}.match`, asObject(rule.match), f);
  const backends = asList(rule.backends).map(asObject);
  backends.forEach((b, j) => versions(`${path}.backends[${j}].version`, b?.version));
  const weights = backends.map((b) => b?.weight);
  if (weights.length > 0 && weights.every((w) => w === 0)) {
    f.errors.push({ path: `${path}.backends`, message: `weights must add up to more than 0, got ${quote(weights)}` });
  }
  versions(`${path}.mirror.version`, asObject(rule.mirror)?.version);
  const fault = asObject(rule.fault);
  if (fault && fault.delay === undefined && fault.abort === undefined) {
    f.errors.push({ path: `${path}.fault`, message: "must have delay, abort or both" });
  }
}

function checkMatch(path: string, match: Obj | undefined, f: Findings): void {
  if (!match) return;
  if (match.path !== undefined && match.pathPrefix !== undefined) {
    f.errors.push({ path, message: "must have path or pathPrefix, not both" });
  }
  for (const key of ["path", "pathPrefix"]) {
    const value = match[key];
    if (typeof value === "string" && /[?#]/.test(value)) {
      f.errors.push({ path: `${path}.${key}`, message: `must not contain a query or fragment, got ${quote(value)}` });
    }
  }
  for (const [name, source] of Object.entries(asObject(match.headersRegex) ?? {})) {
    const problem = typeof source === "string" ? headerRegexProblem(source) : undefined;
    if (problem) f.errors.push({ path: `${path}.headersRegex.${name}`, message: problem });
  }
}

function checkVersion(path: string, version: unknown, service: unknown, known: ReadonlySet<string> | undefined, f: Findings): void {
  if (typeof version !== "string") return;
  if (version === ANY_VERSION) {
    f.errors.push({ path, message: `"${ANY_VERSION}" is reserved for any version; leave version out instead` });
  } else if (known && !known.has(version)) {
    f.warnings.push({ path, message: `no registered instance of ${quote(service)} has version ${quote(version)}` });
  }
}

export const checkAuthz: SemanticCheck = (doc) => {
  const f = findings();
  const rules = asList(doc.rules);
  rules.forEach((item, i) => {
    const rule = asObject(item);
    if (!rule) return;
    checkGlobs(`rules[${i}].from`, rule.from, false, f);
    checkGlobs(`rules[${i}].paths`, rule.paths, true, f);
  });
  if (doc.default === "allow" && rules.length > 0) {
    f.warnings.push({ path: "rules", message: "have no effect while default is allow" });
  }
  return f;
};

function checkGlobs(path: string, globs: unknown, segmented: boolean, f: Findings): void {
  asList(globs).forEach((glob, i) => {
    const problem = typeof glob === "string" ? globProblem(glob, { segmented }) : undefined;
    if (problem) f.errors.push({ path: `${path}[${i}]`, message: problem });
  });
}

export const checkQuota: SemanticCheck = (doc) => {
  const f = findings();
  const callers = asList(doc.limits).map((limit) => asObject(limit)?.caller);
  callers.forEach((caller, i) => {
    if (typeof caller !== "string") return;
    const problem = globProblem(caller, { segmented: false });
    if (problem) f.errors.push({ path: `limits[${i}].caller`, message: problem });
    else checkShadowed(caller, i, callers, f);
  });
  return f;
};

/** A limit whose callers all match an earlier, different pattern never applies. */
function checkShadowed(caller: string, index: number, callers: unknown[], f: Findings): void {
  for (const earlier of callers.slice(0, index)) {
    if (typeof earlier !== "string" || earlier === caller || globProblem(earlier, { segmented: false })) continue;
    const covers = earlier === "*" || (!caller.includes("*") && compileGlob(earlier, { segmented: false })(caller));
    if (covers) {
      const message = `never applies: earlier caller ${quote(earlier)} already matches ${quote(caller)}`;
      f.warnings.push({ path: `limits[${index}].caller`, message });
      return;
    }
  }
}
