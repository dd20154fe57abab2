import assert from "node:assert/strict";
import { before, test } from "node:test";
import { startApp, type TestApp } from "./helpers/apps.ts";
import { call, startTestSidecar } from "./helpers/mesh.ts";
import { startNats } from "./helpers/nats.ts";

const apps: TestApp[] = [];
let callerPort: number;

before(async () => {
  const nats = await startNats({ nodes: 1, jetstream: false });
  for (let i = 0; i < 3; i++) {
    const app = await startApp((_req, res) => void res.end(String(i)));
    apps.push(app);
    await startTestSidecar({ service: "pricing", instance: `pricing-${i}`, app: app.url, nats: nats.urls });
  }
  callerPort = (await startTestSidecar({ service: "frontend", nats: nats.urls })).outbound.port;
});

test("a queue group spreads 600 requests over three instances, each getting 20-47%", async () => {
  const counts = [0, 0, 0];
  for (let batch = 0; batch < 60; batch++) {
    await Promise.all(
      Array.from({ length: 10 }, async () => {
        const res = await call(callerPort, "pricing", "/");
        assert.equal(res.statusCode, 200);
        counts[Number(await res.body.text())]!++;
      }),
    );
  }
  assert.equal(counts.reduce((a, b) => a + b), 600);
  for (const [i, n] of counts.entries()) {
    assert.ok(n >= 0.2 * 600 && n <= 0.47 * 600, `instance ${i} got ${n} of 600 (${counts.join("/")})`);
    assert.equal(apps[i]!.seen.length, n, "each answer came from the app that counted it");
  }
});
