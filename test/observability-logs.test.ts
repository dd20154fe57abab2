import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { before, describe, test } from "node:test";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import pino from "pino";
import { Registry } from "prom-client";
import { ACCESS_STREAM, ACCESS_STREAM_LIMITS } from "../control/access-stream.ts";
import type { AccessRecord } from "../schemas/index.ts";
import { createAccessLog, type AccessLogOptions } from "../sidecar/observability/access-log.ts";
import { createTelemetry } from "../sidecar/observability/telemetry.ts";
import { createTracer } from "../sidecar/observability/tracing.ts";
import { onFileEnd } from "./helpers/cleanup.ts";
import { startTestControl } from "./helpers/control.ts";
import { eventually, runMesh, spawnSidecar } from "./helpers/mesh.ts";
import { connectClient, startNats, type NatsCluster } from "./helpers/nats.ts";
import { attribute, metricSum, requestRecord, startOtlpReceiver } from "./helpers/observability.ts";

let nats: NatsCluster;
let nc: NatsConnection;
let env: NodeJS.ProcessEnv;
const logger = pino({ level: "silent" });

before(async () => {
  nats = await startNats({ nodes: 1 });
  await startTestControl(nats.urls);
  nc = await connectClient(nats.urls);
  env = { NATS_URL: nats.urls.join(",") };
});

function accessLog(service: string, instance: string, more: Partial<AccessLogOptions> = {}) {
  const log = createAccessLog({ nc, service, instance, logger, batchMs: 50, ...more });
  onFileEnd(() => log.stop());
  return log;
}

async function logsJson(args: string[]): Promise<AccessRecord[]> {
  const r = await runMesh(["logs", ...args, "-o", "json"], { env });
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.split("\n").filter(Boolean).map((line) => JSON.parse(line));
}

describe("MESH_ACCESS", () => {
  test("control creates the stream on mesh.access.> with age and size limits", async () => {
    const info = await (await jetstreamManager(nc)).streams.info(ACCESS_STREAM);
    assert.deepEqual(info.config.subjects, ["mesh.access.>"]);
    assert.equal(info.config.max_age, ACCESS_STREAM_LIMITS.maxAgeMs * 1e6);
    assert.equal(info.config.max_bytes, ACCESS_STREAM_LIMITS.maxBytes);
    assert.equal(info.config.num_replicas, 1, "min(3, cluster size)");
    await startTestControl(nats.urls); // a second replica at start: idempotent
  });
});

describe("access logs and mesh logs", () => {
  test("every request has a record from each sidecar it passed; mesh logs prints them, mesh errors included", async () => {
    const registry = new Registry();
    const caller = accessLog("shop", "shop-1", { registry });
    const provider = accessLog("stock", "stock-a");
    const ok = Array.from({ length: 5 }, () => requestRecord({ source: "shop", destination: "stock", instance: "stock-a", path: "/items/1?x=1" }));
    for (const r of ok) {
      caller.observe(r);
      // The provider's server span is a child of the caller's client span.
    const [, traceId0, spanId0] = r.traceparent.split("-");
    provider.observe({ ...r, direction: "inbound", durationMs: 1, traceparent: `00-${traceId0}-${"b".repeat(16)}-01`, parentSpanId: spanId0 });
    }
    const failed = requestRecord({ source: "shop", destination: "stock", version: "_", instance: undefined, status: 503, code: "unavailable", meshError: "unavailable", attempts: 3 });
    caller.observe(failed);
    await eventually(async () => caller.stats().published === 6 && provider.stats().published === 5);
    assert.equal(await metricSum(registry, "mesh_access_records_total", { outcome: "published" }), 6);

    const records = await logsJson(["stock"]);
    for (const r of ok) {
      const mine = records.filter((x) => x.requestId === r.requestId);
      assert.deepEqual(mine.map((x) => x.direction).sort(), ["inbound", "outbound"], r.requestId);
      assert.equal(mine[0]!.traceId, r.traceparent.split("-")[1]);
    }
    const error = records.find((x) => x.requestId === failed.requestId)!;
    assert.deepEqual([error.meshError, error.status, error.attempts, error.instance, error.reporter], ["unavailable", 503, 3, null, "shop/shop-1"]);

    const text = await runMesh(["logs", "stock"], { env });
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, new RegExp(`${failed.requestId} out shop -> stock _ - GET /prices/latte\\?size=l 503 3\\.0ms attempts=3 error=unavailable`));
    assert.match(text.stdout, new RegExp(`${ok[0]!.requestId} in  shop -> stock v1 stock-a GET /items/1\\?x=1 200 1\\.0ms attempts=1`));
  });

  test("filters: SERVICE is the callee, --from the caller, --since the age", async () => {
    const log = accessLog("edge", "edge-1");
    const recent = requestRecord({ source: "edge", destination: "search" });
    const old = requestRecord({ source: "edge", destination: "search", startedAt: Date.now() - 20 * 60_000 });
    const other = requestRecord({ source: "batch", destination: "search" });
    for (const r of [recent, old, other]) log.observe(r);
    await eventually(async () => log.stats().published === 3);
    const ids = (records: AccessRecord[]) => records.map((r) => r.requestId).sort();
    assert.deepEqual(ids(await logsJson(["search"])), [recent.requestId, other.requestId].sort(), "the default --since is 5m");
    assert.deepEqual(ids(await logsJson(["search", "--since", "1h"])), [recent.requestId, old.requestId, other.requestId].sort());
    assert.deepEqual(ids(await logsJson(["--from", "edge", "--since", "1h"])), [recent.requestId, old.requestId].sort());
    assert.deepEqual(await logsJson(["nobody-here"]), []);
    assert.equal((await runMesh(["logs", "Bad_Name"], { env })).code, 2);
    assert.equal((await runMesh(["logs", "--since", "yesterday"], { env })).code, 2);
  });

  test("--follow prints records as they arrive until interrupted", async () => {
    const mesh = fileURLToPath(new URL("../bin/mesh.js", import.meta.url));
    const child = spawn(process.execPath, [mesh, "logs", "tail", "--follow", "-o", "json"], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "inherit"] });
    onFileEnd(() => void (child.exitCode === null && child.kill("SIGKILL")));
    const lines: AccessRecord[] = [];
    createInterface({ input: child.stdout }).on("line", (line) => lines.push(JSON.parse(line)));
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    const log = accessLog("shop", "shop-2");
    const r = requestRecord({ source: "shop", destination: "tail" });
    // The consumer may start after the first publish: keep sending until one shows up.
    await eventually(async () => {
      log.observe({ ...r });
      return lines.some((l) => l.requestId === r.requestId);
    });
    child.kill("SIGINT");
    assert.equal(await exited, 0);
  });

  test("without a stream records are dropped and counted; observe never throws and memory stays bounded", async () => {
    const bare = await startNats({ nodes: 1, jetstream: false });
    const conn = await connect({ servers: bare.urls, noAsyncTraces: true });
    onFileEnd(() => conn.close());
    const log = createAccessLog({ nc: conn, service: "shop", instance: "shop-3", logger, batchMs: 20, maxBatch: 10, maxBuffered: 100 });
    onFileEnd(() => log.stop());
    for (let k = 0; k < 1000; k++) log.observe(requestRecord());
    assert.ok(log.stats().buffered <= 100);
    await eventually(async () => log.stats().dropped === 1000);
    assert.equal(log.stats().published, 0);
  });
});

describe("tracing", () => {
  test("nothing is exported without an OTLP endpoint", () => {
    assert.equal(createTracer({ otlpUrl: undefined, service: "shop", instance: "shop-1", logger }), undefined);
  });

  test("client and server spans are posted as OTLP/HTTP JSON, sharing the trace id", async () => {
    const collector = await startOtlpReceiver();
    const caller = createTracer({ otlpUrl: collector.url, service: "shop", instance: "shop-1", logger, batchMs: 50 })!;
    const provider = createTracer({ otlpUrl: `${collector.url}/v1/traces`, service: "stock", instance: "stock-a", logger, batchMs: 50 })!;
    const r = requestRecord({ source: "shop", destination: "stock" });
    caller.observe({ ...r, parentSpanId: "a3ce929d0e0e4736" });
    // The provider's server span is a child of the caller's client span.
    const [, traceId0, spanId0] = r.traceparent.split("-");
    provider.observe({ ...r, direction: "inbound", durationMs: 1, traceparent: `00-${traceId0}-${"b".repeat(16)}-01`, parentSpanId: spanId0 });
    caller.observe(requestRecord({ traceparent: r.traceparent.replace(/-01$/, "-00") }));
    await eventually(async () => collector.spans().length === 2);
    await Promise.all([caller.stop(), provider.stop()]);
    assert.deepEqual(collector.posts.map((p) => [p.path, p.contentType]), [["/v1/traces", "application/json"], ["/v1/traces", "application/json"]]);
    const client = collector.spans().find((s) => s.kind === 3)!;
    const server = collector.spans().find((s) => s.kind === 2)!;
    const [, traceId, spanId] = r.traceparent.split("-");
    assert.deepEqual([client.service, client.traceId, client.spanId, client.parentSpanId], ["shop", traceId, spanId, "a3ce929d0e0e4736"]);
    assert.deepEqual([server.service, server.traceId, server.spanId, server.parentSpanId], ["stock", traceId, "b".repeat(16), spanId]);
    assert.equal(attribute(client, "mesh.request_id"), r.requestId);
    assert.equal(caller.stats().exported, 1, "the unsampled request was not exported");
  });

  test("a collector that is down costs spans, counted, never an exception", async () => {
    const tracer = createTracer({ otlpUrl: "http://127.0.0.1:1", service: "shop", instance: "shop-1", logger, batchMs: 20, maxQueued: 50 })!;
    for (let k = 0; k < 200; k++) tracer.observe(requestRecord());
    assert.ok(tracer.stats().queued <= 50);
    await eventually(async () => tracer.stats().dropped === 200);
    await tracer.stop();
  });
});

describe("process logs", () => {
  test("sidecar and control log JSON lines sharing component, service and instance", async () => {
    const sidecar = await spawnSidecar(["--service", "loggy", "--nats", nats.urls[0]!]);
    const started = sidecar.logs.find((l) => l.msg === "sidecar started")!;
    assert.equal(started.component, "sidecar");
    assert.equal(started.service, "loggy");
    assert.match(String(started.instance), /.+/);
    sidecar.process.kill("SIGTERM");
    await sidecar.exited;

    const mesh = fileURLToPath(new URL("../bin/mesh.js", import.meta.url));
    const control = spawn(process.execPath, [mesh, "control", "--nats", nats.urls[0]!, "--admin", "127.0.0.1:0"], { stdio: ["ignore", "pipe", "inherit"] });
    onFileEnd(() => void (control.exitCode === null && control.kill("SIGKILL")));
    const line = await new Promise<Record<string, unknown>>((resolve) =>
      createInterface({ input: control.stdout }).on("line", (l) => {
        const entry = JSON.parse(l);
        if (entry.msg === "control started") resolve(entry);
      }),
    );
    assert.equal(line.component, "control");
    assert.equal(line.service, "mesh-control");
    assert.match(String(line.instance), /.+/);
    control.kill("SIGTERM");
  });
});

describe("telemetry without NATS", () => {
  test("a closed connection: observe, count, flush and stop never throw", async () => {
    const conn = await connect({ servers: nats.urls, noAsyncTraces: true });
    await conn.close();
    const t = createTelemetry({ nc: conn, service: "shop", instance: "shop-9", version: "v1", logger, intervalMs: 10 });
    for (let k = 0; k < 100; k++) t.observe(requestRecord());
    t.count("retries", { source: "shop", destination: "stock" });
    t.flush();
    await t.stop();
  });
});
