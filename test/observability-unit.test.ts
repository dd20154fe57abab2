import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { DURATION_BUCKETS_SECONDS, accessFilter, accessSubject, parseTelemetryReport, type TelemetryReport } from "../schemas/index.ts";
import { quantile, rebinner } from "../control/merged-metrics.ts";
import { RecentTraffic, isFailure } from "../control/recent-traffic.ts";
import { formatAccessRecord } from "../cli/commands/logs.ts";
import { renderTop } from "../cli/commands/top.ts";
import { toAccessRecord } from "../sidecar/observability/access-log.ts";
import { bucketIndex } from "../sidecar/observability/telemetry.ts";
import { exportRequest, toOtlpSpan, tracesUrl } from "../sidecar/observability/tracing.ts";
import type { RequestRecord } from "../sidecar/observability/request-record.ts";
import { requestRecord } from "./helpers/observability.ts";

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const rec = (over: Partial<RequestRecord> = {}) => requestRecord({ traceparent: `00-${TRACE}-00f067aa0ba902b7-01`, startedAt: Date.parse("2026-01-02T03:04:05.678Z"), durationMs: 12.5, ...over });

describe("histograms", () => {
  test("bucketIndex: the first bound >= the value, +Inf last", () => {
    assert.equal(bucketIndex(0), 0);
    assert.equal(bucketIndex(0.0005), 0);
    assert.equal(bucketIndex(0.003), 3);
    assert.equal(bucketIndex(31), DURATION_BUCKETS_SECONDS.length);
  });

  test("rebinner keeps counts when bounds agree and moves them up when they do not", () => {
    assert.deepEqual(rebinner([0.1, 1], [0.1, 1])([1, 2, 3]), [1, 2, 3]);
    assert.deepEqual(rebinner([0.05, 0.1, 2], [0.1, 1])([1, 2, 3, 4]), [3, 0, 7]);
  });

  test("quantile interpolates inside the bucket, like histogram_quantile", () => {
    assert.equal(quantile(0.5, [1, 2], [0, 10, 0]), 1.5);
    assert.equal(quantile(0.99, [1, 2], [0, 0, 5]), 2, "+Inf answers the last finite bound");
    assert.equal(quantile(0.5, [1, 2], [0, 0, 0]), undefined);
  });
});

describe("telemetry report contract", () => {
  const good = (): TelemetryReport => ({
    v: 1, service: "frontend", version: "v1", instance: "f-1", boot: "b", seq: 1, at: 1, intervalMs: 2000, le: [0.1, 1],
    requests: [["outbound", "frontend", "pricing", "v1", "GET", "200", 3, 0.3, [1, 2, 0]]],
    counters: [["retries", ["frontend", "pricing"], 2]], gauges: [["breaker_state", ["frontend", "pricing", "v1"], 1]],
    droppedSeries: 0, final: false,
  });

  test("accepts a well-formed report", () => assert.ok(parseTelemetryReport(good())));

  test("rejects wrong shapes instead of merging them", () => {
    const bad: Array<(r: any) => void> = [
      (r) => (r.v = 2),
      (r) => (r.requests[0][8] = [1, 2]),
      (r) => (r.requests[0][6] = -1),
      (r) => (r.counters[0][0] = "bogus"),
      (r) => (r.counters[0][1] = ["only-one"]),
      (r) => (r.gauges[0][0] = "retries"),
      (r) => (r.seq = 1.5),
      (r) => (r.service = "x".repeat(300)),
    ];
    for (const spoil of bad) {
      const r = good();
      spoil(r);
      assert.equal(parseTelemetryReport(r), undefined, spoil.toString());
    }
    assert.equal(parseTelemetryReport(null), undefined);
  });
});

describe("access subjects", () => {
  test("calls to a service share its prefix whichever side logged them", () => {
    assert.equal(accessSubject("pricing", "frontend", "outbound"), "mesh.access.pricing.frontend.outbound");
    assert.equal(accessFilter("pricing"), "mesh.access.pricing.*.*");
    assert.equal(accessFilter(undefined, "frontend"), "mesh.access.*.frontend.*");
    assert.equal(accessFilter(), "mesh.access.>");
  });

  test("a record becomes an access record and one printed line", () => {
    const r = toAccessRecord(rec({ status: 503, code: "unavailable", meshError: "unavailable", instance: undefined, attempts: 3 }), "frontend/f-1");
    assert.equal(r.traceId, TRACE);
    assert.equal(r.spanId, "00f067aa0ba902b7");
    assert.equal(r.time, "2026-01-02T03:04:05.678Z");
    assert.equal(r.instance, null);
    assert.equal(
      formatAccessRecord(r),
      `2026-01-02T03:04:05.678Z ${r.requestId} out frontend -> pricing v1 - GET /prices/latte?size=l 503 12.5ms attempts=3 error=unavailable`,
    );
  });
});

describe("OTLP spans", () => {
  test("endpoint: /v1/traces is added unless given", () => {
    assert.equal(tracesUrl("http://c:4318"), "http://c:4318/v1/traces");
    assert.equal(tracesUrl("http://c:4318/"), "http://c:4318/v1/traces");
    assert.equal(tracesUrl("http://c:4318/v1/traces"), "http://c:4318/v1/traces");
  });

  test("a client span with its parent, nanosecond times and HTTP attributes", () => {
    const span = toOtlpSpan({ ...rec(), parentSpanId: "a3ce929d0e0e4736" }) as any;
    assert.equal(span.traceId, TRACE);
    assert.equal(span.spanId, "00f067aa0ba902b7");
    assert.equal(span.parentSpanId, "a3ce929d0e0e4736");
    assert.equal(span.kind, 3);
    assert.equal(span.startTimeUnixNano, "1767323045678000000");
    assert.equal(span.endTimeUnixNano, "1767323045690500000");
    assert.deepEqual(span.status, { code: 0 });
    const attr = Object.fromEntries(span.attributes.map((a: any) => [a.key, a.value.stringValue ?? a.value.intValue]));
    assert.equal(attr["http.request.method"], "GET");
    assert.equal(attr["url.path"], "/prices/latte");
    assert.equal(attr["http.response.status_code"], "200");
  });

  test("a failed server span is a child of the caller's span", () => {
    const span = toOtlpSpan(rec({ direction: "inbound", status: 500, code: "500", parentSpanId: "a3ce929d0e0e4736" })) as any;
    assert.equal(span.kind, 2);
    assert.equal(span.spanId, "00f067aa0ba902b7");
    assert.equal(span.parentSpanId, "a3ce929d0e0e4736");
    assert.equal(span.status.code, 2);
  });

  test("unsampled or malformed trace context: no span", () => {
    assert.equal(toOtlpSpan(rec({ traceparent: `00-${TRACE}-00f067aa0ba902b7-00` })), undefined);
    assert.equal(toOtlpSpan(rec({ traceparent: "garbage" })), undefined);
  });

  test("the export request names the service and instance", () => {
    const body = exportRequest([], { service: "frontend", instance: "f-1" }) as any;
    const attrs = body.resourceSpans[0].resource.attributes;
    assert.deepEqual(attrs.slice(0, 2), [
      { key: "service.name", value: { stringValue: "frontend" } },
      { key: "service.instance.id", value: { stringValue: "f-1" } },
    ]);
  });
});

describe("recent traffic for mesh top", () => {
  const counts = (bucket: number, n: number) => DURATION_BUCKETS_SECONDS.map((_, i) => (i === bucket ? n : 0)).concat([0]);

  test("rate, success and percentiles over the window; old slots fall out", () => {
    let now = 1_000_000;
    const recent = new RecentTraffic(() => now);
    now += 60_000;
    recent.add("web", "api", "200", 90, counts(4, 90)); // 10 ms bucket
    recent.add("web", "api", "unavailable", 10, counts(0, 10));
    recent.add("web", "api", "404", 0, counts(0, 0));
    const [pair] = recent.stats(10_000).pairs;
    assert.equal(pair!.requests, 100);
    assert.equal(pair!.rps, 10);
    assert.equal(pair!.successRate, 0.9);
    assert.ok(pair!.p50Ms! > 5 && pair!.p50Ms! <= 10, String(pair!.p50Ms));
    now += 11_000;
    assert.deepEqual(recent.stats(10_000).pairs, []);
    assert.equal(recent.stats(30_000).pairs[0]!.requests, 100);
    assert.deepEqual(recent.stats(30_000, "other").pairs, []);
  });

  test("failures are 5xx answers, the mesh's own included", () => {
    assert.deepEqual(["200", "404", "500", "503", "timeout", "forbidden", "quota_exceeded", "client_closed"].map(isFailure), [false, false, true, true, true, false, false, false]);
  });

  test("a frame of mesh top", () => {
    const frame = renderTop({ windowSeconds: 30, pairs: [{ source: "web", destination: "api", requests: 60, rps: 2, successRate: 0.95, p50Ms: 3.25, p99Ms: 120 }] }, new Date(0));
    assert.match(frame, /SOURCE\s+DESTINATION\s+RPS\s+SUCCESS\s+P50\s+P99\s+REQUESTS/);
    assert.match(frame, /web\s+api\s+2\.0\s+95\.00%\s+3\.3ms\s+120ms\s+60/);
  });
});
