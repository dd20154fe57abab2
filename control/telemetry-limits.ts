import { TELEMETRY_PREFIX, type NamedRow, type RequestRow, type TelemetryReport } from "../schemas/index.ts";

/**
 * What control believes of a telemetry report. A sidecar publishes on
 * `mesh.telemetry.<service>.<instance>`, which secure mode binds to its
 * credentials, so that subject is the only identity a report has: every row
 * must be about that service (a request it made or served, its own retries
 * and breakers, its own authz and quota decisions), and what one instance or
 * one report can add to control's memory is bounded. Pure, so unit-tested
 * without a server.
 */
export const TELEMETRY_LIMITS = {
  /** request rows, counter rows and gauge rows read from one report; the rest are rejected */
  rowsPerReport: 2_000,
  /** new series one instance (service and instance name) may create in control's families */
  seriesPerInstance: 5_000,
  /** series of one merged family in all */
  seriesPerFamily: 100_000,
  /** gauges remembered per instance */
  gaugesPerInstance: 1_000,
  /** instances remembered; reports from more are rejected until silent ones are forgotten */
  instances: 10_000,
} as const;

/** Why rows are rejected: `mesh_telemetry_rows_rejected_total{reason}`. */
export type RowRejection = "not_own_service" | "report_limit" | "instance_limit" | "family_limit" | "gauge_limit";

/** The service and instance a telemetry subject names; undefined when it is not one. */
export function telemetrySubjectParts(subject: string): { service: string; instance: string } | undefined {
  const prefix = `${TELEMETRY_PREFIX}.`;
  if (!subject.startsWith(prefix)) return undefined;
  const parts = subject.slice(prefix.length).split(".");
  return parts.length === 2 ? { service: parts[0]!, instance: parts[1]! } : undefined;
}

/** A report may only speak for the service and instance of the subject it came on. */
export function reportMatchesSubject(report: Pick<TelemetryReport, "service" | "instance">, subject: string): boolean {
  const parts = telemetrySubjectParts(subject);
  return parts !== undefined && parts.service === report.service && parts.instance === report.instance;
}

/** The service a request row is about: the caller's for outbound rows, the provider's for inbound ones. */
export function requestRowOwner(row: RequestRow): string | undefined {
  if (row[0] === "outbound") return row[1];
  if (row[0] === "inbound") return row[2];
  return undefined;
}

/**
 * The service a counter or gauge row is about: its first label in every
 * catalog entry (`source` of retries and breaker_state, `service` of authz
 * and quota).
 */
export function namedRowOwner(row: NamedRow): string | undefined {
  return row[1][0];
}
