import { randomUUID } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";
import { childTraceparent } from "../../sidecar/observability/trace.ts";
import type { RequestRecord } from "../../sidecar/observability/request-record.ts";
import { onFileEnd } from "./cleanup.ts";

/** A RequestRecord as a sidecar makes one: a 200 from frontend to pricing unless told otherwise. */
export function requestRecord(over: Partial<RequestRecord> = {}): RequestRecord {
  const record = {
    direction: "outbound",
    source: "frontend",
    destination: "pricing",
    version: "v1",
    instance: "pricing-a",
    method: "GET",
    path: "/prices/latte?size=l",
    status: 200,
    code: "200",
    meshError: undefined,
    startedAt: Date.now(),
    durationMs: 3,
    attempts: 1,
    requestId: randomUUID(),
    traceparent: childTraceparent(undefined),
  };
  return { ...record, ...over } as RequestRecord;
}

/** A span as an OTLP/HTTP JSON export carries it (the fields tests read). */
export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: Array<{ key: string; value: { stringValue?: string; intValue?: string } }>;
  status: { code: number; message?: string };
  /** service.name of the resource that exported it */
  service: string;
}

export interface OtlpReceiver {
  /** base endpoint, as --otlp takes it */
  url: string;
  /** every POST's path and parsed body, in order */
  posts: Array<{ path: string; contentType: string | undefined; body: any }>;
  spans(): ReceivedSpan[];
  server: Server;
  close(): Promise<void>;
}

/** A tiny OTLP/HTTP collector that records what is posted and answers 200, closed when the test file ends. */
export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const posts: OtlpReceiver["posts"] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      posts.push({ path: req.url ?? "", contentType: req.headers["content-type"], body: JSON.parse(Buffer.concat(chunks).toString("utf8") || "null") });
      res.writeHead(200, { "content-type": "application/json" });
      res.end("{}");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  onFileEnd(close);
  const spans = () =>
    posts.flatMap((p) =>
      (p.body?.resourceSpans ?? []).flatMap((rs: any) => {
        const service = rs.resource.attributes.find((a: any) => a.key === "service.name")?.value.stringValue;
        return rs.scopeSpans.flatMap((ss: any) => ss.spans.map((s: any) => ({ ...s, service })));
      }),
    );
  return { url, posts, spans, server, close };
}

export function attribute(span: ReceivedSpan, key: string): string | undefined {
  const v = span.attributes.find((a) => a.key === key)?.value;
  return v?.stringValue ?? v?.intValue;
}

/**
 * Values of one metric from a registry, read as data (STYLE §9): every
 * sample whose labels include `labels`, keyed by its full name
 * (`_bucket`, `_sum` and `_count` for histograms).
 */
export async function samples(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<Array<{ name: string; labels: Record<string, string | number>; value: number }>> {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === name);
  if (!metric) return [];
  return (metric.values as Array<{ metricName?: string; labels: Record<string, string | number>; value: number }>)
    .filter((v) => Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want))
    .map((v) => ({ name: v.metricName ?? name, labels: v.labels, value: v.value }));
}

/** The sum of a metric's samples (of `sampleName`, default the metric itself) whose labels include `labels`. */
export async function metricSum(registry: Registry, name: string, labels: Record<string, string> = {}, sampleName = name): Promise<number> {
  return (await samples(registry, name, labels)).filter((s) => s.name === sampleName).reduce((sum, s) => sum + s.value, 0);
}
