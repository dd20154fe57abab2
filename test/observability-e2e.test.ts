// Observability through real sidecars: every sidecar reports telemetry to
// control and access records to MESH_ACCESS by default, and exports spans
// when its config has `otlp`.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import type { NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { ACCESS_STREAM } from "../control/access-stream.ts";
import type { AccessRecord } from "../schemas/index.ts";
import { header, startApp, type TestApp } from "./helpers/apps.ts";
import { startTestControl, type TestControl } from "./helpers/control.ts";
import { call, eventually, runMesh, startTestSidecar, type SidecarOptions } from "./helpers/mesh.ts";
import { connectClient, startNats, type NatsCluster } from "./helpers/nats.ts";
import { metricSum, startOtlpReceiver, type OtlpReceiver } from "./helpers/observability.ts";

let nats: NatsCluster;
let control: TestControl;
let nc: NatsConnection;
let collector: OtlpReceiver;
let stockApps: TestApp[];
let edgeApp: TestApp;
let catalogApp: TestApp;
let frontendPort: number;
let env: NodeJS.ProcessEnv;

const sidecar = (opts: Omit<SidecarOptions, "nats">) => startTestSidecar({ nats: nats.urls, otlp: collector.url, ...opts });

before(async () => {
  nats = await startNats({ nodes: 1 });
  control = await startTestControl(nats.urls);
  nc = await connectClient(nats.urls);
  env = { NATS_URL: nats.urls.join(",") };
  collector = await startOtlpReceiver();
  const statusOf: Record<string, number> = { "/ok": 200, "/missing": 404, "/boom": 500 };
  stockApps = [];
  for (const name of ["stock-a", "stock-b"]) {
    const app = await startApp((req, res) => void res.writeHead(statusOf[req.url] ?? 200).end(name));
    await sidecar({ service: "stock", instance: name, app: app.url });
    stockApps.push(app);
  }
  catalogApp = await startApp((_req, res) => void res.end("catalog"));
  await sidecar({ service: "catalog", app: catalogApp.url });
  // edge's app calls catalog through its own sidecar, passing the trace context on, as instrumented apps do.
  let edgeOutbound = 0;
  edgeApp = await startApp(async (req, res) => {
    const traceparent = header(req, "traceparent")!;
    const answer = await call(edgeOutbound, "catalog", "/", { headers: { traceparent } });
    res.writeHead(answer.statusCode).end(await answer.body.text());
  });
  edgeOutbound = (await sidecar({ service: "edge", app: edgeApp.url })).outbound.port;
  frontendPort = (await sidecar({ service: "frontend" })).outbound.port;
});

const requests = (labels: Record<string, string>) => metricSum(control.registry, "mesh_requests_total", labels);

async function send(path: string, n: number, service = "stock"): Promise<number[]> {
  const statuses: number[] = [];
  for (let k = 0; k < n; k++) {
    const res = await call(frontendPort, service, path);
    await res.body.dump();
    statuses.push(res.statusCode);
  }
  return statuses;
}

async function accessRecords(service: string): Promise<AccessRecord[]> {
  const r = await runMesh(["logs", service, "--since", "10m", "-o", "json"], { env });
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.split("\n").filter(Boolean).map((line) => JSON.parse(line));
}

describe("through real sidecars", () => {
  test("control's counts over two provider instances equal the requests sent, per status code; mesh errors included", async () => {
    const sent = { "200": 20, "404": 5, "500": 3 };
    await send("/ok", sent["200"]);
    await send("/missing", sent["404"]);
    await send("/boom", sent["500"]);
    assert.deepEqual(new Set(await send("/", 2, "nobody")), new Set([503]));
    await eventually(async () => (await requests({ direction: "inbound", destination: "stock", code: "500" })) === sent["500"] && (await requests({ destination: "nobody" })) === 2);
    for (const [code, n] of Object.entries(sent)) {
      assert.equal(await requests({ direction: "outbound", source: "frontend", destination: "stock", code }), n, `outbound ${code}`);
      assert.equal(await requests({ direction: "inbound", source: "frontend", destination: "stock", code }), n, `inbound ${code}`);
    }
    assert.ok(stockApps.every((app) => app.seen.length > 0), "both instances served");
    assert.equal(await requests({ direction: "outbound", destination: "nobody", version: "_", code: "unavailable" }), 2);
    const count = await metricSum(control.registry, "mesh_request_duration_seconds", { direction: "outbound", destination: "stock" }, "mesh_request_duration_seconds_count");
    assert.equal(count, 28);
  });

  test("every request has an access record from each sidecar it passed; mesh errors are logged", async () => {
    const ids = stockApps.flatMap((app) => app.seen.map((req) => header(req, "x-request-id")!));
    assert.equal(ids.length, 28);
    let records: AccessRecord[] = [];
    await eventually(async () => (records = await accessRecords("stock")).length >= 2 * ids.length);
    for (const id of ids) {
      const mine = records.filter((r) => r.requestId === id);
      assert.deepEqual(mine.map((r) => r.direction).sort(), ["inbound", "outbound"], id);
      const out = mine.find((r) => r.direction === "outbound")!;
      assert.equal(out.source, "frontend");
      assert.match(out.instance ?? "", /^stock-[ab]$/);
      assert.equal(out.attempts, 1);
    }
    let failed: AccessRecord[] = [];
    await eventually(async () => (failed = await accessRecords("nobody")).length === 2);
    assert.ok(failed.every((r) => r.meshError === "unavailable" && r.status === 503 && r.direction === "outbound"));
  });

  test("a traceparent crosses two hops: one trace, a client and a server span per hop, each a child of the one before", async () => {
    const traceId = "0af7651916cd43dd8448eb211c80319c";
    const res = await call(frontendPort, "edge", "/", { headers: { traceparent: `00-${traceId}-b7ad6b7169203331-01` } });
    assert.equal(res.statusCode, 200);
    assert.equal(await res.body.text(), "catalog");
    const atEdge = header(edgeApp.seen.at(-1)!, "traceparent")!;
    const atCatalog = header(catalogApp.seen.at(-1)!, "traceparent")!;
    assert.equal(atEdge.split("-")[1], traceId);
    assert.equal(atCatalog.split("-")[1], traceId);

    const spans = () => collector.spans().filter((s) => s.traceId === traceId);
    await eventually(async () => spans().length === 4);
    const find = (service: string, kind: number) => spans().find((s) => s.service === service && s.kind === kind)!;
    const client1 = find("frontend", 3);
    const server1 = find("edge", 2);
    const client2 = find("edge", 3);
    const server2 = find("catalog", 2);
    assert.equal(client1.parentSpanId, "b7ad6b7169203331", "the caller app's span");
    assert.equal(server1.parentSpanId, client1.spanId);
    assert.equal(atEdge.split("-")[2], server1.spanId, "edge's app runs inside the server span");
    assert.equal(client2.parentSpanId, server1.spanId, "edge's outbound call is a child of what edge's app received");
    assert.equal(server2.parentSpanId, client2.spanId);
    assert.equal(atCatalog.split("-")[2], server2.spanId);
  });

  test("with control stopped and the access stream gone, every request still succeeds", async () => {
    await control.kill();
    await (await jetstreamManager(nc)).streams.delete(ACCESS_STREAM);
    await collector.close();
    const statuses = await send("/ok", 50);
    assert.deepEqual(new Set(statuses), new Set([200]));
    const concurrent = await Promise.all(Array.from({ length: 50 }, () => call(frontendPort, "stock", "/ok").then(async (r) => (await r.body.dump(), r.statusCode))));
    assert.deepEqual(new Set(concurrent), new Set([200]));
  });
});
