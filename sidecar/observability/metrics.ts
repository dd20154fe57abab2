import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { MESH_METRICS, methodLabel } from "../../schemas/index.ts";
import { BREAKER_STATE_VALUE, type BreakerState } from "../resilience/circuit-breaker.ts";
import type { RequestRecord } from "./request-record.ts";

export { methodLabel } from "../../schemas/index.ts";

export interface SidecarMetrics {
  registry: Registry;
  /** a RequestObserver: counts the request and its duration */
  observe(record: RequestRecord): void;
  retry(source: string, destination: string): void;
  breaker(destination: string, version: string, state: BreakerState): void;
  authz(service: string, caller: string, decision: "allow" | "deny"): void;
  quota(service: string, caller: string, decision: string): void;
}

/** prom-client options of a MESH_METRICS family: its name and label names, this sidecar's help text. */
function family<M extends { name: string; labels: readonly string[] }>(m: M, help: string, registry: Registry) {
  return { name: m.name, help, labelNames: m.labels as M["labels"], registers: [registry] };
}

export function createMetrics(registry = new Registry(), defaults = true): SidecarMetrics {
  if (defaults) collectDefaultMetrics({ register: registry });
  const M = MESH_METRICS;
  const requests = new Counter(family(M.requests, "Requests through the sidecar, by direction, caller, callee, version, method and status or mesh error code", registry));
  const duration = new Histogram({ ...family(M.requestDuration, "Time from the sidecar receiving a request to it answering", registry), buckets: [...M.requestDuration.buckets] });
  const retries = new Counter(family(M.retries, "Retries a caller sidecar made", registry));
  const breakers = new Gauge(family(M.circuitBreakerState, "Circuit breaker per destination and version: 0 closed, 1 open, 2 half-open", registry));
  const authz = new Counter(family(M.authzDecisions, "Authorization decisions", registry));
  const quota = new Counter(family(M.quotaDecisions, "Quota decisions", registry));
  const streamBytes = new Counter(family(M.streamBytes, "Body bytes of this sidecar's calls whose body streamed: flow request (sent) or response (received)", registry));
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
      // A stream counts once, with its bytes, as the caller moved them.
      if (r.stream && r.direction === "outbound") {
        streamBytes.inc({ source: r.source, destination: r.destination, flow: "request" }, r.stream.bytesOut);
        streamBytes.inc({ source: r.source, destination: r.destination, flow: "response" }, r.stream.bytesIn);
      }
    },
  };
}
