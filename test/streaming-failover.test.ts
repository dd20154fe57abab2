// A NATS node lost mid-stream (issue 11), on a real 3-node cluster: the caller's
// sidecar is connected to one node, the provider's to another, and the
// caller's node is killed while an event stream flows. Whatever was in flight
// is gone, so the stream must end with an error at both ends (a sequence gap
// or, at the latest, streamIdleTimeoutMs) and never hang or look complete.
import assert from "node:assert/strict";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { before, describe, test } from "node:test";
import { startStreamingApp } from "./helpers/apps.ts";
import { startTestControl } from "./helpers/control.ts";
import { eventually, startTestSidecar } from "./helpers/mesh.ts";
import { startNats, type NatsCluster } from "./helpers/nats.ts";
import { metricSum } from "./helpers/observability.ts";

let nats: NatsCluster;

before(async () => {
  nats = await startNats({ nodes: 3 });
  await startTestControl(nats.urls);
});

describe("a NATS node lost mid-stream", () => {
  // Each case puts the two sidecars on two live nodes and kills one of them.
  const cases = [
    { who: "caller's", service: "ticker-a", provider: 1, caller: 2, killed: 2 },
    { who: "provider's", service: "ticker-b", provider: 1, caller: 0, killed: 1 },
  ];
  for (const c of cases) {
    test(`the ${c.who} node dies: the client sees a reset, the provider's app request ends, records say stream_aborted`, async () => {
      let appSide!: (how: string) => void;
      const appEnded = new Promise<string>((r) => (appSide = r));
      let ticks = 0;
      const app = await startStreamingApp((req, res) => {
        res.writeHead(200, { "content-type": "text/event-stream" });
        const timer = setInterval(() => res.write(`data: tick ${++ticks}\n\n`), 50); // why: a stream that never goes quiet on its own
        req.socket.once("close", () => (clearInterval(timer), appSide("closed")));
      });
      const idle = { streamIdleTimeoutMs: 3_000 };
      await startTestSidecar({ service: c.service, app: app.url, nats: [nats.urls[c.provider]!], ...idle });
      const caller = await startTestSidecar({ service: "client", nats: [nats.urls[c.caller]!], ...idle });

      const res = await new Promise<IncomingMessage>((resolve, reject) => {
        const req = httpRequest({ host: "127.0.0.1", port: caller.outbound.port, path: "/ticks", headers: { host: c.service }, agent: false }, resolve);
        req.once("error", reject);
        req.end();
      });
      assert.equal(res.statusCode, 200);
      let firstEvent!: () => void;
      const flowing = new Promise<void>((r) => (firstEvent = r));
      res.on("data", () => firstEvent());
      const clientSide = new Promise<string>((resolve) => {
        res.once("end", () => resolve("end"));
        res.once("aborted", () => resolve("aborted"));
        res.once("error", () => resolve("aborted"));
      });
      await flowing;

      await nats.servers[c.killed]!.kill("SIGKILL");

      assert.equal(await clientSide, "aborted", "a stream cut by a lost node must not look complete");
      assert.equal(await appEnded, "closed");
      await eventually(async () => (await metricSum(caller.registry, "mesh_requests_total", { destination: c.service, code: "stream_aborted" })) === 1);
    });
  }
});
