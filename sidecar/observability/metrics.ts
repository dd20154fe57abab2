import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { BREAKER_STATE_VALUE, type BreakerState } from "../resilience/circuit-breaker.ts";
import type { RequestRecord } from "./request-record.ts";

const LABELS = ["direction", "source", "destination", "version", "method", "code"] as const;
/** seconds; dense under 100 ms where a mesh hop lives */
const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const KNOWN_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

export interface SidecarMetrics {
  registry: Registry;
  /** a RequestObserver: counts the request and its duration */
  observe(record: RequestRecord): void;
  retry(source: string, destination: string): void;
  breaker(destination: string, version: string, state: BreakerState): void;
  authz(service: string, caller: string, decision: "allow" | "deny"): void;
  quota(service: string, caller: string, decision: string): void;
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
  const retries = new Counter({ name: "mesh_retries_total", help: "Retries a caller sidecar made", labelNames: ["source", "destination"], registers: [registry] });
  const breakers = new Gauge({
    name: "mesh_circuit_breaker_state",
    help: "Circuit breaker per destination and version: 0 closed, 1 open, 2 half-open",
    labelNames: ["destination", "version"],
    registers: [registry],
  });
  const authz = new Counter({ name: "mesh_authz_decisions_total", help: "Authorization decisions", labelNames: ["service", "caller", "decision"], registers: [registry] });
  const quota = new Counter({ name: "mesh_quota_decisions_total", help: "Quota decisions", labelNames: ["service", "caller", "decision"], registers: [registry] });
  const children = new Map<string, { count: ReturnType<typeof requests.labels>; time: ReturnType<typeof duration.labels> }>();
  return {
    registry,
    retry: (source, destination) => retries.inc({ source, destination }),
    breaker: (destination, version, state) => breakers.set({ destination, version }, BREAKER_STATE_VALUE[state]),
    authz: (service, caller, decision) => authz.inc({ service, caller, decision }),
    quota: (service, caller, decision) => quota.inc({ service, caller, decision }),
    observe(r) {
      // prom-client hashes a label object on every call; the children are looked up once per series instead.
      const method = methodLabel(r.method);
      const key = `${r.direction}|${r.source}|${r.destination}|${r.version}|${method}|${r.code}`;
      let series = children.get(key);
      if (!series) {
        const labels = { direction: r.direction, source: r.source, destination: r.destination, version: r.version, method, code: r.code };
        series = { count: requests.labels(labels), time: duration.labels(labels) };
        children.set(key, series);
      }
      series.count.inc();
      series.time.observe(r.durationMs / 1000);
    },
  };
}
