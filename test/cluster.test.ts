import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { startApp, type TestApp } from "./helpers/apps.ts";
import { call, eventually, startTestSidecar } from "./helpers/mesh.ts";
import { startNats, type NatsCluster } from "./helpers/nats.ts";

let nats: NatsCluster;
let app: TestApp;

before(async () => {
  nats = await startNats({ nodes: 3 });
  app = await startApp((_req, res) => void res.end("pong"));
});

/** The cluster node a sidecar's connection is on. */
function nodeOf(sidecar: { nc: { info?: { port: number } } }) {
  const port = sidecar.nc.info?.port;
  const node = nats.servers.find((s) => s.clientPort === port);
  assert.ok(node, `connected to an unknown port ${port}`);
  return node;
}

async function ok(port: number, service: string): Promise<boolean> {
  // A short deadline: a request written to a socket whose server just died is lost and times out.
  const res = await call(port, service, "/ping", { headers: { "x-mesh-timeout-ms": "2000" } });
  const body = await res.body.text();
  return res.statusCode === 200 && body === "pong";
}

describe("a 3-node NATS cluster", () => {
  test("caller on one node reaches a provider on another", async () => {
    const provider = await startTestSidecar({ service: "remote", app: app.url, nats: [nats.urls[2]!] });
    const caller = await startTestSidecar({ service: "frontend", nats: [nats.urls[0]!] });
    assert.notEqual(nodeOf(provider).name, nodeOf(caller).name);
    // Subscription interest crosses the routes asynchronously.
    await eventually(() => ok(caller.outbound.port, "remote"));
    for (let i = 0; i < 20; i++) assert.ok(await ok(caller.outbound.port, "remote"));
  });

  /**
   * Kills the node `victim` is connected to, then expects calls from `caller`
   * to `service` to succeed again, with `victim` on another node.
   */
  async function survivesLosingNodeOf(victim: { nc: { info?: { port: number } } }, caller: { outbound: { port: number } }, service: string) {
    await eventually(() => ok(caller.outbound.port, service));
    const node = nodeOf(victim);
    await node.kill("SIGKILL");
    try {
      await eventually(() => ok(caller.outbound.port, service), 20_000);
      assert.notEqual(nodeOf(victim).name, node.name, "moved to another node");
    } finally {
      await node.restart();
    }
  }

  test("killing the node a caller uses: requests succeed again after it reconnects", async () => {
    await startTestSidecar({ service: "steady", app: app.url, nats: nats.urls });
    const caller = await startTestSidecar({ service: "frontend", nats: nats.urls });
    await survivesLosingNodeOf(caller, caller, "steady");
  });

  test("killing the node a provider uses: it rejoins its queue groups elsewhere", async () => {
    const provider = await startTestSidecar({ service: "mobile", app: app.url, nats: nats.urls });
    const caller = await startTestSidecar({ service: "frontend", nats: nats.urls });
    await survivesLosingNodeOf(provider, caller, "mobile");
  });
});
