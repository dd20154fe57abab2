// The dashboard's time-series rings (control/dashboard/history.ts), without
// a server: points, per-second rates from running totals, and the bound on
// services (docs/dashboard.md §Time series).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { HISTORY_LIMITS, ServiceHistory } from "../control/dashboard/history.ts";
import type { ServiceSample } from "../control/telemetry.ts";
import { callEdges } from "../control/dashboard/views.ts";

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

describe("topology edges across clusters", () => {
  const pair = (source: string, destination: string, cluster: string, rps: number) => ({
    source, destination, cluster, requests: rps * 10, rps, successRate: 1, p50Ms: 1, p99Ms: rps,
  });

  test("one edge per caller and callee, summed over callers' clusters; it crosses when the callers' cluster has no ready instance", () => {
    const ready = new Map([["pricing", new Set(["west"])], ["catalog", new Set(["east", "west"])]]);
    const edges = callEdges([pair("frontend", "pricing", "east", 2), pair("frontend", "pricing", "west", 3), pair("frontend", "catalog", "east", 4)], ready);
    assert.equal(edges.length, 2, "no duplicate edges (the graph refuses two elements with one id)");
    const pricing = edges.find((e) => e.destination === "pricing")!;
    assert.equal(pricing.rps, 5);
    assert.equal(pricing.p99Ms, 3);
    assert.equal(pricing.crossCluster, true);
    assert.equal(pricing.sourceCluster, "east");
    assert.equal(pricing.destinationCluster, "west");
    const catalog = edges.find((e) => e.destination === "catalog")!;
    assert.equal(catalog.crossCluster, false, "a ready instance in the callers' cluster keeps the calls there");
  });
});
