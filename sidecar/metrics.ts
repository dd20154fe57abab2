import { Counter, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export type Direction = "outbound" | "inbound";

/** Labels of every request metric; `code` is the HTTP status, or the mesh error code. */
export interface RequestLabels {
  direction: Direction;
  source: string;
  destination: string;
  version: string;
  method: string;
  code: string;
}

const LABELS = ["direction", "source", "destination", "version", "method", "code"] as const;
/** seconds; dense under 100 ms where a mesh hop lives */
const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const KNOWN_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

export interface SidecarMetrics {
  registry: Registry;
  observe(labels: RequestLabels, seconds: number): void;
}

/** Keeps label cardinality bounded: unusual methods count as `other`. */
export function methodLabel(method: string): string {
  return KNOWN_METHODS.has(method) ? method : "other";
}

export function createMetrics(registry = new Registry(), defaults = true): SidecarMetrics {
  if (defaults) collectDefaultMetrics({ register: registry });
  const requests = new Counter({
    name: "mesh_requests_total",
    help: "Requests through the sidecar, by direction, caller, callee, version, method and status or mesh error code",
    labelNames: LABELS,
    registers: [registry],
  });
  const duration = new Histogram({
    name: "mesh_request_duration_seconds",
    help: "Time from the sidecar receiving a request to it answering",
    labelNames: LABELS,
    buckets: DURATION_BUCKETS,
    registers: [registry],
  });
  return {
    registry,
    observe(labels, seconds) {
      requests.inc(labels);
      duration.observe(labels, seconds);
    },
  };
}
