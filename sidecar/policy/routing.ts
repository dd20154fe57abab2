import { ANY_VERSION, compileHeaderRegex, type RoutePolicy } from "../../schemas/index.ts";

/**
 * Route documents compiled for the request path: everything a request needs
 * is decided by precomputed sets, RE2 regexes (linear time, whatever the
 * header) and cumulative weights. Pure, so
 * unit-tested without sockets.
 */

/** The parts of a Route document routing reads (the schema-derived type satisfies it). */
export interface RouteInput {
  timeoutMs?: number;
  rules?: ReadonlyArray<RuleInput>;
}

export interface RuleInput {
  match?: {
    path?: string;
    pathPrefix?: string;
    methods?: readonly string[];
    headers?: Readonly<Record<string, string>>;
    headersRegex?: Readonly<Record<string, string>>;
  };
  backends?: ReadonlyArray<{ version?: string; weight?: number }>;
}

/** Reads one request header by lowercase name. */
export type HeaderLookup = (name: string) => string | undefined;

export interface CompiledRule<R extends RuleInput = RuleInput> {
  readonly source: R;
  matches(method: string, path: string, header: HeaderLookup): boolean;
  /** a version by weight, or `_` (any version) */
  pickVersion(random?: number): string;
}

export interface CompiledRoute<T extends RouteInput = RouteInput> {
  readonly source: T;
  readonly timeoutMs: number | undefined;
  readonly rules: ReadonlyArray<CompiledRule<NonNullable<T["rules"]>[number]>>;
  /** first matching rule for a path without its query; undefined = no rule matched (all requests go to any version) */
  select(method: string, path: string, header: HeaderLookup): CompiledRule<NonNullable<T["rules"]>[number]> | undefined;
}

function compileMatch(match: RuleInput["match"]): CompiledRule["matches"] {
  if (!match) return () => true;
  const methods = match.methods ? new Set(match.methods) : undefined;
  const exact = Object.entries(match.headers ?? {});
  const regexes = Object.entries(match.headersRegex ?? {}).map(([name, re]) => [name, compileHeaderRegex(re)] as const);
  const { path, pathPrefix } = match;
  // A prefix matches whole segments: `/admin` matches `/admin` and `/admin/x`, not `/administrator`.
  const segmentPrefix = pathPrefix?.endsWith("/") ? pathPrefix : `${pathPrefix}/`;
  return (method, p, header) => {
    if (methods && !methods.has(method)) return false;
    if (path !== undefined && p !== path) return false;
    if (pathPrefix !== undefined && p !== pathPrefix && !p.startsWith(segmentPrefix)) return false;
    for (const [name, value] of exact) if (header(name) !== value) return false;
    for (const [name, re] of regexes) {
      const v = header(name);
      if (v === undefined || !re(v)) return false;
    }
    return true;
  };
}

function compileBackends(backends: RuleInput["backends"]): CompiledRule["pickVersion"] {
  if (!backends || backends.length === 0) return () => ANY_VERSION;
  const versions = backends.map((b) => b.version ?? ANY_VERSION);
  if (versions.length === 1) return () => versions[0]!;
  const cumulative: number[] = [];
  let total = 0;
  for (const b of backends) cumulative.push((total += b.weight ?? 1));
  return (random = Math.random()) => {
    const x = random * total;
    for (let i = 0; i < cumulative.length; i++) if (x < cumulative[i]!) return versions[i]!;
    return versions[versions.length - 1]!;
  };
}

export function compileRoute<T extends RouteInput>(route: T): CompiledRoute<T> {
  type R = NonNullable<T["rules"]>[number];
  const rules = (route.rules ?? []).map((rule: R) => ({
    source: rule,
    matches: compileMatch(rule.match),
    pickVersion: compileBackends(rule.backends),
  }));
  return {
    source: route,
    timeoutMs: route.timeoutMs,
    rules,
    select(method, path, header) {
      if (rules.length === 0) return undefined;
      return rules.find((r) => r.matches(method, path, header));
    },
  };
}

/** A raw path and query without the query. */
export function pathOnly(pathAndQuery: string): string {
  const q = pathAndQuery.indexOf("?");
  return q === -1 ? pathAndQuery : pathAndQuery.slice(0, q);
}

/**
 * A Route whose caller picks instances from the registry rather than leaving
 * it to the queue group: p2c-ewma, and localityFailover: false (which must
 * know the instances to refuse the remote ones; docs/multi-region.md).
 */
export function choosesInstances(route: Pick<RoutePolicy, "loadBalancer" | "localityFailover">): boolean {
  return route.loadBalancer === "p2c-ewma" || route.localityFailover === false;
}
