/**
 * The two kinds of glob in policy documents, checked once at validation and
 * compiled once into a predicate; matching builds nothing per call.
 *
 * - caller globs (`segmented: false`) name services: `*` matches any run of
 *   service-name characters, so `admin-*` matches `admin-ui`, `*` matches all.
 * - path globs (`segmented: true`) name request paths (without query): they
 *   start with `/`; `*` matches within one segment (`/orders/*` matches
 *   `/orders/1`, not `/orders/1/items`); a segment that is exactly `**` matches
 *   any number of segments, none included (`/orders/**` matches `/orders`,
 *   `/orders/1` and `/orders/1/items`; `/**` matches every path).
 */
export interface GlobOptions {
  /** true: a path glob, `/`-separated; false: a caller glob */
  segmented: boolean;
}

export type GlobMatcher = (s: string) => boolean;

const CALLER_GLOB = /^[a-z0-9*-]+$/;
/** RFC 3986 path characters, plus `*` */
const PATH_SEGMENT = /^[A-Za-z0-9._~%!$&'()+,;=:@*-]+$/;
const NAME_RUN = "[a-z0-9-]*";
const SEGMENT_RUN = "[^/]*";

/** Why `pattern` is not a well-formed glob, or undefined when it is. */
export function globProblem(pattern: string, opts: GlobOptions): string | undefined {
  return opts.segmented ? pathGlobProblem(pattern) : callerGlobProblem(pattern);
}

function callerGlobProblem(pattern: string): string | undefined {
  if (!CALLER_GLOB.test(pattern)) {
    return `must be a service name or a glob of lowercase letters, digits, '-' and '*', got ${JSON.stringify(pattern)}`;
  }
  if (pattern.includes("**")) return `'**' has no meaning in a caller glob, use '*', got ${JSON.stringify(pattern)}`;
  return undefined;
}

function pathGlobProblem(pattern: string): string | undefined {
  const got = `got ${JSON.stringify(pattern)}`;
  if (!pattern.startsWith("/")) return `must start with /, ${got}`;
  if (pattern === "/") return undefined;
  for (const segment of pattern.slice(1).split("/")) {
    if (segment === "") return `must not have an empty segment ('//' or a trailing '/'), ${got}`;
    if (!PATH_SEGMENT.test(segment)) return `must use only URL path characters and '*', ${got}`;
    if (segment !== "**" && segment.includes("**")) return `'**' must be a whole segment, ${got}`;
  }
  return undefined;
}

/** Compiles a well-formed glob into a predicate; throws on a malformed one. */
export function compileGlob(pattern: string, opts: GlobOptions): GlobMatcher {
  const problem = globProblem(pattern, opts);
  if (problem) throw new Error(`invalid ${opts.segmented ? "path" : "caller"} glob: ${problem}`);
  if (!pattern.includes("*")) return (s) => s === pattern;
  if (pattern === "*" && !opts.segmented) return () => true;
  const re = new RegExp(`^${opts.segmented ? pathSource(pattern) : wildcards(pattern, NAME_RUN)}$`);
  return (s) => re.test(s);
}

function pathSource(pattern: string): string {
  return pattern
    .slice(1)
    .split("/")
    .map((segment) => (segment === "**" ? `(?:/${SEGMENT_RUN})*` : `/${wildcards(segment, SEGMENT_RUN)}`))
    .join("");
}

function wildcards(text: string, run: string): string {
  return text.split("*").map(escapeRegExp).join(run);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
