import assert from "node:assert/strict";
import type { ServerResponse } from "node:http";
import { test } from "node:test";
import { startApp } from "./helpers/apps.ts";
import { call, eventually, spawnSidecar, startTestSidecar } from "./helpers/mesh.ts";
import { startNats } from "./helpers/nats.ts";

test("SIGTERM with 50 requests in flight: all 50 are answered by the app, then the sidecar exits 0", async () => {
  const nats = await startNats({ nodes: 1, jetstream: false });
  const held: ServerResponse[] = [];
  const app = await startApp((req, res) => {
    if (req.url === "/hold") held.push(res);
    else res.end("ok");
  });
  const provider = await spawnSidecar(["--service", "orders", "--app", app.url, "--nats", nats.urls.join(",")]);
  const caller = await startTestSidecar({ service: "frontend", nats: nats.urls });
  await eventually(async () => (await call(caller.outbound.port, "orders", "/warm").then((r) => r.body.dump().then(() => r.statusCode))) === 200);

  const inFlight = Array.from({ length: 50 }, (_, i) =>
    call(caller.outbound.port, "orders", "/hold", { headers: { "x-n": String(i) } }).then(async (r) => ({
      status: r.statusCode,
      body: await r.body.text(),
      meshError: r.headers["mesh-error"],
    })),
  );
  await eventually(async () => held.length === 50);

  provider.process.kill("SIGTERM");
  // Draining means leaving the queue groups: new requests find no instance.
  await eventually(async () => {
    const r = await call(caller.outbound.port, "orders", "/after");
    await r.body.dump();
    return r.headers["mesh-error"] === "unavailable";
  });
  assert.equal(provider.process.exitCode, null, "still running while requests are in flight");

  for (const [i, res] of held.entries()) res.end(`answer ${i}`);
  const answers = await Promise.all(inFlight);
  assert.equal(answers.length, 50);
  for (const a of answers) {
    assert.equal(a.status, 200);
    assert.equal(a.meshError, undefined);
    assert.match(a.body, /^answer \d+$/);
  }
  assert.equal(await provider.exited, 0);
  assert.ok(provider.logs.some((l) => l.msg === "drained"));
});
