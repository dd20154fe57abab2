import type { Logger } from "pino";
import type { RequestRecord } from "./request-record.ts";
import { SPAN_ID, TRACEPARENT } from "../../schemas/index.ts";
import { atMost } from "../../runtime/lifecycle.ts";

/**
 * Spans exported with OTLP/HTTP in its JSON encoding
 * (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding): one
 * POST of an ExportTraceServiceRequest to `<endpoint>/v1/traces` per batch.
 * Hand-encoded: the format is small and stable, and the OpenTelemetry SDK
 * would bring a dozen packages and its own batching for two span kinds.
 */

/** Defaults; units are in the names. */
export const TRACING_DEFAULTS = {
  /** a batch leaves at least this often */
  batchMs: 2_000,
  /** ... or as soon as this many spans wait */
  maxBatch: 512,
  /** spans held while the collector is slow or away; more are dropped and counted */
  maxQueued: 4_096,
  /** a POST that takes longer is abandoned and its spans dropped */
  exportTimeoutMs: 5_000,
  /** at most one warning per this many milliseconds while exports fail */
  warnEveryMs: 60_000,
  /** how long stop() goes on exporting what waits */
  stopWaitMs: 2_000,
} as const;

/**
 * A RequestRecord as tracing reads it. With `parentSpanId` set (even to
 * undefined: a root span), `traceparent` is this sidecar's own span and
 * `parentSpanId` its parent. Without the key, as records are made while
 * the provider passes the caller's traceparent on unchanged, an inbound
 * record's span is the caller's: the server span gets an id of its own,
 * as a child of it, and an outbound span has no parent.
 */
export type TracedRecord = RequestRecord;

export interface TracerOptions {
  /** OTLP/HTTP endpoint, e.g. http://127.0.0.1:4318 (`/v1/traces` is added) or a full `.../v1/traces` URL; absent: no tracer */
  otlpUrl: string | undefined;
  service: string;
  instance: string;
  /** version of the local application, a resource attribute */
  version?: string;
  logger: Logger;
  batchMs?: number;
  maxBatch?: number;
  maxQueued?: number;
  exportTimeoutMs?: number;
}

export interface Tracer {
  /** O(1), never throws: queues the request's span for the next export (a RequestObserver) */
  readonly observe: (record: TracedRecord) => void;
  stats(): { exported: number; dropped: number; queued: number };
  /** exports what waits, for at most stopWaitMs (2 s) */
  stop(): Promise<void>;
}

type Attribute = { key: string; value: { stringValue: string } | { intValue: string } };

/** OTLP SpanKind and StatusCode values. */
const SPAN_KIND = { inbound: 2, outbound: 3 } as const; // SERVER, CLIENT
const STATUS_UNSET = 0;
const STATUS_ERROR = 2;

/** The URL spans are posted to: `OTEL_EXPORTER_OTLP_ENDPOINT` semantics, or a full traces URL as is. */
export function tracesUrl(endpoint: string): string {
  const trimmed = endpoint.replace(/\/+$/, "");
  return trimmed.endsWith("/v1/traces") ? trimmed : `${trimmed}/v1/traces`;
}

const str = (key: string, v: string): Attribute => ({ key, value: { stringValue: v } });
const int = (key: string, v: number): Attribute => ({ key, value: { intValue: String(Math.trunc(v)) } });

/** One OTLP span; undefined when the request is not sampled or has no valid trace context. */
export function toOtlpSpan(r: TracedRecord): Record<string, unknown> | undefined {
  const m = TRACEPARENT.exec(r.traceparent);
  if (!m || (parseInt(m[3]!, 16) & 1) === 0) return undefined;
  // The record's traceparent is this span; its parent is the span it was made from.
  const parent = r.parentSpanId && SPAN_ID.test(r.parentSpanId) ? r.parentSpanId : undefined;
  const startNs = BigInt(Math.round(r.startedAt * 1e3)) * 1000n;
  const endNs = startNs + BigInt(Math.max(0, Math.round(r.durationMs * 1e6)));
  const attributes = [
    str("http.request.method", r.method),
    str("url.path", r.path.split("?")[0] ?? r.path),
    int("http.response.status_code", r.status),
    str("server.address", r.destination),
    str("mesh.source", r.source),
    str("mesh.destination", r.destination),
    str("mesh.version", r.version),
    str("mesh.request_id", r.requestId),
    int("mesh.attempts", r.attempts),
  ];
  if (r.instance) attributes.push(str("mesh.instance", r.instance));
  if (r.meshError) attributes.push(str("mesh.error", r.meshError));
  if (r.stream) {
    // A streamed call is one span covering the whole stream (docs/architecture.md §15).
    attributes.push(int("mesh.stream.bytes_in", r.stream.bytesIn), int("mesh.stream.bytes_out", r.stream.bytesOut));
    if (r.stream.aborted) attributes.push(str("mesh.stream.aborted", r.stream.aborted));
  }
  // Semantic conventions: 4xx is an error for the client, not for the server.
  const failed = r.meshError !== undefined || r.status >= 500 || r.status === 0 || (r.direction === "outbound" && r.status >= 400);
  return {
    traceId: m[1],
    spanId: m[2],
    ...(parent ? { parentSpanId: parent } : {}),
    name: `${r.method} ${r.destination}`,
    kind: SPAN_KIND[r.direction],
    startTimeUnixNano: startNs.toString(),
    endTimeUnixNano: endNs.toString(),
    attributes,
    status: failed ? { code: STATUS_ERROR, message: r.meshError ?? String(r.status) } : { code: STATUS_UNSET },
  };
}

/** The ExportTraceServiceRequest body for one batch. */
export function exportRequest(spans: unknown[], resource: { service: string; instance: string; version?: string }): unknown {
  const attributes = [str("service.name", resource.service), str("service.instance.id", resource.instance)];
  if (resource.version) attributes.push(str("service.version", resource.version));
  attributes.push(str("telemetry.sdk.name", "natsmesh"), str("telemetry.sdk.language", "nodejs"));
  return {
    resourceSpans: [{ resource: { attributes }, scopeSpans: [{ scope: { name: "natsmesh-sidecar" }, spans }] }],
  };
}

/**
 * A client span for every outbound request and a server span for every
 * inbound one, posted in batches; undefined without an OTLP endpoint, so
 * nothing is exported unless asked for.
 */
export function createTracer(opts: TracerOptions): Tracer | undefined {
  return opts.otlpUrl ? new OtlpTracer(opts, tracesUrl(opts.otlpUrl)) : undefined;
}

class OtlpTracer implements Tracer {
  readonly #opts: TracerOptions;
  readonly #url: string;
  readonly #o: { -readonly [K in keyof typeof TRACING_DEFAULTS]: number };
  readonly #counts = { exported: 0, dropped: 0 };
  readonly #timer: NodeJS.Timeout;
  #queue: TracedRecord[] = [];
  #exporting: Promise<void> | undefined;
  #lastWarn = 0;

  constructor(opts: TracerOptions, url: string) {
    this.#opts = opts;
    this.#url = url;
    const given = Object.fromEntries(Object.entries(opts).filter(([k, v]) => v !== undefined && k in TRACING_DEFAULTS));
    this.#o = { ...TRACING_DEFAULTS, ...given };
    this.#timer = setInterval(() => void this.#flush(), this.#o.batchMs);
    this.#timer.unref();
  }

  readonly observe = (record: TracedRecord): void => {
    if (this.#queue.length >= this.#o.maxQueued) return void this.#counts.dropped++;
    this.#queue.push(record);
    if (this.#queue.length >= this.#o.maxBatch && !this.#exporting) setImmediate(() => void this.#flush());
  };

  stats() {
    return { ...this.#counts, queued: this.#queue.length };
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    const drained = (async () => {
      while (this.#queue.length > 0 || this.#exporting) await (this.#exporting ?? this.#flush());
    })();
    await atMost(drained, this.#o.stopWaitMs);
  }

  /** One export at a time; whatever queued meanwhile goes in the next. */
  #flush(): Promise<void> {
    if (this.#exporting || this.#queue.length === 0) return this.#exporting ?? Promise.resolve();
    const { maxBatch } = this.#o;
    const batch = this.#queue.length <= maxBatch ? this.#queue : this.#queue.slice(0, maxBatch);
    this.#queue = batch === this.#queue ? [] : this.#queue.slice(maxBatch);
    this.#exporting = this.#export(batch).finally(() => {
      this.#exporting = undefined;
      if (this.#queue.length >= maxBatch) void this.#flush();
    });
    return this.#exporting;
  }

  async #export(batch: TracedRecord[]): Promise<void> {
    const spans = batch.map(toOtlpSpan).filter((s) => s !== undefined);
    if (spans.length === 0) return;
    try {
      const { postOtlp } = await import("./otlp-post.ts");
      const status = await postOtlp(this.#url, JSON.stringify(exportRequest(spans, this.#opts)), this.#o.exportTimeoutMs);
      if (status >= 300) throw new Error(`collector answered ${status}`);
      this.#counts.exported += spans.length;
    } catch (err) {
      this.#counts.dropped += spans.length;
      if (Date.now() - this.#lastWarn >= this.#o.warnEveryMs) {
        this.#lastWarn = Date.now();
        this.#opts.logger.warn({ err, url: this.#url, dropped: this.#counts.dropped }, "spans not exported");
      }
    }
  }
}
