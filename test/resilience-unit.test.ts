import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { P2cEwmaBalancer } from "../sidecar/resilience/balancer.ts";
import { Wire, classify } from "../schemas/index.ts";
import { BREAKER_STATE_VALUE, CircuitBreaker } from "../sidecar/resilience/circuit-breaker.ts";
import { IDEMPOTENT_METHODS, RetryBudget, backoffMs, mayRetry, type MayRetryArgs } from "../sidecar/resilience/retry.ts";

/** A clock tests move by hand. */
function fakeClock(start = 0) {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms), set: (ms: number) => void (t = ms) };
}

/** Seeded PRNG (mulberry32): the same sequence every run. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** The outcome of a provider's reply with this `@status` (and `@error`), classified as the caller does. */
const answer = (o: { status: number; meshError?: string }) => classify({ reply: { get: (name) => (name === Wire.status ? String(o.status) : name === Wire.error ? o.meshError ?? "" : "") } });
const mesh = (meshError: string, status = 503) => answer({ status, meshError });
const app = (status: number) => answer({ status });
const FINAL = [mesh("circuit_open"), mesh("forbidden", 403), mesh("quota_exceeded", 429), mesh("payload_too_large", 413), mesh("bad_target", 400), mesh("response_too_large", 502), mesh("fault_injected", 500), mesh("new_code")];
const FINE = [app(200), app(302), app(404), app(429)];

describe("retry eligibility", () => {
  const base: MayRetryArgs = { method: "GET", retryNonIdempotent: false, on: ["unavailable", "timeout", "5xx", "app_unreachable"], outcome: mesh("unavailable"), attempt: 1, maxAttempts: 3 };

  test("idempotent methods are retried; POST, PATCH and unknown spellings only when the route says so", () => {
    assert.deepEqual([...IDEMPOTENT_METHODS].sort(), ["DELETE", "GET", "HEAD", "OPTIONS", "PUT", "TRACE"]);
    for (const method of IDEMPOTENT_METHODS) assert.equal(mayRetry({ ...base, method }), true, method);
    for (const method of ["POST", "PATCH", "get", "CONNECT"]) {
      assert.equal(mayRetry({ ...base, method }), false, method);
      assert.equal(mayRetry({ ...base, method, retryNonIdempotent: true }), true, method);
    }
  });

  test("outcomes map to conditions; final ones to none", () => {
    const cases = [[mesh("unavailable"), "unavailable"], [mesh("overloaded"), "unavailable"], [mesh("timeout", 504), "timeout"], [mesh("app_unreachable", 502), "app_unreachable"], ...[500, 502, 503, 504, 599].map((status) => [app(status), "5xx"] as const), ...[...FINAL, ...FINE].map((o) => [o, null] as const)] as const;
    for (const [outcome, want] of cases) assert.equal(outcome.retryOn, want, JSON.stringify(outcome));
    for (const outcome of [...FINAL, ...FINE]) assert.equal(mayRetry({ ...base, retryNonIdempotent: true, outcome }), false, JSON.stringify(outcome));
  });

  test("only conditions listed in `on` are retried", () => {
    const on = ["unavailable", "app_unreachable"] as const;
    assert.equal(mayRetry({ ...base, on, outcome: mesh("overloaded") }), true);
    assert.equal(mayRetry({ ...base, on, outcome: mesh("app_unreachable", 502) }), true);
    assert.equal(mayRetry({ ...base, on, outcome: mesh("timeout", 504) }), false);
    assert.equal(mayRetry({ ...base, on, outcome: app(500) }), false);
    assert.equal(mayRetry({ ...base, on: [] }), false);
  });

  test("attempts stop at maxAttempts", () => {
    assert.deepEqual([1, 2, 3].map((attempt) => mayRetry({ ...base, attempt })), [true, true, false]);
    assert.equal(mayRetry({ ...base, maxAttempts: 1 }), false, "retries.attempts 0");
  });
});

describe("backoff", () => {
  test("full jitter: 0 at the lowest random, just under min(cap, base * 2^(retry-1)) at the highest", () => {
    const random = seeded(1);
    for (let retry = 1; retry <= 10; retry++) {
      const ceiling = Math.min(1000, 25 * 2 ** (retry - 1));
      assert.equal(backoffMs(retry, () => 0), 0);
      assert.equal(backoffMs(retry, () => 0.999999), ceiling - 1);
      for (let i = 0; i < 100; i++) {
        const ms = backoffMs(retry, random);
        assert.ok(Number.isInteger(ms) && ms >= 0 && ms < ceiling, `${retry}: ${ms}`);
      }
    }
  });

  test("doubles per retry up to the cap", () => {
    const half = () => 0.5;
    assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 2000].map((r) => backoffMs(r, half)), [12, 12, 25, 50, 100, 200, 400, 500, 500, 500]);
    assert.deepEqual([1, 2, 3, 4].map((r) => backoffMs(r, half, 100, 300)), [50, 100, 150, 150]);
  });
});

describe("retry budget", () => {
  /** Takes retries until refused; returns how many were granted. */
  const spend = (b: RetryBudget) => { let n = 0; while (n < 10_000 && b.tryRetry()) n++; return n; };
  const requests = (b: RetryBudget, n: number) => { for (let i = 0; i < n; i++) b.recordRequest(); };

  test("100 requests at 20% allow 20 retries plus the floor of 10; percent 0 only the floor", () => {
    const clock = fakeClock(1_234);
    const budget = new RetryBudget({ percent: 20, now: clock.now });
    requests(budget, 100);
    assert.equal(spend(budget), 30);
    assert.equal(spend(new RetryBudget({ percent: 20, now: clock.now })), 10, "no traffic: the floor");
    const zero = new RetryBudget({ percent: 0, minRetriesPerWindow: 2, now: clock.now });
    requests(zero, 1000);
    assert.equal(spend(zero), 2);
  });

  test("the window slides: requests and retries leave it after 10 s", () => {
    const clock = fakeClock();
    const budget = new RetryBudget({ percent: 20, now: clock.now });
    requests(budget, 100);
    assert.equal(spend(budget), 30);
    clock.set(5_000);
    requests(budget, 100);
    assert.equal(spend(budget), 20, "200 requests allow 50; 30 spent");
    clock.set(9_999);
    assert.equal(spend(budget), 0, "still all in the window");
    clock.set(10_000);
    assert.equal(spend(budget), 10, "the first 100 requests and 30 retries left: 30 allowed, 20 spent");
    clock.set(15_000);
    assert.equal(spend(budget), 0, "no requests left; the 10 retries at 10 s still use up the floor");
    clock.set(20_000);
    assert.equal(spend(budget), 10, "everything left");
  });

  test("a long idle period or a clock stepping back does not break the counts", () => {
    const clock = fakeClock();
    const budget = new RetryBudget({ percent: 50, windowMs: 1_000, minRetriesPerWindow: 0, now: clock.now });
    requests(budget, 10);
    clock.advance(3_600_000);
    assert.equal(budget.tryRetry(), false, "nothing left after an hour");
    requests(budget, 10);
    clock.advance(-500);
    assert.equal(spend(budget), 5);
  });
});

describe("circuit breaker", () => {
  function breaker(consecutiveFailures: number, openMs = 1_000) {
    const clock = fakeClock();
    const changes: string[] = [];
    const cb = new CircuitBreaker({ consecutiveFailures, openMs, now: clock.now, onChange: (from, to) => changes.push(`${from}->${to}`) });
    return { cb, clock, changes };
  }

  test("opens after N consecutive failures, refuses while open; a success resets the count", () => {
    assert.deepEqual(BREAKER_STATE_VALUE, { closed: 0, open: 1, half_open: 2 });
    const { cb, clock, changes } = breaker(3);
    for (const report of ["onFailure", "onFailure", "onSuccess", "onFailure", "onFailure"] as const) {
      assert.ok(cb.tryAcquire());
      cb[report]();
    }
    assert.equal(cb.state, "closed");
    cb.onFailure();
    assert.equal(cb.state, "open");
    clock.set(999);
    assert.equal(cb.tryAcquire() || cb.tryAcquire(), false);
    assert.deepEqual(changes, ["closed->open"]);
  });

  test("half-open admits exactly one probe; a failed probe reopens, a successful one closes", () => {
    const { cb, clock, changes } = breaker(2);
    cb.onFailure();
    cb.onFailure();
    clock.set(1_000);
    assert.equal(cb.tryAcquire(), true, "the probe");
    assert.equal(cb.state, "half_open");
    for (let i = 0; i < 5; i++) assert.equal(cb.tryAcquire(), false, "others wait for the probe");
    clock.set(1_200);
    cb.onFailure();
    assert.equal(cb.state, "open");
    clock.set(2_199);
    assert.equal(cb.tryAcquire(), false, "the new open period counts from the failed probe");
    clock.set(2_200);
    assert.ok(cb.tryAcquire());
    cb.onSuccess();
    assert.ok(cb.state === "closed" && cb.tryAcquire() && cb.tryAcquire());
    cb.onFailure();
    assert.equal(cb.state, "closed", "closing reset the count");
    assert.deepEqual(changes, ["closed->open", "open->half_open", "half_open->open", "open->half_open", "half_open->closed"]);
  });

  test("outcomes while open are ignored; a probe that never reports is replaced after openMs", () => {
    const { cb, clock, changes } = breaker(1);
    cb.onFailure();
    clock.set(900);
    cb.onFailure();
    cb.onSuccess();
    assert.equal(cb.state, "open");
    clock.set(1_000);
    assert.ok(cb.tryAcquire(), "stragglers did not extend the open period");
    clock.set(1_999);
    assert.equal(cb.tryAcquire(), false);
    clock.set(2_000);
    assert.ok(cb.tryAcquire());
    assert.deepEqual(changes, ["closed->open", "open->half_open"]);
  });

  test("5xx, unavailable, overloaded, timeout, app_unreachable are failures; the rest are not", () => {
    for (const o of [app(500), app(503), app(599), mesh("unavailable"), mesh("overloaded"), mesh("timeout", 504), mesh("app_unreachable", 502)]) assert.equal(o.breakerFailure, true, JSON.stringify(o));
    for (const o of [...FINAL, ...FINE]) assert.equal(o.breakerFailure, false, JSON.stringify(o));
  });
});

describe("p2c peak-EWMA balancer", () => {
  function setup(ids: string[]) {
    const clock = fakeClock(1_000);
    const lb = new P2cEwmaBalancer({ now: clock.now, random: seeded(42) });
    lb.setInstances(ids);
    /** Sequential traffic: each pick waits for its answer, the clock moves by that instance's latency. */
    const run = (latency: Record<string, number>, picks: number) => {
      const counts: Record<string, number> = Object.fromEntries(ids.map((id) => [id, 0]));
      for (let i = 0; i < picks; i++) {
        const id = lb.pick()!;
        lb.start(id);
        clock.advance(latency[id]!);
        lb.finish(id, latency[id]!, false);
        counts[id]!++;
      }
      return counts;
    };
    return { lb, clock, run };
  }

  test("an instance 40 ms slower gets well under a third of 3000 picks; when it recovers, its share returns", () => {
    const { run } = setup(["a", "b", "c"]);
    const slow = run({ a: 10, b: 10, c: 50 }, 3000);
    assert.ok(slow.c! < 0.15 * 3000 && slow.a! > 0.35 * 3000 && slow.b! > 0.35 * 3000, JSON.stringify(slow));
    run({ a: 10, b: 10, c: 10 }, 2000);
    const recovered = run({ a: 10, b: 10, c: 10 }, 1000);
    assert.ok(recovered.c! > 250, JSON.stringify(recovered));
  });

  test("a shunned instance's estimate decays toward zero until it is tried again", () => {
    const { lb, clock } = setup(["a", "b"]);
    lb.finish("a", 10, false);
    lb.finish("b", 500, false);
    let waited = 0;
    // a keeps answering in 10 ms; b gets nothing, so its estimate falls below 10 after 10 s * ln 50.
    for (; lb.pick() === "a" && waited < 60_000; waited += 100) {
      clock.advance(100);
      lb.start("a");
      lb.finish("a", 10, false);
    }
    assert.ok(waited > 39_000 && waited < 39_300, String(waited));
    assert.ok(Math.abs(lb.estimateMs("b")! - 500 * Math.exp(-waited / 10_000)) < 1e-9);
  });

  test("no instance, one instance; two are always both compared; in-flight requests raise the cost", () => {
    assert.equal(setup([]).lb.pick(), undefined);
    assert.equal(setup(["only"]).lb.pick(), "only");
    for (const r of [0, 0.5, 0.999999, 1]) {
      const lb = new P2cEwmaBalancer({ now: () => 0, random: () => r });
      lb.setInstances(["fast", "slow"]);
      lb.finish("slow", 100, false);
      assert.equal(lb.pick(), "fast", `random ${r}`);
    }
    const { lb } = setup(["a", "b"]);
    lb.start("a");
    for (let i = 0; i < 20; i++) assert.equal(lb.pick(), "b");
    lb.finish("a", 5, false);
    lb.start("b");
    lb.start("b");
    for (let i = 0; i < 20; i++) assert.equal(lb.pick(), "a");
  });

  test("a peak is taken at once, an improvement averaged in; a fast failure costs a penalty", () => {
    const { lb, clock } = setup(["a", "b"]);
    lb.finish("a", 100, false);
    assert.equal(lb.estimateMs("a"), 100);
    clock.advance(100);
    lb.finish("a", 10, false);
    assert.ok(lb.estimateMs("a")! > 95 && lb.estimateMs("a")! < 100, `one quick fast answer barely moves it: ${lb.estimateMs("a")}`);
    lb.finish("b", 1, true);
    assert.ok(lb.estimateMs("b")! >= 50, String(lb.estimateMs("b")));
  });

  test("setInstances keeps stats of staying instances, drops gone ones, starts new ones at the median", () => {
    const { lb } = setup(["a", "b", "c"]);
    for (const [id, ms] of [["a", 10], ["b", 20], ["c", 90]] as const) lb.finish(id, ms, false);
    lb.setInstances(["a", "b", "c", "d"]);
    assert.deepEqual(["a", "d"].map((id) => lb.estimateMs(id)), [10, 20]);
    lb.setInstances(["a", "d"]);
    assert.equal(lb.estimateMs("b"), undefined);
    lb.finish("b", 1_000, false); // a request to a removed instance ends: ignored
    for (let i = 0; i < 50; i++) assert.ok(["a", "d"].includes(lb.pick()!));
    const fresh = new P2cEwmaBalancer({ now: () => 0, random: Math.random, initialLatencyMs: 7 });
    fresh.setInstances(["x"]);
    assert.equal(fresh.estimateMs("x"), 7);
  });
});
