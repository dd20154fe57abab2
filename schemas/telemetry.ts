/**
 * The observability contract between sidecars and control: the telemetry
 * report a sidecar publishes every few seconds on
 * `mesh.telemetry.<service>.<instance>`, the access record it stores in
 * stream MESH_ACCESS, and the catalog of extra counters and gauges.
 */

/** The JetStream stream access records go to, on `mesh.access.>` (DESIGN §4). */
export const ACCESS_STREAM = "MESH_ACCESS";

/** Request duration histogram bounds in seconds; dense under 100 ms, where a mesh hop lives. */
export const DURATION_BUCKETS_SECONDS: readonly number[] = Object.freeze([
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
]);

/** How often a sidecar publishes its telemetry deltas. */
export const TELEMETRY_INTERVAL_MS = 2_000;

/**
 * Counters a sidecar may report besides requests, with their label names in
 * order: retries a caller made; authz decisions (`allow` | `deny`) and quota
 * decisions (`allowed` | `denied` | `unavailable_allowed` |
 * `unavailable_denied`, the last two when quota accounting was unreachable)
 * a provider made.
 */
export const TELEMETRY_COUNTERS = {
  retries: ["source", "destination"],
  authz: ["service", "caller", "decision"],
  quota: ["service", "caller", "decision"],
} as const;

/** Gauges a sidecar reports with every delta (last value wins). `breaker_state`: 0 closed, 1 open, 2 half_open. */
export const TELEMETRY_GAUGES = {
  breaker_state: ["source", "destination", "version"],
} as const;

/** The circuit breaker states by gauge value. */
export const BREAKER_STATES = ["closed", "open", "half_open"] as const;

export type TelemetryCounterName = keyof typeof TELEMETRY_COUNTERS;
export type TelemetryGaugeName = keyof typeof TELEMETRY_GAUGES;
export type TelemetryCounterLabels<N extends TelemetryCounterName> = Record<(typeof TELEMETRY_COUNTERS)[N][number], string>;
export type TelemetryGaugeLabels<N extends TelemetryGaugeName> = Record<(typeof TELEMETRY_GAUGES)[N][number], string>;

/** Labels of every request series, in the order of a RequestRow. */
export const REQUEST_LABELS = ["direction", "source", "destination", "version", "method", "code"] as const;

/**
 * Requests of one label set during one interval:
 * `[direction, source, destination, version, method, code, count, sumSeconds, buckets]`,
 * `buckets` holding per-bucket (not cumulative) counts for each bound of the
 * report's `le`, then +Inf.
 */
export type RequestRow = [string, string, string, string, string, string, number, number, number[]];

/** `[name, label values in catalog order, value]`; the value is a delta for counters, the current value for gauges. */
export type NamedRow = [string, string[], number];

/** What a sidecar publishes on `mesh.telemetry.<service>.<instance>` (JSON). */
export interface TelemetryReport {
  v: 1;
  service: string;
  /** version of the sidecar's local application */
  version: string;
  instance: string;
  /** random per sidecar start: counting starts from zero with each boot */
  boot: string;
  /** 1, 2, 3 ... within a boot: control ignores repeats and counts gaps as lost reports */
  seq: number;
  /** epoch milliseconds the report was made */
  at: number;
  /** how often this sidecar reports, in milliseconds */
  intervalMs: number;
  /** histogram bounds in seconds the rows' bucket counts refer to */
  le: number[];
  requests: RequestRow[];
  counters: NamedRow[];
  gauges: NamedRow[];
  /** request label sets dropped this interval because the sidecar hit its series limit */
  droppedSeries: number;
  /** true on the last report before the sidecar stops: its gauges are forgotten */
  final: boolean;
}

const MAX_LABEL = 256;
const isLabel = (v: unknown): v is string => typeof v === "string" && v.length <= MAX_LABEL;
const isCount = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v) && v >= 0;

function isRequestRow(row: unknown, buckets: number): row is RequestRow {
  if (!Array.isArray(row) || row.length !== 9) return false;
  for (let i = 0; i < 6; i++) if (!isLabel(row[i])) return false;
  const counts = row[8];
  return isCount(row[6]) && isCount(row[7]) && Array.isArray(counts) && counts.length === buckets && counts.every(isCount);
}

function isNamedRow(row: unknown, catalog: Record<string, readonly string[]>): row is NamedRow {
  if (!Array.isArray(row) || row.length !== 3 || typeof row[0] !== "string" || !Object.hasOwn(catalog, row[0])) return false;
  const labels = row[1];
  return Array.isArray(labels) && labels.length === catalog[row[0]]!.length && labels.every(isLabel) && isCount(row[2]);
}

/** The report in a message, or undefined when it is not one (control counts and skips those). */
export function parseTelemetryReport(value: unknown): TelemetryReport | undefined {
  const r = value as Partial<TelemetryReport> | null;
  if (!r || typeof r !== "object" || r.v !== 1) return undefined;
  if (![r.service, r.version, r.instance, r.boot].every(isLabel)) return undefined;
  if (!Number.isInteger(r.seq) || !isCount(r.at) || !isCount(r.intervalMs) || !isCount(r.droppedSeries)) return undefined;
  if (!Array.isArray(r.le) || !r.le.every(isCount) || typeof r.final !== "boolean") return undefined;
  const buckets = r.le.length + 1;
  if (!Array.isArray(r.requests) || !r.requests.every((row) => isRequestRow(row, buckets))) return undefined;
  if (!Array.isArray(r.counters) || !r.counters.every((row) => isNamedRow(row, TELEMETRY_COUNTERS))) return undefined;
  if (!Array.isArray(r.gauges) || !r.gauges.every((row) => isNamedRow(row, TELEMETRY_GAUGES))) return undefined;
  return r as TelemetryReport;
}

/**
 * One access record (one JSON line) in stream MESH_ACCESS. Each sidecar a
 * request passes logs what it saw: the caller's sidecar an `outbound` record,
 * the provider's sidecar an `inbound` one; both carry the same requestId.
 */
export interface AccessRecord {
  /** ISO time the sidecar received the request */
  time: string;
  requestId: string;
  /** W3C trace id (32 hex digits); empty when the request carried none */
  traceId: string;
  /** span id of this sidecar's span */
  spanId: string;
  direction: "outbound" | "inbound";
  source: string;
  destination: string;
  version: string;
  /** provider instance that answered; null when none did */
  instance: string | null;
  method: string;
  /** raw path and query */
  path: string;
  /** HTTP status the requester got; 0 when it went away first */
  status: number;
  /** status as text, or the mesh error code */
  code: string;
  durationMs: number;
  attempts: number;
  /** mesh error code when the mesh answered instead of the application; else null */
  meshError: string | null;
  /** the sidecar instance that logged this record */
  reporter: string;
}
