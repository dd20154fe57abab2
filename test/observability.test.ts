import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { before, describe, test } from "node:test";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import pino from "pino";
import { controlRequest } from "../cli/client.ts";
import { DURATION_BUCKETS_SECONDS, telemetrySubject, type TelemetryReport } from "../schemas/index.ts";
import { createTelemetry, type Telemetry } from "../sidecar/observability/telemetry.ts";
import { onFileEnd } from "./helpers/cleanup.ts";
import { startTestControl, type TestControl } from "./helpers/control.ts";
import { eventually, runMesh } from "./helpers/mesh.ts";
import { connectClient, startNats, type NatsCluster } from "./helpers/nats.ts";
import { metricSum, requestRecord, samples } from "./helpers/observability.ts";

let nats: NatsCluster;
let control: TestControl;
let nc: NatsConnection;
const logger = pino({ level: "silent" });

before(async () => {
  nats = await startNats({ nodes: 1 });
  control = await startTestControl(nats.urls);
  nc = await connectClient(nats.urls);
});

/** A sidecar's telemetry on its own connection, reporting every 100 ms. */
async function sidecarTelemetry(service: string, instance: string): Promise<Telemetry> {
  const conn = await connect({ servers: nats.urls, noAsyncTraces: true });
  const telemetry = createTelemetry({ nc: conn, service, instance, version: "v1", logger, intervalMs: 100 });
  onFileEnd(async () => {
    await telemetry.stop();
    await conn.close();
  });
  return telemetry;
}

const requests = (labels: Record<string, string>, sample?: string) => metricSum(control.registry, "mesh_requests_total", labels, sample);

describe("mesh-wide metrics on control's /metrics", () => {
  test("deltas of a caller and two provider instances add up to the requests sent, per status code", async () => {
    const caller = await sidecarTelemetry("shop", "shop-1");
    const providers = [await sidecarTelemetry("stock", "stock-a"), await sidecarTelemetry("stock", "stock-b")];
    const sent = { "200": 30, "404": 7, "500": 3 };
    let i = 0;
    for (const [code, n] of Object.entries(sent)) {
      for (let k = 0; k < n; k++, i++) {
        const r = { source: "shop", destination: "stock", status: Number(code), code, durationMs: 3, instance: `stock-${i % 2 ? "b" : "a"}` };
        caller.observe(requestRecord({ ...r, direction: "outbound" }));
        providers[i % 2]!.observe(requestRecord({ ...r, direction: "inbound" }));
      }
    }
    for (let k = 0; k < 4; k++) caller.observe(requestRecord({ source: "shop", destination: "stock", version: "_", status: 503, code: "unavailable", meshError: "unavailable", instance: undefined }));

    await eventually(async () => (await requests({ source: "shop", code: "unavailable" })) === 4 && (await requests({ direction: "inbound", destination: "stock", code: "500" })) === 3);
    for (const [code, n] of Object.entries(sent)) {
      assert.equal(await requests({ direction: "outbound", source: "shop", destination: "stock", code }), n, `outbound ${code}`);
      assert.equal(await requests({ direction: "inbound", source: "shop", destination: "stock", code }), n, `inbound ${code}, both instances together`);
    }
    const h = (sample: string, extra: Record<string, string> = {}) =>
      metricSum(control.registry, "mesh_request_duration_seconds", { direction: "outbound", destination: "stock", code: "200", ...extra }, `mesh_request_duration_seconds_${sample}`);
    assert.equal(await h("count"), 30);
    assert.ok(Math.abs((await h("sum")) - 30 * 0.003) < 1e-9);
    assert.equal(await h("bucket", { le: "0.005" }), 30, "3 ms falls in the 5 ms bucket");
    assert.equal(await h("bucket", { le: "0.0025" }), 0);
    assert.equal(await h("bucket", { le: "+Inf" }), 30);
  });

  test("retries, authz and quota decisions are counted; breakers are counted per state and forgotten when their sidecar stops", async () => {
    const a = await sidecarTelemetry("cart", "cart-1");
    const b = await sidecarTelemetry("cart", "cart-2");
    for (let k = 0; k < 3; k++) a.count("retries", { source: "cart", destination: "stock" });
    a.count("authz", { service: "cart", caller: "web", decision: "deny" }, 2);
    b.count("quota", { service: "cart", caller: "web", decision: "denied" });
    a.gauge("breaker_state", { source: "cart", destination: "stock", version: "v1" }, 1);
    b.gauge("breaker_state", { source: "cart", destination: "stock", version: "v1" }, 0);
    const breakers = (state: string) => metricSum(control.registry, "mesh_circuit_breakers", { source: "cart", destination: "stock", version: "v1", state });
    await eventually(async () => (await breakers("open")) === 1 && (await breakers("closed")) === 1);
    assert.equal(await metricSum(control.registry, "mesh_retries_total", { source: "cart", destination: "stock" }), 3);
    assert.equal(await metricSum(control.registry, "mesh_authz_decisions_total", { service: "cart", caller: "web", decision: "deny" }), 2);
    assert.equal(await metricSum(control.registry, "mesh_quota_decisions_total", { service: "cart", caller: "web", decision: "denied" }), 1);

    await a.stop();
    await eventually(async () => (await breakers("open")) === 0);
    assert.equal(await breakers("closed"), 1);
  });

  test("a repeated report counts once, a gap is counted as lost, garbage is skipped", async () => {
    const outcome = (o: string) => metricSum(control.registry, "mesh_telemetry_reports_total", { outcome: o });
    const before = { duplicate: await outcome("duplicate"), malformed: await outcome("malformed"), lost: await metricSum(control.registry, "mesh_telemetry_reports_lost_total") };
    const report = (seq: number): TelemetryReport => ({
      v: 1, service: "replay", version: "v1", instance: "r-1", boot: "boot-1", seq, at: Date.now(), intervalMs: 2000, le: [...DURATION_BUCKETS_SECONDS],
      requests: [["outbound", "replay", "stock", "v1", "GET", "200", 5, 0.05, DURATION_BUCKETS_SECONDS.map(() => 0).concat([5])]],
      counters: [], gauges: [], droppedSeries: 0, final: false,
    });
    const subject = telemetrySubject("replay", "r-1");
    for (const seq of [1, 1, 3]) nc.publish(subject, JSON.stringify(report(seq)));
    nc.publish(subject, "{not json");
    nc.publish(subject, JSON.stringify({ ...report(4), requests: [["too", "short"]] }));
    await eventually(async () => (await outcome("malformed")) === before.malformed + 2);
    assert.equal(await requests({ source: "replay" }), 10, "seq 1 once, seq 3");
    assert.equal(await outcome("duplicate"), before.duplicate + 1);
    assert.equal(await metricSum(control.registry, "mesh_telemetry_reports_lost_total"), before.lost + 1, "seq 2 never came");
  });
});

describe("the Grafana dashboard", () => {
  test("every metric it queries is one control exposes", async () => {
    const dashboard = JSON.parse(await readFile(new URL("../dashboards/natsmesh.json", import.meta.url), "utf8"));
    const exprs: string[] = JSON.stringify(dashboard).match(/mesh_[a-z_]+/g) ?? [];
    const exposed = new Set((await control.registry.getMetricsAsJSON()).map((m) => m.name));
    const used = new Set(exprs.map((name) => name.replace(/_(bucket|sum|count)$/, "")));
    assert.ok(used.size >= 8);
    for (const name of used) assert.ok(exposed.has(name), `${name} is not on control's /metrics`);
  });
});

describe("several control replicas", () => {
  test("exactly one exposes the mesh metrics, so summing every replica's scrape counts each request once; another takes over when it stops", async () => {
    const second = await startTestControl(nats.urls);
    assert.equal(control.telemetry.leader(), true);
    assert.equal(second.telemetry.leader(), false);
    assert.equal(await metricSum(second.registry, "mesh_control_telemetry_leader"), 0);
    const t = await sidecarTelemetry("ha", "ha-1");
    for (let k = 0; k < 5; k++) t.observe(requestRecord({ source: "ha", destination: "stock" }));
    const total = async () => (await metricSum(control.registry, "mesh_requests_total", { source: "ha" })) + (await metricSum(second.registry, "mesh_requests_total", { source: "ha" }));
    await eventually(async () => (await total()) === 5);
    assert.deepEqual(await samples(second.registry, "mesh_requests_total"), [], "the other replica shows no mesh series");
    // Both merged the deltas, so either can answer `mesh top`.
    assert.equal(second.telemetry.stats({ service: "ha" }).pairs[0]?.requests, 5);

    await control.kill();
    await eventually(async () => second.telemetry.leader(), 10_000);
    assert.equal(await metricSum(second.registry, "mesh_requests_total", { source: "ha" }), 5, "the new leader had the totals all along");
    assert.equal(await metricSum(second.registry, "mesh_control_telemetry_leader"), 1);
    control = second;
  });
});

describe("mesh top", () => {
  test("the stats verb and mesh top --once: rate, success rate and percentiles per service pair", async () => {
    const t = await sidecarTelemetry("web", "web-1");
    for (let k = 0; k < 20; k++) t.observe(requestRecord({ source: "web", destination: "api", durationMs: 8 }));
    for (let k = 0; k < 5; k++) t.observe(requestRecord({ source: "web", destination: "api", status: 503, code: "unavailable", meshError: "unavailable", durationMs: 1 }));
    for (let k = 0; k < 5; k++) t.observe(requestRecord({ source: "web", destination: "api", status: 404, code: "404", durationMs: 8 }));
    t.observe(requestRecord({ direction: "inbound", source: "web", destination: "api" }));
    await eventually(async () => (await controlRequest(nc, "stats", { service: "api" })).pairs[0]?.requests === 30);
    const [pair] = (await controlRequest(nc, "stats", { service: "web", windowSeconds: 60 })).pairs;
    assert.equal(pair!.source, "web");
    assert.equal(pair!.destination, "api");
    assert.ok(Math.abs(pair!.successRate! - 25 / 30) < 1e-9, "404 is a success, the mesh's 503 is not");
    assert.ok(pair!.p50Ms! > 5 && pair!.p50Ms! <= 10);
    assert.ok(pair!.rps > 0);

    const env = { NATS_URL: nats.urls.join(",") };
    let r = await runMesh(["top", "web", "--once"], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /SOURCE\s+DESTINATION\s+RPS\s+SUCCESS\s+P50\s+P99\s+REQUESTS/);
    assert.match(r.stdout, /web\s+api\s+\d+\.\d\s+83\.33%\s+\S+ms\s+\S+ms\s+30/);
    r = await runMesh(["top", "web", "--once", "-o", "json"], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).pairs[0].requests, 30);
    r = await runMesh(["top", "--window", "soon"], { env });
    assert.equal(r.code, 2);
  });

  test("mesh top without control exits 3", async () => {
    const r = await runMesh(["top", "--once"], { env: { NATS_URL: "nats://127.0.0.1:1" } });
    assert.equal(r.code, 3);
  });
});
