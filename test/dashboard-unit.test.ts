// The dashboard's time-series rings (control/dashboard/history.ts), without
// a server: points, per-second rates from running totals, and the bound on
// services (docs/dashboard.md §Time series).
import assert from "node:assert/strict";
import { test } from "node:test";
import { HISTORY_LIMITS, ServiceHistory } from "../control/dashboard/history.ts";
import type { ServiceSample } from "../control/telemetry.ts";

const traffic = { requests: 50, rps: 5, successRate: 0.9, p50Ms: 2, p99Ms: 9 };
const sample = (over: Partial<ServiceSample> = {}): ServiceSample => ({ traffic, retries: 0, authzDenied: 0, quotaRejected: 0, breakersOpen: 0, ...over });
const step = HISTORY_LIMITS.sampleMs;

test("a point per sample: traffic as measured, totals as per-second rates since the previous point", () => {
  const h = new ServiceHistory();
  h.record(0, new Map([["pricing", sample({ retries: 10 })]]));
  h.record(step, new Map([["pricing", sample({ retries: 20, quotaRejected: 5, authzDenied: 15, breakersOpen: 2 })]]));
  const s = h.series("pricing")!;
  assert.deepEqual(s.t, [0, step / 1000]);
  assert.deepEqual(s.rps, [5, 5]);
  assert.deepEqual(s.successRate, [0.9, 0.9]);
  assert.deepEqual(s.p99Ms, [9, 9]);
  assert.deepEqual(s.retries, [null, 2], "no rate before a second total");
  assert.deepEqual(s.quotaRejected, [null, 1]);
  assert.deepEqual(s.authzDenied, [null, 3]);
  assert.deepEqual(s.breakersOpen, [0, 2]);
});

test("a quiet service gets empty points, the ring keeps 15 minutes, and a service idle that long is forgotten", () => {
  const h = new ServiceHistory();
  h.record(0, new Map([["pricing", sample()]]));
  const last = HISTORY_LIMITS.points + 2;
  for (let i = 1; i <= last; i++) h.record(i * step, new Map(i === 3 ? [["pricing", sample()]] : []));
  const s = h.series("pricing")!;
  assert.equal(s.t.length, HISTORY_LIMITS.points);
  assert.equal(s.t[0], (3 * step) / 1000, "the oldest points scrolled out");
  assert.deepEqual([s.rps[0], ...new Set(s.rps.slice(1))], [5, null]);
  h.record((last + 2) * step, new Map());
  assert.equal(h.series("pricing"), undefined);
});

test("past the bound a new service is not recorded but counted, and an idle one is forgotten to make room", () => {
  const h = new ServiceHistory();
  const all = new Map(Array.from({ length: HISTORY_LIMITS.services }, (_, i) => [`svc-${i}`, sample()]));
  h.record(0, all);
  h.record(step, new Map([...all, ["late", sample()]]));
  assert.equal(h.series("late"), undefined);
  assert.equal(h.droppedServices, 1);
  // Everyone goes quiet for longer than the ring: forgotten, so "late" gets a ring.
  const quietUntil = step + HISTORY_LIMITS.points * step + step;
  h.record(quietUntil, new Map([["late", sample()]]));
  assert.ok(h.series("late"));
  assert.equal(h.series("svc-0"), undefined);
});
