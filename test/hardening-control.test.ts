import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import type { NatsConnection } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { counterKey } from "../control/quota.ts";
import { QUOTA_COUNTER_BUCKETS, quotaLeaseSubject, quotaWindow } from "../schemas/index.ts";
import { startTestControl } from "./helpers/control.ts";
import { connectClient, startNats, type NatsCluster } from "./helpers/nats.ts";

/** Control under hostile requests: raw NATS clients, as a thief of one sidecar's key would send them. */
let nats: NatsCluster;
let nc: NatsConnection;

before(async () => {
  nats = await startNats({ nodes: 1 });
  await startTestControl(nats.urls);
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
