import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import type { NatsConnection } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { counterKey } from "../control/quota.ts";
import { QUOTA_COUNTER_BUCKETS, quotaLeaseSubject, quotaWindow } from "../schemas/index.ts";
import { controlRequest } from "../cli/client.ts";
import { DISPATCH_LIMITS } from "../control/dispatch.ts";
import { startApp } from "./helpers/apps.ts";
import { startTestControl, type TestControl } from "./helpers/control.ts";
import { call, eventually, startTestSidecar } from "./helpers/mesh.ts";
import { metricSum } from "./helpers/observability.ts";
import { connectClient, startNats, type NatsCluster } from "./helpers/nats.ts";

/** Control under hostile requests: raw NATS clients, as a thief of one sidecar's key would send them. */
let nats: NatsCluster;
let control: TestControl;
let nc: NatsConnection;

before(async () => {
  nats = await startNats({ nodes: 1 });
  control = await startTestControl(nats.urls);
  nc = await connectClient(nats.urls);
});

async function lease(service: string, body: Record<string, unknown>): Promise<{ ok: boolean; granted?: number; error?: { code: string; message: string } }> {
  const msg = await nc.request(quotaLeaseSubject(service), JSON.stringify({ service, caller: "frontend", per: "minute", limit: 100, want: 1, ...body }), { timeout: 5_000 });
  return msg.json();
}

describe("quota windows", () => {
  test("a lease for a window other than the current one (or the next to it) is refused and writes no key", async () => {
    const current = quotaWindow("minute", Date.now());
    for (const window of [current + 2, current - 2, 0, 9_999_999_999]) {
      const reply = await lease("windowed", { window });
      assert.equal(reply.ok, false, String(window));
      assert.equal(reply.error?.code, "bad_request");
      assert.match(reply.error!.message, /not the current minute window/);
    }
    // The barrier: a legitimate lease after them is served.
    for (const window of [current - 1, current, current + 1]) assert.equal((await lease("windowed", { window })).ok, true, String(window));
    const kv = await new Kvm(nc).open(QUOTA_COUNTER_BUCKETS.minute);
    const keys: string[] = [];
    for await (const k of await kv.keys("windowed.>")) keys.push(k);
    // A lease may straddle a minute boundary: the current window is taken at each request.
    const allowed = new Set([current - 2, current - 1, current, current + 1, current + 2].map((w) => counterKey("windowed", "frontend", w)));
    assert.ok(keys.length >= 1 && keys.every((k) => allowed.has(k)), keys.join(","));
    assert.ok(!keys.includes(counterKey("windowed", "frontend", 0)) && !keys.includes(counterKey("windowed", "frontend", 9_999_999_999)));
  });
});

describe("control serves fairly", () => {
  test("a client flooding its own quota subject gets 'overloaded'; a real provider keeps getting leases and admits per its quota", async () => {
    const app = await startApp((_req, res) => void res.end("ok"));
    const provider = await startTestSidecar({ service: "fairsvc", app: app.url, nats: nats.urls });
    const caller = await startTestSidecar({ service: "frontend", nats: nats.urls });
    // 5 permits a lease at most (a twentieth of the limit): the provider has to lease again and again.
    const { applied } = await controlRequest(nc, "apply", { documents: [{ kind: "Quota", service: "fairsvc", limits: [{ caller: "frontend", requests: 100, per: "minute" }] }] });
    await eventually(async () => {
      const config = (await (await fetch(`http://127.0.0.1:${provider.admin.port}/config`)).json()) as { policies: Array<{ key: string; revision: number }> };
      return config.policies.some((p) => p.key === "fairsvc" && p.revision === applied[0]!.revision);
    });

    // The flooder: its own quota subject, the expensive path (a grant, so a KV write), as fast as it can.
    const flooder = await connectClient(nats.urls);
    const replies = { overloaded: 0, other: 0 };
    let flooding = true;
    const flood = (async () => {
      while (flooding) {
        const wave = Array.from({ length: 500 }, () =>
          flooder
            .request(quotaLeaseSubject("flooder"), JSON.stringify({ service: "flooder", caller: "x", per: "minute", window: quotaWindow("minute", Date.now()), limit: 1e9, want: 1 }), { timeout: 30_000 })
            .then((m) => (m.json<{ ok: boolean; error?: { code: string } }>().error?.code === "overloaded" ? replies.overloaded++ : replies.other++))
            .catch(() => replies.other++),
        );
        await Promise.all(wave.slice(0, 100));
      }
    })();
    // The flood is on before the first real request: its queue has overflowed at least once.
    await eventually(async () => replies.overloaded > 0, 30_000);
    const overloadedBefore = replies.overloaded;
    const statuses: number[] = [];
    for (let i = 0; i < 60; i++) {
      const res = await call(caller.outbound.port, "fairsvc", "/");
      statuses.push(res.statusCode);
      await res.body.dump();
    }
    flooding = false;
    await flood;

    assert.ok(replies.overloaded > overloadedBefore, "the flood went on during the real requests, and overflowed");
    assert.deepEqual([...new Set(statuses)], [200], "60 of 100 a minute: all admitted");
    const decisions = (d: string) => metricSum(provider.registry, "mesh_quota_decisions_total", { service: "fairsvc", decision: d });
    assert.equal(await decisions("allowed"), 60);
    assert.equal(await decisions("unavailable_allowed"), 0, "control never looked unavailable to the provider");
    assert.equal(await decisions("unavailable_denied"), 0);
    assert.ok((await metricSum(control.registry, "mesh_control_requests_total", { verb: "quota", outcome: "overloaded" })) >= replies.overloaded);
    assert.ok(DISPATCH_LIMITS.maxInFlightPerKey < DISPATCH_LIMITS.maxConcurrent);
  });
});
