/**
 * The observability contract between sidecars and control: the telemetry
 * report a sidecar publishes every few seconds on
 * `mesh.telemetry.<service>.<instance>` (telemetry-report.schema.json) and
 * the access record it stores in stream MESH_ACCESS
 * (access-record.schema.json). Metric names, labels and buckets are in
 * metrics.ts.
 */
import { validatorOf } from "./documents.ts";
import { TELEMETRY_COUNTERS, TELEMETRY_GAUGES } from "./metrics.ts";
import type { NamedRow, TelemetryReport } from "./telemetry.generated.ts";
import { check, quote, type Checked, type Problem } from "./validate.ts";

export type { AccessRecord, NamedRow, RequestRow, TelemetryReport } from "./telemetry.generated.ts";

/** The JetStream stream access records go to, on `mesh.access.>` (docs/architecture.md §5). */
export const ACCESS_STREAM = "MESH_ACCESS";

/** How often a sidecar publishes its telemetry deltas. */
export const TELEMETRY_INTERVAL_MS = 2_000;

const validateReport = validatorOf<TelemetryReport>("telemetry-report");

/**
 * A report as control receives it: valid against telemetry-report.schema.json,
 * and what the catalog in metrics.ts says: each counter and gauge row names
 * one of its entries and has as many label values as it has labels; and each
 * request row has one bucket count per bound of `le`, then +Inf.
 */
export function checkTelemetryReport(value: unknown): Checked<TelemetryReport> {
  const checked = check<TelemetryReport>(validateReport, value);
  if (!checked.ok) return checked;
  const r = checked.value;
  const problems: Problem[] = [];
  const buckets = r.le.length + 1;
  r.requests.forEach((row, i) => {
    if (row[8].length !== buckets) problems.push({ path: `requests[${i}][8]`, message: `must have ${buckets} counts (one per bound of le, then +Inf), got ${row[8].length}` });
  });
  const inCatalog = (rows: readonly NamedRow[], field: string, catalog: Readonly<Record<string, { labels: readonly string[] }>>) =>
    rows.forEach(([name, labels], i) => {
      const entry = Object.hasOwn(catalog, name) ? catalog[name] : undefined;
      if (!entry) problems.push({ path: `${field}[${i}][0]`, message: `must be one of ${Object.keys(catalog).join(", ")}, got ${quote(name)}` });
      else if (labels.length !== entry.labels.length) problems.push({ path: `${field}[${i}][1]`, message: `must have ${entry.labels.length} label values for ${name}, got ${labels.length}` });
    });
  inCatalog(r.counters, "counters", TELEMETRY_COUNTERS);
  inCatalog(r.gauges, "gauges", TELEMETRY_GAUGES);
  return problems.length > 0 ? { ok: false, problems } : checked;
}

/** The report in a message, or undefined when it is not one (control counts and skips those). */
export function parseTelemetryReport(value: unknown): TelemetryReport | undefined {
  const checked = checkTelemetryReport(value);
  return checked.ok ? checked.value : undefined;
}
