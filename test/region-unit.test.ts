// Locality decisions without a server (docs/multi-region.md): which instance
// p2c-ewma chooses by region, what retries try next, and what a Route with
// localityFailover: false refuses.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { RegistryEntry } from "../schemas/index.ts";
import { InstanceView } from "../sidecar/policy/instances.ts";
import { Destinations } from "../sidecar/resilience/destinations.ts";

const now = Date.parse("2026-12-01T10:00:00Z");

function entry(instance: string, region: string | undefined, state: RegistryEntry["state"] = "ready"): RegistryEntry {
  const at = new Date(now).toISOString();
  return { service: "echo", version: "v1", instance, app: "http://127.0.0.1:1", state, host: "h", startedAt: at, heartbeatAt: at, ...(region ? { region } : {}) };
}

/** A view of `entries` and a Destinations over it, with a random sequence that walks every index. */
function destinations(entries: RegistryEntry[]) {
  const view = new InstanceView(() => now);
  for (const e of entries) view.update(`echo.${e.instance}`, e);
  let i = 0;
  const random = () => (i++ % 10) / 10;
  return { view, d: new Destinations({ now: () => now, random, instances: view, hooks: { onBreakerChange: () => {} } }) };
}

/** Every instance `choose` returns over `n` picks. */
function picks(d: Destinations, opts: Parameters<Destinations["choose"]>[2], n = 50): Set<string> {
  const seen = new Set<string>();
  for (let k = 0; k < n; k++) {
    const c = d.choose("echo", "_", opts);
    seen.add(typeof c === "object" ? c.instance : String(c));
  }
  return seen;
}

describe("p2c-ewma locality", () => {
  const mesh = [entry("e1", "east"), entry("e2", "east"), entry("w1", "west"), entry("w2", "west")];

  test("picks only among the caller's region while any instance there is ready", () => {
    const { d } = destinations(mesh);
    assert.deepEqual(picks(d, { region: "east", failover: true }), new Set(["e1", "e2"]));
    assert.deepEqual(picks(d, { region: "west", failover: true }), new Set(["w1", "w2"]));
  });

  test("one ready local instance is enough to stay: the threshold to cross is zero ready", () => {
    const { d } = destinations([entry("e1", "east"), entry("e2", "east", "unready"), entry("w1", "west")]);
    assert.deepEqual(picks(d, { region: "east", failover: true }), new Set(["e1"]));
    const none = destinations([entry("e1", "east", "draining"), entry("w1", "west"), entry("w2", "west")]);
    assert.deepEqual(picks(none.d, { region: "east", failover: true }), new Set(["w1", "w2"]));
  });

  test("instances without a region, and callers without one, count as local", () => {
    const { d } = destinations([entry("x", undefined), entry("w1", "west")]);
    assert.deepEqual(picks(d, { region: "east", failover: true }), new Set(["x"]));
    assert.deepEqual(picks(d, { region: undefined, failover: true }), new Set(["x", "w1"]));
  });

  test("retries: another local instance first, then an untried remote one, then a tried one, local before remote", () => {
    const { d } = destinations(mesh);
    assert.deepEqual(picks(d, { region: "east", failover: true, tried: new Set(["e1"]) }), new Set(["e2"]));
    assert.deepEqual(picks(d, { region: "east", failover: true, tried: new Set(["e1", "e2"]) }), new Set(["w1", "w2"]));
    assert.deepEqual(picks(d, { region: "east", failover: true, tried: new Set(["e1", "e2", "w1", "w2"]) }), new Set(["e1", "e2"]));
  });

  test("localityFailover: false never crosses: none_local when the region has no ready instance", () => {
    const { d } = destinations([entry("e1", "east", "unready"), entry("w1", "west")]);
    assert.deepEqual(picks(d, { region: "east", failover: false }), new Set(["none_local"]));
    assert.deepEqual(picks(d, { region: "west", failover: false }), new Set(["w1"]));
    const empty = destinations([]);
    assert.equal(empty.d.choose("echo", "_", { region: "east", failover: false }), "none_local");
    assert.equal(empty.d.choose("echo", "_", { region: "east", failover: true }), undefined, "no instance known: the queue group");
  });
});
