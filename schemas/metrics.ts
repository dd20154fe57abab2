/**
 * The metric contract: every metric name, label list and histogram bound
 * that sidecars expose, report in telemetry, and control merges. Sidecars
 * (`sidecar/observability/metrics.ts`, `telemetry.ts`) and control
 * (`control/telemetry.ts`, `merged-metrics.ts`) read them here; nothing else
 * spells them out. Help texts stay with each registry: a sidecar describes
 * what it saw, control what the mesh saw.
 */

export type MetricType = "counter" | "gauge" | "histogram";

/** One metric family: its name, its label names in order, and for histograms the bucket upper bounds (seconds). */
export interface MetricSpec {
  readonly name: string;
  readonly type: MetricType;
  readonly labels: readonly string[];
  readonly buckets?: readonly number[];
}

/** Request duration histogram bounds in seconds; dense under 100 ms, where a mesh hop lives. */
export const DURATION_BUCKETS_SECONDS: readonly number[] = Object.freeze([
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
]);

/** Labels of every request series, in the order of a telemetry RequestRow. */
export const REQUEST_LABELS = ["direction", "source", "destination", "version", "method", "code"] as const;

/** Methods counted under their own name in the `method` label; every other one is `other`. */
export const METHOD_LABELS: ReadonlySet<string> = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

/** Keeps label cardinality bounded: unusual methods count as `other`. */
export function methodLabel(method: string): string {
  return METHOD_LABELS.has(method) ? method : "other";
}

/** The circuit breaker states by gauge value (`breaker_state` 0, 1, 2). */
export const BREAKER_STATES = ["closed", "open", "half_open"] as const;

/** Labels of a caller's breaker as telemetry reports it: which sidecar's service, towards which destination version. */
const BREAKER_LABELS = ["source", "destination", "version"] as const;

/**
 * The families. A sidecar exposes the first six on its own /metrics; control
 * exposes the merged mesh-wide ones (requests, duration, retries, decisions,
 * circuit breakers) from telemetry.
 */
export const MESH_METRICS = {
  /** every request a sidecar answered, by direction (outbound: the caller's sidecar; inbound: the provider's) */
  requests: { name: "mesh_requests_total", type: "counter", labels: REQUEST_LABELS },
  /** seconds from a sidecar receiving a request to it answering */
  requestDuration: { name: "mesh_request_duration_seconds", type: "histogram", labels: REQUEST_LABELS, buckets: DURATION_BUCKETS_SECONDS },
  /** retries a caller's sidecar made */
  retries: { name: "mesh_retries_total", type: "counter", labels: ["source", "destination"] },
  /** authz decisions (`allow` | `deny`) of a provider's sidecar */
  authzDecisions: { name: "mesh_authz_decisions_total", type: "counter", labels: ["service", "caller", "decision"] },
  /** quota decisions (`allowed` | `denied` | `unavailable_allowed` | `unavailable_denied`) of a provider's sidecar */
  quotaDecisions: { name: "mesh_quota_decisions_total", type: "counter", labels: ["service", "caller", "decision"] },
  /** one sidecar's breaker per destination version: 0 closed, 1 open, 2 half-open (BREAKER_STATES) */
  circuitBreakerState: { name: "mesh_circuit_breaker_state", type: "gauge", labels: ["destination", "version"] },
  /** control: calling sidecar instances whose breaker for a destination version is in each state */
  circuitBreakers: { name: "mesh_circuit_breakers", type: "gauge", labels: [...BREAKER_LABELS, "state"] },
  /**
   * body bytes of calls whose body streamed, as the caller's sidecar moved them:
   * `flow` `request` (sent to the provider) or `response` (received from it)
   */
  streamBytes: { name: "mesh_stream_bytes_total", type: "counter", labels: ["source", "destination", "flow"] },
} as const satisfies Record<string, MetricSpec>;

/**
 * Counters a sidecar reports in telemetry besides requests, each the
 * metric control merges it into; a row's label values follow the metric's
 * label names in order.
 */
export const TELEMETRY_COUNTERS = {
  retries: MESH_METRICS.retries,
  authz: MESH_METRICS.authzDecisions,
  quota: MESH_METRICS.quotaDecisions,
  stream_bytes: MESH_METRICS.streamBytes,
} as const;

/**
 * Gauges a sidecar reports with every delta (last value wins), with their
 * label names in order. `breaker_state`: a BREAKER_STATES index; control
 * counts instances per state into `mesh_circuit_breakers`.
 */
export const TELEMETRY_GAUGES = {
  breaker_state: { labels: BREAKER_LABELS },
} as const;

export type TelemetryCounterName = keyof typeof TELEMETRY_COUNTERS;
export type TelemetryGaugeName = keyof typeof TELEMETRY_GAUGES;
export type TelemetryCounterLabels<N extends TelemetryCounterName> = Record<(typeof TELEMETRY_COUNTERS)[N]["labels"][number], string>;
export type TelemetryGaugeLabels<N extends TelemetryGaugeName> = Record<(typeof TELEMETRY_GAUGES)[N]["labels"][number], string>;
