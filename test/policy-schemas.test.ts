import assert from "node:assert/strict";
import { readFile, readdir } from "node:fs/promises";
import { describe, test } from "node:test";
import { OUTPUTS, generateTypes, outputPath } from "../scripts/gen-types.ts";
import {
  INSTANCE_NAME,
  PATTERN_MEANINGS,
  POLICY_BUCKETS,
  SCHEMAS,
  POLICY_KINDS,
  REGISTRY_BUCKET,
  SERVICE_NAME,
  VERSION_NAME,
  compileGlob,
  formatProblem,
  kindFromNoun,
  parsePolicyText,
  validatePolicy,
  type PolicyProblem,
  type RoutePolicy,
} from "../schemas/index.ts";

/** The three examples of DESIGN §5, verbatim. */
const EXAMPLES = `kind: Route
service: pricing
timeoutMs: 1500
retries: { attempts: 2, perTryTimeoutMs: 500, on: [unavailable, timeout, 5xx], budgetPercent: 20 }
circuitBreaker: { consecutiveFailures: 5, openMs: 5000 }
rules:                                   # first match wins; no match = all requests
  - match: { headers: { x-canary: "true" } }
    backends: [ { version: v2 } ]
  - match: { pathPrefix: /admin, methods: [POST] }
    fault: { abort: { status: 503, percent: 100 } }
  - backends: [ { version: v1, weight: 90 }, { version: v2, weight: 10 } ]
    mirror: { version: v3, percent: 10 }
---
kind: Authz
service: orders
default: deny                            # no Authz document = every caller allowed
rules:
  - { from: [frontend, "admin-*"], methods: [GET, POST], paths: ["/orders", "/orders/*"] }
---
kind: Quota
service: orders
limits:                                  # whole mesh, not per instance
  - { caller: frontend, requests: 100, per: minute }
  - { caller: "*", requests: 10, per: second }   # each other caller on its own
onUnavailable: allow                     # when quota accounting cannot be reached
`;

function parseOk(text: string, opts?: Parameters<typeof parsePolicyText>[1]) {
  const result = parsePolicyText(text, opts);
  assert.ok(result.ok, result.ok ? "" : result.problems.map(formatProblem).join("\n"));
  return result;
}

function problemsOf(text: string): PolicyProblem[] {
  const result = parsePolicyText(text);
  assert.equal(result.ok, false, `accepted:\n${text}`);
  return result.ok ? [] : result.problems;
}

function assertProblem(problems: PolicyProblem[], path: string, fragment: string, document?: number): void {
  const found = problems.some(
    (p) => p.path === path && p.message.includes(fragment) && (document === undefined || p.document === document),
  );
  assert.ok(found, `no problem at ${path} with "${fragment}" in:\n${problems.map(formatProblem).join("\n")}`);
}

const route = (extra: string) => `kind: Route\nservice: pricing\n${extra}`;
const authz = (extra: string) => `kind: Authz\nservice: orders\n${extra}`;
const quota = (extra: string) => `kind: Quota\nservice: orders\n${extra}`;

describe("policy documents: valid", () => {
  test("the DESIGN §5 examples pass, with defaults applied", () => {
    const { documents, warnings } = parseOk(EXAMPLES);
    assert.deepEqual(documents.map((d) => d.kind), ["Route", "Authz", "Quota"]);
    assert.deepEqual(warnings, []);
    const [r, a, q] = documents;
    assert.ok(r?.kind === "Route" && a?.kind === "Authz" && q?.kind === "Quota");
    assert.equal(r.loadBalancer, "queue");
    assert.equal(r.retries?.retryNonIdempotent, false);
    assert.equal(r.rules[0]?.backends?.[0]?.weight, 1);
    assert.equal(r.rules[1]?.fault?.abort?.status, 503);
    assert.equal(a.default, "deny");
    assert.equal(q.onUnavailable, "allow");
  });

  test("a minimal document gets every default", () => {
    const result = validatePolicy({ kind: "Route", service: "pricing", retries: { attempts: 1 }, circuitBreaker: {} });
    assert.ok(result.ok);
    assert.deepEqual(result.value, {
      kind: "Route",
      service: "pricing",
      loadBalancer: "queue",
      localityFailover: true,
      retries: { attempts: 1, on: ["unavailable", "app_unreachable"], budgetPercent: 20, retryNonIdempotent: false },
      circuitBreaker: { consecutiveFailures: 5, openMs: 5000 },
      rules: [],
    });
    const q = validatePolicy({ kind: "Quota", service: "orders", limits: [{ caller: "*", requests: 5, per: "hour" }] });
    assert.ok(q.ok && q.value.kind === "Quota" && q.value.onUnavailable === "allow");
  });

  test("validated documents are deep-frozen copies", () => {
    const input = { kind: "Route", service: "pricing", rules: [{ backends: [{ version: "v1" }] }] };
    const result = validatePolicy(input);
    assert.ok(result.ok && result.value.kind === "Route");
    const value: Readonly<RoutePolicy> = result.value;
    assert.ok(Object.isFrozen(value) && Object.isFrozen(value.rules[0]?.backends?.[0]));
    assert.throws(() => {
      (value.rules[0]!.backends![0] as { weight: number }).weight = 5;
    }, TypeError);
    assert.deepEqual(input.rules[0]?.backends[0], { version: "v1" }, "the input is left as it was");
    const parsed = parseOk(EXAMPLES);
    assert.ok(Object.isFrozen(parsed.documents[2]) && Object.isFrozen(parsed.documents.at(2)));
  });

  test("JSON files: one object or an array of objects", () => {
    const one = parseOk(`{"kind": "Authz", "service": "orders", "rules": [{"from": ["*"]}]}`);
    assert.equal(one.documents.length, 1);
    const many = parseOk(`[{"kind": "Authz", "service": "orders"}, {"kind": "Authz", "service": "billing"}]`);
    assert.deepEqual(many.documents.map((d) => d.service), ["orders", "billing"]);
  });

  test("empty YAML documents between separators are skipped", () => {
    const { documents } = parseOk(`---\n${authz("")}---\n---\n${quota("limits: [{caller: a, requests: 1, per: day}]")}\n---\n`);
    assert.equal(documents.length, 2);
  });

  test("warnings for versions no instance has, only when versions are known", () => {
    const knownVersions = (service: string) => (service === "pricing" ? new Set(["v1", "v2"]) : undefined);
    const { warnings } = parseOk(EXAMPLES, { knownVersions });
    assert.equal(warnings.length, 1);
    assertProblem(warnings, "rules[2].mirror.version", `no registered instance of "pricing" has version "v3"`, 0);
    const none = validatePolicy({ kind: "Route", service: "other", rules: [{ backends: [{ version: "v9" }] }] }, { knownVersions });
    assert.ok(none.ok && none.warnings.length === 0);
    const backend = validatePolicy({ kind: "Route", service: "pricing", rules: [{ backends: [{ version: "v9" }] }] }, { knownVersions });
    assert.ok(backend.ok);
    assertProblem(backend.warnings, "rules[0].backends[0].version", `version "v9"`);
  });

  test("warnings for rules that can never apply", () => {
    const a = parseOk(authz("default: allow\nrules: [{from: [x]}]"));
    assertProblem(a.warnings, "rules", "no effect while default is allow");
    const q = parseOk(quota(`limits: [{caller: "*", requests: 1, per: day}, {caller: frontend, requests: 5, per: day}]`));
    assertProblem(q.warnings, "limits[1].caller", `earlier caller "*" already matches "frontend"`);
    const fine = parseOk(quota(`limits: [{caller: a, requests: 1, per: day}, {caller: a, requests: 9, per: hour}]`));
    assert.deepEqual(fine.warnings, [], "entries with the same pattern all apply");
  });
});

/** [name, file text, path, message fragment, document index] */
const INVALID: Array<[string, string, string, string, number?]> = [
  ["negative weight", route("rules: [{backends: [{version: v1, weight: -10}]}]"), "rules[0].backends[0].weight", "must be >= 0, got -10"],
  ["unknown field", route("rules: [{backends: [{weigth: 3}]}]"), "rules[0].backends[0].weigth", "is not a known field"],
  ["unknown top-level field", route("timeout: 5"), "timeout", "is not a known field"],
  ["bad service name", "kind: Route\nservice: Pricing_1\n", "service", `must be a service name`],
  ["missing service", "kind: Quota\nlimits: [{caller: a, requests: 1, per: day}]\n", "service", "is required"],
  ["unknown kind", "kind: Routes\nservice: pricing\n", "kind", `unknown kind "Routes" (expected Route, Authz or Quota)`],
  ["missing kind", "service: pricing\n", "kind", "is required"],
  ["bad method", route("rules: [{match: {methods: [GETT]}, backends: [{}]}]"), "rules[0].match.methods[0]", `got "GETT"`],
  ["abort status 700", route("rules: [{fault: {abort: {status: 700}}}]"), "rules[0].fault.abort.status", "must be <= 599, got 700"],
  ["percent 101", route("rules: [{mirror: {version: v2, percent: 101}}]"), "rules[0].mirror.percent", "must be <= 100, got 101"],
  ["empty backends", route("rules: [{backends: []}]"), "rules[0].backends", "must have at least 1 item"],
  ["weights all zero", route("rules: [{backends: [{weight: 0}, {version: v2, weight: 0}]}]"), "rules[0].backends", "weights must add up to more than 0, got [0,0]"],
  ["rule without action", route("rules: [{match: {path: /x}}]"), "rules[0]", "must have backends, fault or mirror"],
  ["empty fault", route("rules: [{fault: {}}]"), "rules[0].fault", "must have delay, abort or both"],
  ["uppercase header name", route(`rules: [{match: {headers: {X-Canary: "1"}}, backends: [{}]}]`), "rules[0].match.headers.X-Canary", "lowercase HTTP header name"],
  ["header value not a string", route(`rules: [{match: {headers: {x-canary: true}}, backends: [{}]}]`), "rules[0].match.headers.x-canary", "must be string, got true"],
  ["bad regex", route(`rules: [{match: {headersRegex: {x-user: "(a"}}, backends: [{}]}]`), "rules[0].match.headersRegex.x-user", "must be a valid regular expression"],
  ["path without /", route("rules: [{match: {pathPrefix: admin}, backends: [{}]}]"), "rules[0].match.pathPrefix", `must start with /, got "admin"`],
  ["path and pathPrefix", route("rules: [{match: {path: /a, pathPrefix: /b}, backends: [{}]}]"), "rules[0].match", "not both"],
  ["perTryTimeoutMs > timeoutMs", route("timeoutMs: 100\nretries: {attempts: 1, perTryTimeoutMs: 500}"), "retries.perTryTimeoutMs", "must not exceed timeoutMs (100), got 500"],
  ["attempts 11", route("retries: {attempts: 11}"), "retries.attempts", "must be <= 10, got 11"],
  ["retry on unknown outcome", route("retries: {attempts: 1, on: [boom]}"), "retries.on[0]", `got "boom"`],
  ["retry outcome twice", route("retries: {attempts: 1, on: [timeout, timeout]}"), "retries.on", `must not list "timeout" twice`],
  ["fractional timeout", route("timeoutMs: 1.5"), "timeoutMs", "must be integer, got 1.5"],
  ["load balancer", route("loadBalancer: round-robin"), "loadBalancer", "must be one of queue, p2c-ewma"],
  ["version _ is reserved", route("rules: [{backends: [{version: _}]}]"), "rules[0].backends[0].version", "reserved"],
  ["bad version", route("rules: [{mirror: {version: v1.2}}]"), "rules[0].mirror.version", `must be a version name`],
  ["authz default maybe", authz("default: maybe"), "default", `must be one of allow, deny, got "maybe"`],
  ["authz empty from", authz("rules: [{from: []}]"), "rules[0].from", "must have at least 1 item"],
  ["bad caller glob", authz(`rules: [{from: ["Admin-*"]}]`), "rules[0].from[0]", `got "Admin-*"`],
  ["** in caller glob", authz(`rules: [{from: ["a**"]}]`), "rules[0].from[0]", "no meaning in a caller glob"],
  ["bad path glob", authz(`rules: [{from: [a], paths: ["/orders//x"]}]`), "rules[0].paths[0]", "empty segment"],
  ["** inside a segment", authz(`rules: [{from: [a], paths: ["/orders**"]}]`), "rules[0].paths[0]", "'**' must be a whole segment"],
  ["authz method", authz(`rules: [{from: [a], methods: [get]}]`), "rules[0].methods[0]", `got "get"`],
  ["quota per week", quota("limits: [{caller: a, requests: 1, per: week}]"), "limits[0].per", `got "week"`],
  ["quota zero requests", quota("limits: [{caller: a, requests: 0, per: day}]"), "limits[0].requests", "must be >= 1, got 0"],
  ["quota without limits", quota("onUnavailable: allow"), "limits", "is required"],
  ["quota onUnavailable", quota("limits: [{caller: a, requests: 1, per: day}]\nonUnavailable: retry"), "onUnavailable", `got "retry"`],
  ["malformed YAML", "kind: Route\nservice: [pricing\n", "(root)", "malformed YAML at line", 0],
  ["malformed JSON", `{"kind": "Route",\n "service": }`, "(root)", "malformed JSON at line 2, column 13: unexpected token '}'", -1],
  ["JSON trailing comma", `{"kind": "Route", "service": "a",}`, "(root)", "malformed JSON at line 1, column 34", -1],
  ["empty file", "", "(root)", "no policy document", -1],
  ["only comments", "# routes\n\n   # none yet\n", "(root)", "no policy document", -1],
  ["empty JSON array", "[]", "(root)", "no policy document", -1],
  ["YAML duplicate key", "kind: Route\nservice: a\nservice: b\n", "(root)", `duplicate key "service" at line 3, column 1`, 0],
  ["JSON duplicate key", `{"kind": "Route", "service": "a", "service": "b"}`, "(root)", `duplicate key "service" at line 1, column 35`, -1],
  ["duplicate (kind, service)", `${authz("")}---\n${route("")}---\n${authz("default: allow")}`, "service", `another Authz for "orders" is document 1`, 2],
  ["non-object document", `${authz("")}---\n- a\n- b\n`, "(root)", `must be an object, got ["a","b"]`, 1],
  ["scalar document", "just a string\n", "(root)", `must be an object, got "just a string"`, 0],
  ["non-object in JSON array", `[{"kind": "Authz", "service": "a"}, 7]`, "(root)", "must be an object, got 7", 1],
];

describe("policy documents: invalid", () => {
  assert.ok(INVALID.length >= 20);
  for (const [name, text, path, fragment, document] of INVALID) {
    test(name, () => assertProblem(problemsOf(text), path, fragment, document));
  }

  test("every problem of every document is reported", () => {
    const text = `${route("timeoutMs: 0\nrules: [{backends: [{weight: -1, colour: red}]}]")}\n---\n${quota("limits: [{caller: a, requests: 1, per: week}]")}`;
    const problems = problemsOf(text);
    assert.deepEqual(
      problems.map((p) => `${p.document} ${p.path}`),
      ["0 timeoutMs", "0 rules[0].backends[0].colour", "0 rules[0].backends[0].weight", "1 limits[0].per"],
    );
  });

  test("validatePolicy rejects non-JSON values", () => {
    const result = validatePolicy({ kind: "Authz", service: "a", rules: [{ from: [() => "x"] }] });
    assert.ok(!result.ok);
    assertProblem(result.problems, "(root)", "must be plain JSON data");
  });
});

describe("policy names", () => {
  test("formatProblem", () => {
    const p = { document: 1, path: "rules[1].backends[0].weight", message: "must be >= 0, got -10" };
    assert.equal(formatProblem(p), "document 2: rules[1].backends[0].weight: must be >= 0, got -10");
    assert.equal(formatProblem({ document: -1, path: "(root)", message: "the file holds no policy document" }), "the file holds no policy document");
    assert.equal(formatProblem({ document: 0, path: "(root)", message: "must be an object, got 5" }), "document 1: must be an object, got 5");
  });

  test("kinds, buckets and CLI nouns", () => {
    assert.deepEqual(POLICY_KINDS, ["Route", "Authz", "Quota"]);
    assert.deepEqual(POLICY_BUCKETS, { Route: "mesh_routes", Authz: "mesh_authz", Quota: "mesh_quotas" });
    assert.equal(REGISTRY_BUCKET, "mesh_registry");
    for (const noun of ["routes", "route", "Route", "ROUTES"]) assert.equal(kindFromNoun(noun), "Route");
    for (const noun of ["authz", "Authz"]) assert.equal(kindFromNoun(noun), "Authz");
    for (const noun of ["quotas", "quota", "Quota"]) assert.equal(kindFromNoun(noun), "Quota");
    for (const noun of ["services", "", "toString", "constructor"]) assert.equal(kindFromNoun(noun), undefined);
  });
});

describe("globs", () => {
  const caller = (pattern: string) => compileGlob(pattern, { segmented: false });
  const path = (pattern: string) => compileGlob(pattern, { segmented: true });

  test("caller globs", () => {
    assert.ok(caller("*")("anything"));
    assert.ok(caller("admin-*")("admin-ui") && caller("admin-*")("admin-"));
    assert.ok(!caller("admin-*")("xadmin-ui") && !caller("admin-*")("admin"));
    assert.ok(caller("*-api")("orders-api") && !caller("*-api")("orders-api.x"));
    assert.ok(caller("a*b*c")("a-x-b-y-c") && !caller("a*b*c")("a-x-c"));
    assert.ok(caller("frontend")("frontend") && !caller("frontend")("frontends"));
  });

  test("path globs", () => {
    assert.ok(path("/orders")("/orders") && !path("/orders")("/orders/1"));
    const one = path("/orders/*");
    assert.ok(one("/orders/1") && one("/orders/") && !one("/orders/1/items") && !one("/orders"));
    const deep = path("/orders/**");
    assert.ok(deep("/orders") && deep("/orders/1") && deep("/orders/1/items") && !deep("/ordersx"));
    const middle = path("/a/**/z");
    assert.ok(middle("/a/z") && middle("/a/b/z") && middle("/a/b/c/z") && !middle("/a/b/c"));
    const all = path("/**");
    assert.ok(all("/") && all("/x/y"));
    assert.ok(path("/v*.json")("/v1.json") && !path("/v*.json")("/v1xjson"), "regex characters are literal");
    assert.ok(path("/")("/") && !path("/")("/x"));
  });

  test("malformed globs are refused at compile time", () => {
    assert.throws(() => caller("Admin"), /invalid caller glob/);
    assert.throws(() => path("orders"), /must start with \//);
    assert.throws(() => path("/a/"), /empty segment/);
  });
});

describe("schemas", () => {
  const dir = new URL("../schemas/", import.meta.url);
  const schemaNames = async () => (await readdir(dir)).filter((f) => f.endsWith(".schema.json")).map((f) => f.replace(/\.schema\.json$/, "")).sort();
  const load = async (name: string) => JSON.parse(await readFile(new URL(`${name}.schema.json`, dir), "utf8")) as Schema;

  test("every generated type file is up to date with the schemas (npm run gen:types)", async () => {
    for (const output of OUTPUTS) assert.equal(await readFile(outputPath(output), "utf8"), await generateTypes(output), `${output.file} is stale`);
  });

  test("every schema is registered, and has types generated from it", async () => {
    const names = await schemaNames();
    assert.deepEqual(Object.keys(SCHEMAS).sort(), names, "schemas/documents.ts registers every schema file");
    assert.deepEqual(OUTPUTS.flatMap((o) => o.sources).sort(), names, "scripts/gen-types.ts generates types from every schema file");
  });

  test("every object is closed, every field says what it means, every pattern is explained, every string and array is bounded", async () => {
    const schemas = new Map<string, Schema>();
    for (const name of await schemaNames()) schemas.set(`${name}.schema.json`, await load(name));
    for (const [file, schema] of schemas) {
      assert.equal(schema.$id, `https://natsmesh.dev/schemas/${file}`);
      assert.ok(typeof schema.title === "string" && typeof schema.description === "string", `${file}: no title or description`);
      walk(schema, { root: schema, schemas, bounded: !POLICY_DOCUMENTS.has(file) }, file);
    }
  });

  test("name patterns agree with schemas/names.ts", async () => {
    const text = (await Promise.all((await schemaNames()).map((n) => readFile(new URL(`${n}.schema.json`, dir), "utf8")))).join("");
    for (const name of [SERVICE_NAME, VERSION_NAME, INSTANCE_NAME]) assert.ok(text.includes(JSON.stringify(name.source)), name.source);
  });
});

type Schema = Record<string, unknown>;

/**
 * Policy documents reach control inside an apply or validate request, whose
 * schema bounds how many there are (and NATS max_payload their size); their
 * own fields are not held to the bounds of documents that cross a process
 * boundary on their own.
 */
const POLICY_DOCUMENTS = new Set(["route.schema.json", "authz.schema.json", "quota.schema.json"]);

/** The schema a walk is in, every schema file by name (to follow `$ref`s into), and whether strings and arrays must be bounded. */
interface Where {
  root: Schema;
  schemas: ReadonlyMap<string, Schema>;
  bounded: boolean;
}

/** Strings without a pattern, enum or const, where the whole value is free text a peer chooses: each has a maxLength. */
function boundedString(node: Schema): boolean {
  return node.maxLength !== undefined || node.pattern !== undefined || node.enum !== undefined || node.const !== undefined;
}

function walk(node: Schema, at: Where, where: string): void {
  if (node.$ref) {
    const target = resolve(at, String(node.$ref));
    // Another file's schema is walked on its own.
    return String(node.$ref).startsWith("#") ? walk(target.node, at, where) : undefined;
  }
  if (node.type === "object" && node.properties) {
    assert.equal(node.additionalProperties, false, `${where}: open object`);
    for (const [name, prop] of Object.entries(node.properties as Record<string, Schema>)) {
      const target = prop.$ref ? resolve(at, String(prop.$ref)).node : prop;
      const description = prop.description ?? target.description;
      assert.ok(typeof description === "string" && description.length > 10, `${where}.${name}: no description`);
      walk(prop, at, `${where}.${name}`);
    }
  }
  const types = Array.isArray(node.type) ? node.type : [node.type];
  if (at.bounded && types.includes("string")) assert.ok(boundedString(node), `${where}: a string without maxLength`);
  if (at.bounded && types.includes("array") && !Array.isArray(node.items)) assert.ok(node.maxItems !== undefined, `${where}: an array without maxItems`);
  if (typeof node.pattern === "string") assert.ok(PATTERN_MEANINGS[node.pattern], `${where}: unexplained pattern ${node.pattern}`);
  for (const key of ["items", "additionalProperties", "propertyNames"]) {
    const child = node[key];
    if (Array.isArray(child)) child.forEach((c, i) => walk(c as Schema, at, `${where}.${key}[${i}]`));
    else if (child && typeof child === "object") walk(child as Schema, at, `${where}.${key}`);
  }
  for (const [name, def] of Object.entries((node.$defs ?? {}) as Record<string, Schema>)) walk(def, at, `${where}.$defs.${name}`);
}

/** `#/a/b` in the current schema, or `file.schema.json#/a/b` in another. */
function resolve(at: Where, ref: string): { node: Schema } {
  const [file, pointer = ""] = ref.split("#");
  const root = file ? at.schemas.get(file) : at.root;
  assert.ok(root, `$ref to unknown schema ${ref}`);
  const node = pointer
    .replace(/^\//, "")
    .split("/")
    .filter(Boolean)
    .reduce<Schema>((n, key) => n[key] as Schema, root);
  assert.ok(node, `$ref ${ref} points nowhere`);
  return { node };
}
