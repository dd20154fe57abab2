import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { createAccessLog, type AccessLog } from "./access-log.ts";
import { BREAKER_STATE_VALUE } from "../resilience/circuit-breaker.ts";
import { RecordLabels } from "./labels.ts";
import type { SidecarMetrics } from "./metrics.ts";
import type { RequestObserver } from "./request-record.ts";
import { createTelemetry, type Telemetry } from "./telemetry.ts";
import { createTracer, type Tracer } from "./tracing.ts";

export interface ObservabilityOptions {
  nc: NatsConnection;
  service: string;
  instance: string;
  /** version of the local application */
  version: string;
  /** OTLP/HTTP endpoint (config `otlp`); absent: no spans */
  otlpUrl: string | undefined;
  logger: Logger;
  /** the sidecar's own metrics; their registry also counts access records */
  metrics: SidecarMetrics;
  /** the sidecar's region, for telemetry and access records (docs/multi-region.md) */
  region?: () => string | undefined;
}

export interface SidecarObservability {
  /** `metrics` whose retry, breaker, authz and quota calls also reach control through telemetry */
  readonly metrics: SidecarMetrics;
  /** metrics and telemetry (labels within their caps), access log and (with an OTLP endpoint) tracing: fan every RequestRecord out to these */
  readonly observers: RequestObserver[];
  readonly telemetry: Telemetry;
  readonly accessLog: AccessLog;
  readonly tracer: Tracer | undefined;
  /** last deltas, records and spans out; call once requests are answered, before the NATS connection closes */
  stop(): Promise<void>;
}

/** Everything a sidecar reports beyond its own /metrics, in one piece. */
export function createObservability(o: ObservabilityOptions): SidecarObservability {
  const who = { nc: o.nc, service: o.service, instance: o.instance, logger: o.logger };
  const region = o.region ? { region: o.region } : {};
  const telemetry = createTelemetry({ ...who, version: o.version, ...region });
  const accessLog = createAccessLog({ ...who, registry: o.metrics.registry, ...region });
  const tracer = createTracer({ ...who, otlpUrl: o.otlpUrl, version: o.version });
  const labels = new RecordLabels(o.metrics.registry);
  // One bounded copy for both label consumers, so they agree and overflows count once.
  const counted = (r: Parameters<RequestObserver>[0]) => {
    const bounded = labels.bound(r);
    telemetry.observe(bounded);
    o.metrics.observe(bounded);
  };
  return {
    metrics: withTelemetry(o.metrics, telemetry, o.service),
    observers: [counted, accessLog.observe, ...(tracer ? [tracer.observe] : [])],
    telemetry,
    accessLog,
    tracer,
    stop: async () => {
      await Promise.all([telemetry.stop(), accessLog.stop(), tracer?.stop()]);
    },
  };
}

/** The sidecar's metrics, with retries, breaker states and authz and quota decisions also counted mesh-wide. */
export function withTelemetry(metrics: SidecarMetrics, telemetry: Telemetry, service: string): SidecarMetrics {
  return {
    ...metrics,
    retry(source, destination) {
      metrics.retry(source, destination);
      telemetry.count("retries", { source, destination });
    },
    breaker(destination, version, state) {
      metrics.breaker(destination, version, state);
      telemetry.gauge("breaker_state", { source: service, destination, version }, BREAKER_STATE_VALUE[state]);
    },
    authz(s, caller, decision) {
      metrics.authz(s, caller, decision);
      // Control merges only decisions about the reporting service; a caller's fail-fast denial stays local
      // (and reaches control as the outbound request's `forbidden` code).
      if (s === service) telemetry.count("authz", { service: s, caller, decision });
    },
    quota(s, caller, decision) {
      metrics.quota(s, caller, decision);
      telemetry.count("quota", { service: s, caller, decision });
    },
  };
}
