import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ANY_VERSION, validatePolicy, type RoutePolicy } from "../schemas/index.ts";
import { planCall, type PlannedCall } from "../sidecar/outbound/call-plan.ts";
import { compileRoute } from "../sidecar/policy/routing.ts";

const DEFAULT_TIMEOUT_MS = 30_000;
const START = 1_000_000;

/** A Route as the sidecar holds it: validated (defaults applied) and compiled. */
function route(doc: Record<string, unknown>) {
  const r = validatePolicy({ kind: "Route", service: "pricing", ...doc });
  assert.ok(r.ok, JSON.stringify(!r.ok && r.problems));
  return compileRoute(r.value as RoutePolicy);
}

function call(over: Partial<PlannedCall> = {}): PlannedCall {
  return { method: "GET", path: "/", header: () => undefined, startedAt: START, askedTimeoutMs: undefined, ...over };
}

/** Random numbers from a fixed list; a draw past its end fails the test. */
function sequence(values: readonly number[]) {
  let i = 0;
  const random = () => {
    assert.ok(i < values.length, `unexpected random draw #${i + 1}`);
    return values[i++]!;
  };
  return { random, drawn: () => i };
}

const noDraws = () => assert.fail("no random draw expected");
const at = (ms: number) => () => ms;
/** 0, 0.01, ..., 0.99: one draw each covers [0, 1) evenly, so exactly p% of them fall under p. */
const GRID = Array.from({ length: 100 }, (_, i) => i / 100);

describe("deadline", () => {
  test("the route's timeout, else the sidecar's; the application may only shorten it", () => {
    const plan = (r: ReturnType<typeof route> | undefined, askedTimeoutMs?: number) => planCall(r, call({ askedTimeoutMs }), at(START), noDraws, DEFAULT_TIMEOUT_MS).deadlineAt - START;
    assert.equal(plan(undefined), DEFAULT_TIMEOUT_MS);
    assert.equal(plan(route({})), DEFAULT_TIMEOUT_MS);
    assert.equal(plan(route({ timeoutMs: 800 })), 800);
    assert.equal(plan(route({ timeoutMs: 800 }), 300), 300);
    assert.equal(plan(route({ timeoutMs: 800 }), 5_000), 800);
    assert.equal(plan(undefined, 50), 50);
  });
});

describe("rule and version", () => {
  const r = route({ rules: [{ match: { pathPrefix: "/beta" }, backends: [{ version: "v1", weight: 9 }, { version: "v2", weight: 1 }] }, { match: { headers: { "x-canary": "yes" } }, backends: [{ version: "v3" }] }] });

  test("the rule is matched on the path without its query; no rule: any version, without a draw", () => {
    const plan = planCall(r, call({ path: "/beta/x?y=1" }), at(START), noDraws, DEFAULT_TIMEOUT_MS);
    assert.equal(plan.pathOnly, "/beta/x");
    assert.equal(plan.rule, r.rules[0]);
    const none = planCall(r, call({ path: "/other?beta" }), at(START), noDraws, DEFAULT_TIMEOUT_MS);
    assert.equal(none.rule, undefined);
    assert.equal(none.pickVersion(), ANY_VERSION);
    assert.equal(planCall(undefined, call(), at(START), noDraws, DEFAULT_TIMEOUT_MS).pickVersion(), ANY_VERSION);
    const canary = planCall(r, call({ header: (n) => (n === "x-canary" ? "yes" : undefined) }), at(START), noDraws, DEFAULT_TIMEOUT_MS);
    assert.equal(canary.rule, r.rules[1]);
  });

  test("each attempt draws its version anew, by weight", () => {
    const { random, drawn } = sequence(GRID);
    const plan = planCall(r, call({ path: "/beta" }), at(START), random, DEFAULT_TIMEOUT_MS);
    assert.equal(drawn(), 0, "planning draws nothing for versions");
    const picks = GRID.map(() => plan.pickVersion());
    assert.equal(drawn(), 100);
    assert.equal(picks.filter((v) => v === "v1").length, 90);
    assert.equal(picks.filter((v) => v === "v2").length, 10);
  });
});

describe("faults and mirror", () => {
  test("delay: exactly `percent` of uniform draws, cut to what is left of the deadline", () => {
    const r = route({ timeoutMs: 1_000, rules: [{ fault: { delay: { ms: 300, percent: 30 } } }] });
    const { random } = sequence(GRID);
    const delays = GRID.map(() => planCall(r, call(), at(START), random, DEFAULT_TIMEOUT_MS).delayMs);
    assert.equal(delays.filter((ms) => ms === 300).length, 30);
    assert.equal(delays.filter((ms) => ms === 0).length, 70);
    assert.equal(planCall(r, call(), at(START + 900), () => 0, DEFAULT_TIMEOUT_MS).delayMs, 100, "100 ms left");
    assert.equal(planCall(r, call(), at(START + 5_000), () => 0, DEFAULT_TIMEOUT_MS).delayMs, 0, "deadline passed");
  });

  test("abort: exactly `percent` of uniform draws, with the rule's status", () => {
    const r = route({ rules: [{ fault: { abort: { status: 418, percent: 25 } } }] });
    const { random } = sequence(GRID);
    const aborts = GRID.map(() => planCall(r, call(), at(START), random, DEFAULT_TIMEOUT_MS).abortStatus);
    assert.equal(aborts.filter((s) => s === 418).length, 25);
    assert.equal(aborts.filter((s) => s === undefined).length, 75);
  });

  test("mirror: exactly `percent` of uniform draws, to the rule's version", () => {
    const r = route({ rules: [{ backends: [{ version: "v1" }], mirror: { version: "v2", percent: 10 } }] });
    const { random } = sequence(GRID);
    const mirrors = GRID.map(() => planCall(r, call(), at(START), random, DEFAULT_TIMEOUT_MS).mirrorVersion);
    assert.equal(mirrors.filter((v) => v === "v2").length, 10);
    assert.equal(mirrors.filter((v) => v === undefined).length, 90);
  });

  test("absent percent means 100; 0 means never", () => {
    const always = route({ rules: [{ fault: { delay: { ms: 5 }, abort: { status: 503 } } }] });
    const plan = planCall(always, call(), at(START), () => 0.999999, DEFAULT_TIMEOUT_MS);
    assert.deepEqual([plan.delayMs, plan.abortStatus], [5, 503]);
    const never = route({ rules: [{ backends: [{ version: "v1" }], fault: { delay: { ms: 5, percent: 0 } }, mirror: { version: "v2", percent: 0 } }] });
    const none = planCall(never, call(), at(START), () => 0, DEFAULT_TIMEOUT_MS);
    assert.deepEqual([none.delayMs, none.abortStatus, none.mirrorVersion], [0, undefined, undefined]);
  });

  test("draws come in order delay, abort, mirror; an aborted call mirrors nothing and draws no mirror", () => {
    const r = route({ rules: [{ backends: [{ version: "v1" }], fault: { delay: { ms: 40, percent: 50 }, abort: { status: 500, percent: 50 } }, mirror: { version: "v2", percent: 50 } }] });
    const plan = (values: number[]) => {
      const s = sequence(values);
      const p = planCall(r, call(), at(START), s.random, DEFAULT_TIMEOUT_MS);
      return { delay: p.delayMs, abort: p.abortStatus, mirror: p.mirrorVersion, drawn: s.drawn() };
    };
    assert.deepEqual(plan([0.1, 0.9, 0.1]), { delay: 40, abort: undefined, mirror: "v2", drawn: 3 });
    assert.deepEqual(plan([0.9, 0.9, 0.9]), { delay: 0, abort: undefined, mirror: undefined, drawn: 3 });
    assert.deepEqual(plan([0.9, 0.1]), { delay: 0, abort: 500, mirror: undefined, drawn: 2 });
  });

  test("faults and mirror apply only to the matched rule", () => {
    const r = route({ rules: [{ match: { path: "/slow" }, fault: { delay: { ms: 10 } } }, { backends: [{ version: "v1" }] }] });
    assert.equal(planCall(r, call({ path: "/slow" }), at(START), () => 0, DEFAULT_TIMEOUT_MS).delayMs, 10);
    const other = planCall(r, call({ path: "/fast" }), at(START), noDraws, DEFAULT_TIMEOUT_MS);
    assert.deepEqual([other.delayMs, other.abortStatus, other.mirrorVersion], [0, undefined, undefined]);
  });
});
