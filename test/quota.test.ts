import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import pino from "pino";
import { counterKey } from "../control/quota.ts";
import { QUOTA_COUNTER_BUCKETS, QUOTA_WINDOW_MS, quotaLeaseSubject, quotaWindow, validatePolicy, type QuotaPolicy } from "../schemas/index.ts";
import { createQuotaGate, type AdmitDecision, type QuotaGate, type QuotaOutcome } from "../sidecar/inbound/quota-gate.ts";
import { onFileEnd } from "./helpers/cleanup.ts";
import { startTestControl, type TestControl } from "./helpers/control.ts";
import { eventually, sleep } from "./helpers/mesh.ts";
import { startNats, type NatsCluster } from "./helpers/nats.ts";

let nats: NatsCluster;
/** one connection per provider instance, as three sidecars would have */
let conns: NatsConnection[];
let controls: TestControl[] = [];

before(async () => {
  nats = await startNats({ nodes: 3 });
  // A server hands a queue group's messages to its own clients first: with the replicas on nodes 0 and 1
  // and an instance on each node, both replicas are sure to lease.
  // Control follows the test's clock too: it leases only for the current window (or the next to it).
  controls = [await startTestControl([nats.urls[0]!], undefined, { now: controlNow }), await startTestControl([nats.urls[1]!], undefined, { now: controlNow })];
  conns = await Promise.all(nats.urls.map((url) => connect({ servers: [url], noAsyncTraces: true })));
  for (const nc of conns) onFileEnd(() => nc.close());
});

/**
 * A clock the gates share and the test moves: windows change only when the
 * test says so, however slow the machine. Starts 10 s into a minute.
 */
const clock = { t: (Math.floor(Date.now() / 60_000) + 1) * 60_000 + 10_000 };
const now = () => clock.t;
/** Control's clock: the test's, except while a test runs gates on the real clock. */
const controlClock = { real: false };
const controlNow = () => (controlClock.real ? Date.now() : clock.t);

function policy(service: string, doc: Record<string, unknown>): QuotaPolicy {
  const result = validatePolicy({ kind: "Quota", service, ...doc });
  assert.ok(result.ok, JSON.stringify(!result.ok && result.problems));
  return result.value as QuotaPolicy;
}

interface TestGate extends QuotaGate {
  outcomes: QuotaOutcome[];
}

/** `count` provider instances of `service`, each with its own connection, following `doc`. */
function gates(service: string, doc: Record<string, unknown>, count = 3, opts: { realClock?: boolean } = {}): TestGate[] {
  return Array.from({ length: count }, (_, i) => {
    const outcomes: QuotaOutcome[] = [];
    const gate = createQuotaGate({
      nc: conns[i % conns.length]!,
      service,
      logger: pino({ level: "silent" }),
      ...(opts.realClock ? {} : { now }),
      // Generous, so a stalled machine is not mistaken for control being away (which would let requests through).
      leaseTimeoutMs: 5_000,
      onDecision: (_caller, outcome) => outcomes.push(outcome),
    });
    gate.setPolicy(policy(service, doc));
    onFileEnd(() => gate.close());
    return Object.assign(gate, { outcomes });
  });
}

/**
 * `waves` rounds of `perWave` concurrent requests from `caller` at every
 * gate at once: traffic spread evenly over the instances, as a queue group
 * spreads it, with lease requests of different instances (and of one
 * instance) in flight together.
 */
async function spread(instances: QuotaGate[], caller: string, waves: number, perWave = 1): Promise<AdmitDecision[]> {
  const out: AdmitDecision[] = [];
  for (let w = 0; w < waves; w++) {
    out.push(...(await Promise.all(instances.flatMap((gate) => Array.from({ length: perWave }, () => gate.admit(caller))))));
  }
  return out;
}

const allowed = (ds: AdmitDecision[]) => ds.filter((d) => d.allowed).length;

async function storedCount(service: string, caller: string, per: "second" | "minute" = "minute"): Promise<number | undefined> {
  const kv = await new Kvm(conns[0]!).open(QUOTA_COUNTER_BUCKETS[per]);
  const entry = await kv.get(counterKey(service, caller, quotaWindow(per, clock.t)));
  return entry ? Number(entry.string()) : undefined;
}

/** Until a lease request from every instance's connection reaches a control replica. */
async function controlReachable(): Promise<void> {
  const probe = JSON.stringify({ service: "probe", caller: "probe", per: "second", window: quotaWindow("second", clock.t), limit: 1, want: 0 });
  const answered = (nc: NatsConnection) => nc.request(quotaLeaseSubject("probe"), probe, { timeout: 1_000 }).then((m) => m.json<{ ok: boolean }>().ok);
  await eventually(async () => (await Promise.all(conns.map(answered))).every(Boolean));
}

async function quotaRequests(control: TestControl): Promise<number> {
  const m = /mesh_control_requests_total\{verb="quota",outcome="ok"\} (\d+)/.exec(await control.registry.metrics());
  return m ? Number(m[1]) : 0;
}

describe("global quota across provider instances and control replicas", () => {
  const doc = {
    limits: [
      { caller: "frontend", requests: 300, per: "minute" },
      { caller: "*", requests: 20, per: "minute" },
    ],
  };
  let orders: TestGate[];

  test("300/minute over 3 instances and 2 control replicas admits between 300 and 315 of 450", async () => {
    orders = gates("orders", doc);
    const decisions = await spread(orders, "frontend", 30, 5);
    const admitted = allowed(decisions);
    assert.ok(admitted >= 300 && admitted <= 315, `admitted ${admitted}`);
    assert.equal(await storedCount("orders", "frontend"), 300, "control granted exactly the limit");

    const denied = decisions.find((d) => !d.allowed);
    assert.ok(denied && !denied.allowed);
    assert.deepEqual(denied.headers, { limit: 300, remaining: 0, resetS: 50 });
    assert.equal(denied.retryAfterS, 50, "until the minute ends");
    const outcomes = orders.flatMap((g) => g.outcomes);
    assert.equal(outcomes.filter((o) => o === "allowed").length, admitted);
    assert.equal(outcomes.filter((o) => o === "denied").length, 450 - admitted);

    const leases = await Promise.all(controls.map(quotaRequests));
    assert.ok(leases.every((n) => n > 0), `both replicas leased: ${leases}`);
    assert.ok(leases[0]! + leases[1]! < 150, `permits come in batches, not a round trip per request: ${leases} leases`);
  });

  test("another caller is unaffected, and * gives each other caller a count of its own", async () => {
    for (const caller of ["reports", "billing"]) {
      const decisions = await spread(orders, caller, 10);
      assert.equal(allowed(decisions), 20, `${caller}: its own 20`);
      assert.equal((await orders[0]!.admit(caller)).allowed, false, `${caller}: the 21st is over`);
    }
    assert.equal((await orders[1]!.admit("frontend")).allowed, false, "frontend is still over");
  });

  test("the next window admits again", async () => {
    clock.t += 60_000;
    const decisions = await spread(orders, "frontend", 30);
    assert.equal(allowed(decisions), 90);
    const first = decisions[0]!;
    assert.ok(first.allowed && first.headers, "an admitted request carries RateLimit figures");
    assert.equal(first.headers.limit, 300);
    assert.equal(first.headers.resetS, 50);
  });

  test("an instance that stops gives back its unspent permits", async () => {
    const [a, b] = gates("stock", { limits: [{ caller: "*", requests: 100, per: "minute" }] }, 2);
    const first = await spread([a!], "frontend", 4);
    assert.equal(allowed(first), 4);
    const heldByA = 100 - 4 - (await spread([b!], "frontend", 100)).filter((d) => d.allowed).length;
    assert.ok(heldByA > 0, "a holds permits it has not spent");
    await a!.close();
    assert.equal(await storedCount("stock", "frontend"), 100 - heldByA, "given back");
    clock.t += 1_000; // b asks again once its recheck is due
    assert.equal(allowed(await spread([b!], "frontend", 10)), heldByA);
    assert.equal(await storedCount("stock", "frontend"), 100);
  });

  test("a per-second limit on the real clock: over, then admitted again in the next second", async (t) => {
    controlClock.real = true;
    t.after(() => void (controlClock.real = false));
    const [gate] = gates("ticker", { limits: [{ caller: "frontend", requests: 5, per: "second" }] }, 1, { realClock: true });
    let denial: AdmitDecision | undefined;
    for (let i = 0; i < 10_000 && !denial; i++) {
      const d = await gate!.admit("frontend");
      if (!d.allowed) denial = d;
    }
    assert.ok(denial && !denial.allowed, "five a second run out");
    assert.equal(denial.retryAfterS, 1);
    await sleep(QUOTA_WINDOW_MS.second - (Date.now() % QUOTA_WINDOW_MS.second) + 1); // why: the real clock must pass into the next second, which is what this test is about
    assert.equal((await gate!.admit("frontend")).allowed, true);
  });
});

describe("control restarts and outages", () => {
  test("a lease names its service in the subject: another service's counters cannot be touched", async () => {
    const body = JSON.stringify({ service: "orders", caller: "frontend", per: "minute", window: quotaWindow("minute", clock.t), limit: 300, want: 0, release: 300 });
    for (const subject of [quotaLeaseSubject("billing"), "mesh.ctl.v1.quota"]) {
      const reply = (await conns[0]!.request(subject, body, { timeout: 5_000 })).json<{ ok: boolean; error?: { code: string } }>();
      assert.equal(reply.ok, false, subject);
      assert.equal(reply.error?.code, "bad_request");
    }
  });

  test("counts survive restarting control: stop every replica, start a new one, counting goes on from KV", async () => {
    const service = "ledger";
    const doc = { limits: [{ caller: "frontend", requests: 300, per: "minute" }] };
    const ledger = gates(service, doc);
    const before = await spread(ledger, "frontend", 8, 5);
    assert.equal(allowed(before), 120);
    const granted = (await storedCount(service, "frontend"))!;
    assert.ok(granted >= 120);

    await Promise.all(controls.map((c) => c.kill()));
    controls = [await startTestControl(nats.urls, undefined, { now: controlNow })];
    await controlReachable();

    const after = await spread(ledger, "frontend", 22, 5);
    const total = allowed(before) + allowed(after);
    assert.ok(total >= 300 && total <= 315, `admitted ${total} across the restart`);
    assert.equal(await storedCount(service, "frontend"), 300);
    const [newcomer] = gates(service, doc, 1);
    assert.equal((await newcomer!.admit("frontend")).allowed, false, "a new instance finds the window used up");
  });

  test("onUnavailable decides while no control runs: allow or 429", async () => {
    const open = gates("open-door", { limits: [{ caller: "*", requests: 5, per: "minute" }], onUnavailable: "allow" }, 1)[0]!;
    const shut = gates("shut-door", { limits: [{ caller: "*", requests: 5, per: "minute" }], onUnavailable: "deny" }, 1)[0]!;
    await Promise.all(controls.map((c) => c.kill()));
    controls = [];

    for (let i = 0; i < 10; i++) assert.equal((await open.admit("frontend")).allowed, true);
    assert.ok(open.outcomes.every((o) => o === "unavailable_allowed"), open.outcomes.join());
    const denied = await shut.admit("frontend");
    assert.ok(!denied.allowed);
    assert.equal(denied.retryAfterS, 1, "ask again in a second");
    assert.equal(denied.headers.limit, 5);
    assert.equal(denied.headers.remaining, 0);
    assert.deepEqual(shut.outcomes, ["unavailable_denied"]);

    controls = [await startTestControl(nats.urls, undefined, { now: controlNow })];
    await controlReachable();
    clock.t += 1_000;
    assert.equal(allowed(await spread([shut], "frontend", 8)), 5, "counted again once control is back");
    assert.equal(shut.outcomes.at(-1), "denied");
  });
});
