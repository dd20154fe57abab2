import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { startApp, type TestApp } from "./helpers/apps.ts";
import { call, startTestSidecar, freePort } from "./helpers/mesh.ts";
import { startNats, type NatsCluster } from "./helpers/nats.ts";

let nats: NatsCluster;
let slow: TestApp;
let callerPort: number;
let caller: Awaited<ReturnType<typeof startTestSidecar>>;

before(async () => {
  nats = await startNats({ nodes: 1, jetstream: false });
  slow = await startApp((req, res) => {
    const ms = Number(new URL(req.url, "http://x").searchParams.get("sleep") ?? 0);
    setTimeout(() => res.end("late"), ms); // why: an app that answers late is what the deadline tests are about
  });
  await startTestSidecar({ service: "slow", app: slow.url, nats: nats.urls });
  // Answers its health probe (GET /) but drops every other request's connection.
  const broken = await startApp((req, res) => (req.url === "/" ? void res.end("up") : void res.socket?.destroy()));
  await startTestSidecar({ service: "broken", app: broken.url, nats: nats.urls });
  caller = await startTestSidecar({ service: "frontend", nats: nats.urls, requestTimeoutMs: 1500 });
  callerPort = caller.outbound.port;
});

async function meshError(res: Awaited<ReturnType<typeof call>>) {
  const body = (await res.body.json()) as { error: string; message: string };
  assert.equal(res.headers["mesh-error"], body.error, "header and body agree");
  assert.equal(res.headers["content-type"], "application/json");
  assert.ok(body.message.length > 0);
  return { status: res.statusCode, code: body.error, message: body.message };
}

describe("mesh errors (DESIGN §3)", () => {
  test("bad_target 400 when the request names no service", async () => {
    const res = await call(callerPort, "127.0.0.1:1234", "/x");
    assert.deepEqual(await meshError(res).then((e) => [e.status, e.code]), [400, "bad_target"]);
  });

  test("unavailable 503 at once when no instance subscribes, not after the deadline", async () => {
    const res = await call(callerPort, "nobody", "/x", { headers: { "x-mesh-timeout-ms": "60000" } });
    const e = await meshError(res);
    assert.deepEqual([e.status, e.code], [503, "unavailable"]);
    assert.match(e.message, /no instance of 'nobody'/);
    // Had the mesh waited for an answer, the caller's 1.5 s deadline would have made this a timeout.
  });

  test("app_unreachable 502 when the provider's application is down", async () => {
    const e = await meshError(await call(callerPort, "broken", "/x"));
    assert.deepEqual([e.status, e.code], [502, "app_unreachable"]);
  });

  test("timeout 504 when the caller lowers the deadline with x-mesh-timeout-ms", async () => {
    const e = await meshError(await call(callerPort, "slow", "/?sleep=1000", { headers: { "x-mesh-timeout-ms": "100" } }));
    assert.deepEqual([e.status, e.code], [504, "timeout"]);
  });

  test("timeout 504 at the sidecar's default deadline", async () => {
    const e = await meshError(await call(callerPort, "slow", "/?sleep=3000"));
    assert.deepEqual([e.status, e.code], [504, "timeout"]);
    assert.match(e.message, /within 1[0-5]\d\d ms/);
  });

  test("x-mesh-timeout-ms can lower the deadline but never raise it", async () => {
    const e = await meshError(await call(callerPort, "slow", "/?sleep=3000", { headers: { "x-mesh-timeout-ms": "999999" } }));
    assert.equal(e.code, "timeout");
    // The provider's sidecar stops waiting at the same deadline, a few ms after the request left.
    assert.match(e.message, /within 1[0-5]\d\d ms/);
  });

  test("a request within its deadline is answered by the app", async () => {
    const res = await call(callerPort, "slow", "/?sleep=50", { headers: { "x-mesh-timeout-ms": "1000" } });
    assert.equal(res.statusCode, 200);
    assert.equal(await res.body.text(), "late");
  });

  test("every outcome is counted in mesh_requests_total with direction, source, destination, version, method, code", async () => {
    const text = await caller.registry.metrics();
    const has = (labels: string) => assert.ok(text.includes(`mesh_requests_total{${labels}}`), `missing ${labels}`);
    has('direction="outbound",source="frontend",destination="nobody",version="_",method="GET",code="unavailable"');
    has('direction="outbound",source="frontend",destination="broken",version="v1",method="GET",code="app_unreachable"');
    has('direction="outbound",source="frontend",destination="slow",version="_",method="GET",code="timeout"');
    has('direction="outbound",source="frontend",destination="slow",version="v1",method="GET",code="200"');
    assert.match(text, /mesh_request_duration_seconds_bucket\{le="0\.005",direction="outbound"/);
  });
});

describe("admin listener", () => {
  test("/healthz, /readyz and /metrics", async () => {
    const provider = await startTestSidecar({ service: "probe", app: slow.url, nats: nats.urls });
    const admin = `http://127.0.0.1:${provider.admin.port}`;
    assert.equal((await fetch(`${admin}/healthz`)).status, 200);
    assert.deepEqual(await (await fetch(`${admin}/readyz`)).json(), { ready: true, reasons: [] });
    await call(callerPort, "probe", "/").then((r) => r.body.dump());
    const metrics = await (await fetch(`${admin}/metrics`)).text();
    assert.match(metrics, /mesh_requests_total\{direction="inbound",source="frontend",destination="probe",version="v1",method="GET",code="200"\} 1/);
  });

  test("/readyz is 503 while the app does not answer", async () => {
    const provider = await startTestSidecar({ service: "broken", app: `http://127.0.0.1:${await freePort()}`, nats: nats.urls });
    const res = await fetch(`http://127.0.0.1:${provider.admin.port}/readyz`);
    assert.equal(res.status, 503);
    const body = (await res.json()) as { reasons: string[] };
    assert.match(body.reasons.join(), /does not answer/);
  });

  test("/readyz is 503 once draining", async () => {
    const provider = await startTestSidecar({ service: "drainme", app: slow.url, nats: nats.urls });
    const admin = `http://127.0.0.1:${provider.admin.port}/readyz`;
    const draining = provider.drain();
    const res = await fetch(admin).catch(() => undefined);
    // Either the admin listener still answers "not ready", or it is already gone.
    if (res) assert.equal(res.status, 503);
    await draining;
  });
});
