import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { changeCounter, counterKey, leaseSize } from "../control/quota.ts";
import { quotaWindow, quotaWindowEnd, validatePolicy, type QuotaPolicy } from "../schemas/index.ts";
import { LocalCounter, compileQuota, headersOf } from "../sidecar/inbound/quota-plan.ts";
import { rateLimitHeaders } from "../sidecar/inbound/quota-gate.ts";

function quota(doc: Record<string, unknown>): QuotaPolicy {
  const result = validatePolicy({ kind: "Quota", service: "orders", ...doc });
  assert.ok(result.ok, JSON.stringify(!result.ok && result.problems));
  return result.value as QuotaPolicy;
}

describe("quota arithmetic at control", () => {
  test("leases are small: a twentieth of the limit, a quarter of what is left, never more than is left", () => {
    assert.equal(leaseSize(300, 0, 1000), 15);
    assert.equal(leaseSize(300, 0, 4), 4, "no more than asked");
    assert.equal(leaseSize(300, 280, 1000), 5, "a quarter of the 20 left");
    assert.equal(leaseSize(300, 298, 1000), 1);
    assert.equal(leaseSize(300, 299, 1000), 1);
    assert.equal(leaseSize(300, 300, 1000), 0);
    assert.equal(leaseSize(300, 400, 1000), 0, "a lowered limit already passed");
    assert.equal(leaseSize(5, 0, 1000), 1);
    assert.equal(leaseSize(300, 0, 0), 0, "want 0 only releases");
  });

  test("granted permits never exceed the limit, whatever is asked", () => {
    for (const limit of [1, 7, 300, 10_000]) {
      let used = 0;
      for (let i = 0; i < 100_000 && used < limit; i++) used = changeCounter(used, { limit, want: 1 + (i % 50) }).used;
      assert.equal(used, limit);
      assert.equal(changeCounter(used, { limit, want: 100 }).granted, 0);
    }
  });

  test("a release is subtracted before the grant; the count never goes below zero", () => {
    assert.deepEqual(changeCounter(300, { limit: 300, want: 0, release: 10 }), { used: 290, granted: 0 });
    assert.deepEqual(changeCounter(300, { limit: 300, want: 4, release: 10 }), { used: 293, granted: 3 });
    assert.deepEqual(changeCounter(2, { limit: 300, want: 0, release: 10 }), { used: 0, granted: 0 });
  });

  test("counter keys: names as they are, anything else encoded behind _", () => {
    assert.equal(counterKey("orders", "frontend", 29_000_000), "orders.frontend.29000000");
    const odd = counterKey("orders", "Front.End*", 1);
    assert.match(odd, /^orders\._[A-Za-z0-9_-]+\.1$/);
    assert.notEqual(counterKey("orders", "a:b", 1), counterKey("orders", "a;b", 1));
  });
});

describe("quota arithmetic at the provider", () => {
  test("the first matching pattern picks the limits; every entry with that pattern applies", () => {
    const q = compileQuota(
      quota({
        limits: [
          { caller: "frontend", requests: 100, per: "minute" },
          { caller: "admin-*", requests: 5, per: "second" },
          { caller: "frontend", requests: 10, per: "second" },
          { caller: "*", requests: 3, per: "minute" },
          { caller: "admin-*", requests: 50, per: "minute" },
        ],
      }),
    )!;
    assert.deepEqual(q.limitsFor("frontend"), [{ per: "minute", requests: 100 }, { per: "second", requests: 10 }]);
    assert.deepEqual(q.limitsFor("admin-ui"), [{ per: "second", requests: 5 }, { per: "minute", requests: 50 }]);
    assert.deepEqual(q.limitsFor("billing"), [{ per: "minute", requests: 3 }]);
    assert.equal(q.onUnavailable, "allow", "absent onUnavailable means allow");
  });

  test("callers no pattern matches are not limited; the same per twice keeps the stricter", () => {
    const q = compileQuota(quota({ limits: [{ caller: "frontend", requests: 9, per: "minute" }, { caller: "frontend", requests: 4, per: "minute" }], onUnavailable: "deny" }))!;
    assert.equal(q.limitsFor("billing"), undefined);
    assert.deepEqual(q.limitsFor("frontend"), [{ per: "minute", requests: 4 }]);
    assert.equal(q.onUnavailable, "deny");
    assert.equal(compileQuota(undefined), undefined);
  });

  test("windows are aligned to the epoch", () => {
    const t = Date.UTC(2025, 0, 1, 10, 30, 15, 500);
    assert.equal(quotaWindowEnd("minute", quotaWindow("minute", t)), Date.UTC(2025, 0, 1, 10, 31));
    assert.equal(quotaWindowEnd("hour", quotaWindow("hour", t)), Date.UTC(2025, 0, 1, 11));
    assert.equal(quotaWindowEnd("day", quotaWindow("day", t)), Date.UTC(2025, 0, 2));
    assert.equal(quotaWindowEnd("second", quotaWindow("second", t)), t + 500);
  });

  test("a counter's permits belong to one window; a late lease for a past window is void", () => {
    const t = Date.UTC(2025, 0, 1, 10, 30, 15);
    const c = new LocalCounter("frontend", "minute", 300);
    c.roll(t);
    const window = c.window;
    assert.ok(c.granted(window, 8, 292, t, 1000));
    assert.equal(c.permits, 8);
    assert.equal(c.want, 16, "leases used up grow");
    c.roll(t + 60_000);
    assert.equal(c.permits, 0);
    assert.equal(c.want, 8, "a window ending with permits unspent halves the next ask");
    assert.equal(c.granted(window, 8, 284, t + 60_000, 1000), false);
    assert.equal(c.permits, 0);
  });

  test("used up: denied locally until the window ends or the recheck, whichever is first", () => {
    const t = Date.UTC(2025, 0, 1, 10, 30, 59, 500);
    const c = new LocalCounter("frontend", "minute", 300);
    c.roll(t);
    c.granted(c.window, 0, 0, t, 1000);
    assert.equal(c.exhaustedUntil, Date.UTC(2025, 0, 1, 10, 31));
    c.roll(t + 1000);
    assert.equal(c.exhaustedUntil, 0, "a new window starts afresh");
  });

  test("headers follow the counter with the fewest requests left", () => {
    const t = Date.UTC(2025, 0, 1, 10, 30, 15, 200);
    const minute = new LocalCounter("frontend", "minute", 100);
    const second = new LocalCounter("frontend", "second", 10);
    minute.roll(t);
    second.roll(t);
    minute.granted(minute.window, 5, 50, t, 1000);
    second.granted(second.window, 2, 7, t, 1000);
    assert.deepEqual(headersOf([minute, second], t), { limit: 10, remaining: 9, resetS: 1 });
    minute.remoteRemaining = 0;
    assert.deepEqual(headersOf([minute, second], t), { limit: 100, remaining: 5, resetS: 45 });
  });

  test("rateLimitHeaders: RateLimit-* when limited, Retry-After on a denial, nothing when unlimited", () => {
    assert.deepEqual(rateLimitHeaders({ allowed: true }), []);
    assert.deepEqual(rateLimitHeaders({ allowed: true, headers: { limit: 10, remaining: 3, resetS: 20 } }), [
      ["ratelimit-limit", "10"],
      ["ratelimit-remaining", "3"],
      ["ratelimit-reset", "20"],
    ]);
    assert.deepEqual(rateLimitHeaders({ allowed: false, retryAfterS: 20, headers: { limit: 10, remaining: 0, resetS: 20 } }).at(-1), ["retry-after", "20"]);
  });
});
