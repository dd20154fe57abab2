import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import type { NatsConnection } from "@nats-io/transport-node";
import { TELEMETRY_LIMITS } from "../control/telemetry-limits.ts";
import { DURATION_BUCKETS_SECONDS, telemetrySubject, type NamedRow, type RequestRow, type TelemetryReport } from "../schemas/index.ts";
import { Pool } from "undici";
import { LABEL_LIMITS, OVERFLOW_LABEL } from "../sidecar/observability/labels.ts";
import { startTestControl, type TestControl } from "./helpers/control.ts";
import { eventually, startTestSidecar } from "./helpers/mesh.ts";
import { connectClient, startNats, type NatsCluster } from "./helpers/nats.ts";
import { metricSum, samples } from "./helpers/observability.ts";

/** Telemetry and access records as a thief of one sidecar's credentials would send them: raw NATS, no sidecar. */
let nats: NatsCluster;
let control: TestControl;
let nc: NatsConnection;

before(async () => {
  nats = await startNats({ nodes: 1 });
  control = await startTestControl(nats.urls);
  nc = await connectClient(nats.urls);
});

const ZERO_BUCKETS = DURATION_BUCKETS_SECONDS.map(() => 0);
const row = (direction: string, source: string, destination: string, code = "200", n = 1): RequestRow => [direction, source, destination, "v1", "GET", code, n, 0.001 * n, [...ZERO_BUCKETS, n]];

let boot = 0;
function report(service: string, instance: string, over: Partial<TelemetryReport> = {}): TelemetryReport {
  return {
    v: 1, service, version: "v1", instance, boot: `boot-${++boot}`, seq: 1, at: Date.now(), intervalMs: 2000, le: [...DURATION_BUCKETS_SECONDS],
    requests: [], counters: [], gauges: [], droppedSeries: 0, final: false, ...over,
  };
}

const metric = (name: string, labels: Record<string, string> = {}) => metricSum(control.registry, name, labels);
const outcome = (o: string) => metric("mesh_telemetry_reports_total", { outcome: o });
const rejected = (reason: string) => metric("mesh_telemetry_rows_rejected_total", { reason });

/** Publishes reports and waits until control has counted all of them (accepted or not): the barrier. */
async function publish(subject: string, ...reports: TelemetryReport[]): Promise<void> {
  const total = async () => (await metric("mesh_telemetry_reports_total"));
  const before = await total();
  for (const r of reports) nc.publish(subject, JSON.stringify(r));
  await eventually(async () => (await total()) === before + reports.length);
}

describe("telemetry rows are bound to the subject's service", () => {
  test("a thief of 'thief' cannot count requests, retries, decisions or breakers of 'victim'", async () => {
    const before = { notOwn: await rejected("not_own_service") };
    const counters: NamedRow[] = [
      ["retries", ["victim", "stock"], 5],
      ["authz", ["victim", "web", "deny"], 5],
      ["quota", ["victim", "web", "denied"], 5],
      ["retries", ["thief", "stock"], 1],
    ];
    const gauges: NamedRow[] = [["breaker_state", ["victim", "stock", "v1"], 1]];
    const forged = report("thief", "t-1", {
      requests: [row("outbound", "victim", "stock"), row("inbound", "victim", "stock"), row("inbound", "victim", "victim"), row("sideways", "thief", "thief"), row("outbound", "thief", "stock"), row("inbound", "web", "thief")],
      counters,
      gauges,
    });
    await publish(telemetrySubject("thief", "t-1"), forged);
    assert.equal(await rejected("not_own_service"), before.notOwn + 8);
    assert.equal(await metric("mesh_requests_total", { source: "victim" }), 0);
    assert.equal(await metric("mesh_requests_total", { destination: "victim" }), 0);
    for (const name of ["mesh_retries_total", "mesh_circuit_breakers"]) assert.equal(await metric(name, { source: "victim" }), 0, name);
    for (const name of ["mesh_authz_decisions_total", "mesh_quota_decisions_total"]) assert.equal(await metric(name, { service: "victim" }), 0, name);
    // Its own rows went in: the rejection is per row, not per report.
    assert.equal(await metric("mesh_requests_total", { direction: "outbound", source: "thief" }), 1);
    assert.equal(await metric("mesh_requests_total", { direction: "inbound", destination: "thief" }), 1);
    assert.equal(await metric("mesh_retries_total", { source: "thief" }), 1);
  });

  test("a report naming another service or instance than its subject is rejected whole", async () => {
    const before = await outcome("wrong_subject");
    await publish(telemetrySubject("thief", "t-2"), report("victim", "t-2", { requests: [row("outbound", "victim", "stock")] }), report("thief", "other", { requests: [row("outbound", "thief", "wrongsub")] }));
    assert.equal(await outcome("wrong_subject"), before + 2);
    assert.equal(await metric("mesh_requests_total", { source: "victim" }), 0);
    assert.equal(await metric("mesh_requests_total", { destination: "wrongsub" }), 0);
  });
});

describe("control's merge is bounded", () => {
  test("rows beyond the per-report limit are rejected and counted", async () => {
    const before = await rejected("report_limit");
    const n = TELEMETRY_LIMITS.rowsPerReport + 100;
    const rows = Array.from({ length: n }, (_, i) => row("outbound", "bulky", `d${i}`));
    await publish(telemetrySubject("bulky", "b-1"), report("bulky", "b-1", { requests: rows }));
    assert.equal(await rejected("report_limit"), before + 100);
    assert.equal(await metric("mesh_requests_total", { source: "bulky" }), TELEMETRY_LIMITS.rowsPerReport);
  });

  test("one instance creates at most seriesPerInstance series; existing series still count", async () => {
    const before = await rejected("instance_limit");
    const per = TELEMETRY_LIMITS.rowsPerReport;
    const reports = Math.ceil(TELEMETRY_LIMITS.seriesPerInstance / per) + 1;
    const first = report("spray", "s-1");
    const all = Array.from({ length: reports }, (_, k) => ({ ...first, seq: k + 1, requests: Array.from({ length: per }, (_, i) => row("outbound", "spray", `x${k * per + i}`)) }));
    await publish(telemetrySubject("spray", "s-1"), ...all);
    const created = TELEMETRY_LIMITS.seriesPerInstance;
    assert.equal(await rejected("instance_limit"), before + reports * per - created);
    assert.equal(await metric("mesh_requests_total", { source: "spray" }), created);
    // A series it already has keeps counting.
    await publish(telemetrySubject("spray", "s-1"), { ...first, seq: reports + 1, requests: [row("outbound", "spray", "x0", "200", 4)] });
    assert.equal(await metric("mesh_requests_total", { source: "spray", destination: "x0" }), 5);
    assert.equal(await rejected("instance_limit"), before + reports * per - created);
  });
});

describe("labels from input are bounded", () => {
  test("20 000 unknown Host names through a real caller: its /metrics, control's series and RSS stay bounded", async () => {
    const caller = await startTestSidecar({ service: "flooder", nats: nats.urls });
    const pool = new Pool(`http://127.0.0.1:${caller.outbound.port}`, { connections: 32 });
    const names = 20_000;
    const rssBefore = process.memoryUsage().rss;
    let next = 0;
    const statuses = new Map<number, number>();
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (next < names) {
          const i = next++;
          const res = await pool.request({ path: "/", method: "GET", headers: { host: `unknown-${i}` } });
          await res.body.dump();
          statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
        }
      }),
    );
    await pool.close();
    assert.deepEqual([...statuses], [[503, names]], "every one answered: no such service");

    const series = await samples(caller.registry, "mesh_requests_total", { direction: "outbound" });
    const destinations = new Set(series.map((s) => String(s.labels.destination)));
    assert.ok(destinations.size <= LABEL_LIMITS.unansweredDestinations + 1, `${destinations.size} destinations`);
    assert.ok(destinations.has(OVERFLOW_LABEL));
    assert.equal(series.reduce((n, s) => n + s.value, 0), names, "every request still counted");
    assert.equal(await metricSum(caller.registry, "mesh_label_overflow_total", { label: "destination" }), names - LABEL_LIMITS.unansweredDestinations);
    const text = await caller.registry.metrics();
    assert.ok(text.length < 512 * 1024, `/metrics is ${text.length} bytes`);
    // A bound on growth, not a timing: unbounded, this run grew by gigabytes.
    const grownMiB = (process.memoryUsage().rss - rssBefore) / 1024 / 1024;
    assert.ok(grownMiB < 256, `RSS grew by ${grownMiB.toFixed(0)} MiB`);

    // Control merged the same bounded labels from the caller's telemetry.
    await eventually(async () => (await metric("mesh_requests_total", { source: "flooder" })) === names, 15_000);
    const merged = await samples(control.registry, "mesh_requests_total", { source: "flooder" });
    assert.ok(merged.length <= LABEL_LIMITS.unansweredDestinations + 1, `${merged.length} series at control`);
  });
});
