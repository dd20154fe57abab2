// A NATS node lost mid-stream (issue 11), on a real 3-node cluster: the caller's
// sidecar is connected to one node, the provider's to another, and one of
// those nodes is killed while an event stream flows. What was in flight on
// the lost node is gone; what a client had not yet written, nats.js replays
// after it reconnects. So the stream either ends with an error at both ends (a
// sequence gap, a lost credit running into streamIdleTimeoutMs, or a silent
// peer) or, when nothing was lost, carries on with every event in order. It
// never hangs, never looks complete, and never skips or repeats an event.
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
    test(`the ${c.who} node dies: the stream ends at both ends (stream_aborted) or carries on whole, never hangs or looks complete`, async () => {
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
      // Every tick the client sees, in order; a gap or a repeat would be a corrupted stream.
      const ticksSeen: number[] = [];
      let text = "";
      let onTick: (() => void) | undefined;
      res.setEncoding("utf8").on("data", (chunk: string) => {
        text += chunk;
        for (let end = text.indexOf("\n\n"); end >= 0; end = text.indexOf("\n\n")) {
          ticksSeen.push(Number(/tick (\d+)/.exec(text.slice(0, end))?.[1]));
          text = text.slice(end + 2);
        }
        onTick?.();
      });
      const ticksReach = (n: number) => new Promise<void>((resolve) => (onTick = () => ticksSeen.length >= n && resolve()));
      const clientSide = new Promise<string>((resolve) => {
        res.once("end", () => resolve("end"));
        res.once("aborted", () => resolve("aborted"));
        res.once("error", () => resolve("aborted"));
      });
      await ticksReach(1);
      const beforeKill = ticksSeen.length;

      await nats.servers[c.killed]!.kill("SIGKILL");

      // Barrier: the stream ends, or it carries 20 more events after the loss.
      const verdict = await Promise.race([clientSide, ticksReach(beforeKill + 20).then(() => "carried on")]);
      assert.notEqual(verdict, "end", "a stream cut by a lost node must not look complete");
      assert.deepEqual(ticksSeen, ticksSeen.map((_, i) => ticksSeen[0]! + i), "events arrive in order, none skipped or repeated");
      if (verdict === "aborted") {
        assert.equal(await appEnded, "closed");
        await eventually(async () => (await metricSum(caller.registry, "mesh_requests_total", { destination: c.service, code: "stream_aborted" })) === 1);
      } else {
        res.destroy(); // the client leaves; the provider's app request must end too
        assert.equal(await appEnded, "closed");
      }
    });
  }
});
