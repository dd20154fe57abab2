import assert from "node:assert/strict";
import { lstat, mkdtemp, readdir, rm, stat, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { writeCreds } from "../local/creds.ts";
import { compileAuthz } from "../sidecar/policy/authz.ts";
import {
  HEADER_REGEX_MAX_INPUT,
  HEADER_REGEX_MAX_PATTERN,
  compileHeaderRegex,
  validatePolicy,
  type PolicyProblem,
  type RoutePolicy,
} from "../schemas/index.ts";
import { compileRoute } from "../sidecar/policy/routing.ts";
import { FairDispatcher } from "../control/dispatch.ts";
import { dispatchKey } from "../control/service.ts";
import { parseSidecarConfig } from "../schemas/index.ts";

/** The problems validating a Route with `headersRegex` gives. */
function regexProblems(headersRegex: Record<string, string>): PolicyProblem[] {
  const r = validatePolicy({ kind: "Route", service: "pricing", rules: [{ match: { headersRegex }, backends: [{ version: "v1" }] }] });
  return r.ok ? [] : r.problems;
}

describe("header regexes are RE2: linear time, bounded pattern and input", () => {
  test("syntax RE2 lacks (backreferences, lookaround) is rejected with its JSON path", () => {
    for (const source of ["(a)\\1", "(?<=a)b", "a(?!b)", "(a"]) {
      const problems = regexProblems({ "x-k": source });
      assert.equal(problems.length, 1, source);
      assert.equal(problems[0]!.path, "rules[0].match.headersRegex.x-k");
      assert.match(problems[0]!.message, /must be a valid regular expression in RE2 syntax/);
    }
  });

  test("a pattern over the length cap is rejected, one at the cap is accepted", () => {
    const long = regexProblems({ "x-k": "a".repeat(HEADER_REGEX_MAX_PATTERN + 1) });
    assert.equal(long.length, 1);
    assert.equal(long[0]!.path, "rules[0].match.headersRegex.x-k");
    assert.match(long[0]!.message, /256 characters/);
    assert.deepEqual(regexProblems({ "x-k": "a".repeat(HEADER_REGEX_MAX_PATTERN) }), []);
  });

  test("the classic catastrophic pattern is harmless: it answers at once on an input that would backtrack forever", () => {
    const evil = compileHeaderRegex("^(a+)+$");
    // With RegExp this call would not return in the lifetime of the test run.
    assert.equal(evil(`${"a".repeat(5_000)}!`), false);
    assert.equal(evil("aaaa"), true);
  });

  test("a header value longer than the input cap never matches", () => {
    const any = compileHeaderRegex("^a+$");
    assert.equal(any("a".repeat(HEADER_REGEX_MAX_INPUT)), true);
    assert.equal(any("a".repeat(HEADER_REGEX_MAX_INPUT + 1)), false);
  });

  test("routing uses them: unanchored unless anchored, as before", () => {
    const r = validatePolicy({ kind: "Route", service: "pricing", rules: [{ match: { headersRegex: { "user-agent": "^tester/\\d+$", "x-t": "canary" } }, backends: [{ version: "v2" }] }] });
    assert.ok(r.ok);
    const route = compileRoute(r.value as RoutePolicy);
    const headers: Record<string, string> = { "user-agent": "tester/12", "x-t": "is-canary-yes" };
    assert.ok(route.select("GET", "/", (n) => headers[n]));
    headers["user-agent"] = "tester/12x";
    assert.equal(route.select("GET", "/", (n) => headers[n]), undefined);
  });
});

describe("sidecar limits have sane defaults", () => {
  test("maxConcurrent 1000 (0 = unlimited still allowed), maxDeadlineMs 5 min, header and body timeouts 10 s", () => {
    const c = parseSidecarConfig({ service: "a", nats: ["nats://x:4222"] });
    assert.deepEqual([c.maxConcurrent, c.maxDeadlineMs, c.headersTimeoutMs, c.bodyIdleTimeoutMs], [1000, 300_000, 10_000, 10_000]);
    assert.equal(parseSidecarConfig({ service: "a", nats: ["nats://x:4222"], maxConcurrent: 0 }).maxConcurrent, 0);
  });
});

describe("control's fair dispatcher", () => {
  /** A dispatcher whose handlers finish only when the test says so. */
  function held(limits: ConstructorParameters<typeof FairDispatcher>[1]) {
    const started: string[] = [];
    const finish: Array<() => void> = [];
    const d = new FairDispatcher<string>((item) => {
      started.push(item);
      return new Promise<void>((resolve) => finish.push(resolve));
    }, limits);
    const next = async () => {
      finish.shift()!();
      await new Promise((r) => setImmediate(r));
    };
    return { d, started, next };
  }

  test("round-robin across keys: a key with a long queue does not starve one that arrives later", async () => {
    const { d, started, next } = held({ maxConcurrent: 1, maxInFlightPerKey: 1, maxQueuedPerKey: 100 });
    for (let i = 0; i < 10; i++) assert.ok(d.submit("flood", `f${i}`));
    assert.ok(d.submit("victim", "v0"));
    assert.ok(d.submit("victim", "v1"));
    for (let i = 0; i < 4; i++) await next();
    assert.deepEqual(started, ["f0", "v0", "f1", "v1", "f2"]);
  });

  test("bounded: concurrency in all and per key, queue per key and number of keys", async () => {
    const { d, started } = held({ maxConcurrent: 3, maxInFlightPerKey: 2, maxQueuedPerKey: 2, maxKeys: 2 });
    assert.ok(d.submit("a", "a0") && d.submit("a", "a1") && d.submit("a", "a2") && d.submit("a", "a3"));
    assert.equal(d.submit("a", "a4"), false, "a's queue is full");
    assert.deepEqual(started, ["a0", "a1"], "two at most for one key");
    assert.ok(d.submit("b", "b0"));
    assert.deepEqual(started, ["a0", "a1", "b0"]);
    assert.ok(d.submit("b", "b1"));
    assert.equal(d.running, 3, "three at most in all");
    assert.equal(d.submit("c", "c0"), false, "no room for a third waiting key");
  });

  test("quota leases queue per service; other verbs per verb; unknown verbs share one queue", () => {
    assert.equal(dispatchKey("mesh.ctl.v1.quota.orders"), "mesh.ctl.v1.quota.orders");
    assert.equal(dispatchKey("mesh.ctl.v1.apply"), "apply");
    assert.equal(dispatchKey("mesh.ctl.v1.nope"), dispatchKey("mesh.ctl.v1.nope2"));
  });
});

describe("mesh creds writes through unpredictable, exclusive temp files", () => {
  test("a symlink planted at the old predictable temp name is not followed; files end 0600 (seeds) and 0644 (auth.conf)", async (t) => {
    const base = await mkdtemp(join(tmpdir(), "natsmesh-creds-"));
    t.after(() => rm(base, { recursive: true, force: true }));
    const dir = join(base, "creds");
    const stolen = join(base, "stolen");
    await writeCreds(dir, []); // the directory exists, as on a second run
    for (const name of ["svc.nk", "auth.conf"]) await symlink(stolen, join(dir, `${name}.${process.pid}.tmp`));
    await writeCreds(dir, ["svc"]);
    await assert.rejects(lstat(stolen), { code: "ENOENT" }, "nothing was written through the planted link");
    assert.equal((await stat(join(dir, "svc.nk"))).mode & 0o777, 0o600);
    assert.equal((await stat(join(dir, "auth.conf"))).mode & 0o777, 0o644);
    const left = (await readdir(dir)).filter((n) => n.endsWith(".tmp") && !n.includes(String(process.pid)));
    assert.deepEqual(left, [], "no temp file left behind");
  });
});

describe("authz: path parameters on dot segments are not canonical", () => {
  const decide = compileAuthz({ kind: "Authz", service: "shop", default: "deny", rules: [{ from: ["frontend"], paths: ["/public/**"] }] } as never);
  test("/public/..;/admin and its encodings are denied; ordinary paths with ';' are not affected", () => {
    for (const path of ["/public/..;/admin", "/public/..;x=1/admin", "/public/.;/admin", "/public/%2e%2e;/admin", "/public/..%3b/admin", "/public/..;"]) {
      assert.equal(decide("frontend", "GET", path), "deny", path);
    }
    for (const path of ["/public/a;v=1", "/public/x..;/y", "/public/ok"]) assert.equal(decide("frontend", "GET", path), "allow", path);
  });
});
