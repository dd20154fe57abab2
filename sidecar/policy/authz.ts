import { compileGlob, type AuthzPolicy, type AuthzRule, type GlobMatcher } from "../../schemas/index.ts";

/**
 * Authz documents compiled for the request path: globs are compiled once,
 * method lists become sets, so a decision builds nothing. Pure, so
 * unit-tested without sockets.
 */

export type AuthzDecision = "allow" | "deny";

/**
 * Decides one request. `caller` is the verified calling service (from the
 * subject, never a header); `path` is the request path without its query.
 */
export type AuthzDecider = (caller: string, method: string, path: string) => AuthzDecision;

type RuleMatcher = (caller: string, method: string, path: string, canonical: boolean) => boolean;

const allowAll: AuthzDecider = () => "allow";
/** Also what a provider decides while its Authz document is invalid and nothing valid precedes it. */
export const denyAll: AuthzDecider = () => "deny";

/**
 * A path an application might read differently from the glob: a `.` or `..`
 * segment (plain or percent-encoded, with or without path parameters, as
 * Tomcat reads `..;x` as `..`), an empty segment (`//`), an encoded slash or
 * backslash, or a backslash. Such a path matches no path glob, so
 * `/orders/../admin` or `/public/..;/admin` cannot pass as `/orders/**` or
 * `/public/**`; it gets the default.
 */
const NON_CANONICAL = /(?:^|\/)(?:\.|%2e){1,2}(?:(?:;|%3b)[^/]*)?(?:\/|$)|\/\/|%2f|%5c|\\/i;

/**
 * No document: every request is allowed. Otherwise a request matching any
 * rule is allowed and every other one gets `default` (deny when absent).
 */
export function compileAuthz(policy: Readonly<AuthzPolicy> | undefined): AuthzDecider {
  if (!policy) return allowAll;
  // Rules only ever allow, so with default allow there is nothing to decide.
  if ((policy.default ?? "deny") === "allow") return allowAll;
  const rules = (policy.rules ?? []).map(compileRule);
  if (rules.length === 0) return denyAll;
  return (caller, method, path) => {
    const canonical = !NON_CANONICAL.test(path);
    for (const rule of rules) if (rule(caller, method, path, canonical)) return "allow";
    return "deny";
  };
}

function compileRule(rule: Readonly<AuthzRule>): RuleMatcher {
  const from = compileCallers(rule.from);
  const methods = rule.methods && !rule.methods.includes("*") ? new Set<string>(rule.methods) : undefined;
  const paths = rule.paths?.map((p) => compileGlob(p, { segmented: true }));
  return (caller, method, path, canonical) => {
    if (!from(caller)) return false;
    if (methods && !methods.has(method)) return false;
    if (paths && !(canonical && paths.some((matches) => matches(path)))) return false;
    return true;
  };
}

/** Exact names in a set, globs as compiled predicates. */
function compileCallers(patterns: readonly string[]): GlobMatcher {
  const names = new Set(patterns.filter((p) => !p.includes("*")));
  const globs = patterns.filter((p) => p.includes("*")).map((p) => compileGlob(p, { segmented: false }));
  if (globs.length === 0) return (caller) => names.has(caller);
  return (caller) => names.has(caller) || globs.some((matches) => matches(caller));
}
