import { randomBytes } from "node:crypto";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import {
  DURATION_BUCKETS_SECONDS,
  TELEMETRY_COUNTERS,
  TELEMETRY_GAUGES,
  TELEMETRY_INTERVAL_MS,
  methodLabel,
  telemetrySubject,
  type NamedRow,
  type RequestRow,
  type TelemetryCounterLabels,
  type TelemetryCounterName,
  type TelemetryGaugeLabels,
  type TelemetryGaugeName,
  type TelemetryReport,
} from "../../schemas/index.ts";
import type { RequestObserver, RequestRecord } from "./request-record.ts";

/** Defaults; units are in the names. */
export const DEFAULT_MAX_SERIES = 5_000;
/** Rows per message, so a report stays far below NATS max_payload (a row is ~150 bytes). */
const ROWS_PER_MESSAGE = 1_000;
const SEP = "\u0001";

export interface TelemetryOptions {
  nc: NatsConnection;
  service: string;
  instance: string;
  /** version of the local application */
  version: string;
  logger: Logger;
  /** how often deltas are published; default TELEMETRY_INTERVAL_MS (2000) */
  intervalMs?: number;
  /** request label sets kept per interval; more are dropped and counted; default 5000 */
  maxSeries?: number;
  /** the sidecar's region, sent with each report (docs/multi-region.md) */
  region?: () => string | undefined;
}

export interface Telemetry {
  /** O(1), never throws, never does I/O: adds the request to this interval's deltas */
  readonly observe: RequestObserver;
  /** adds `delta` (default 1) to one of TELEMETRY_COUNTERS, e.g. `count("retries", { source, destination, reason })` */
  count<N extends TelemetryCounterName>(name: N, labels: TelemetryCounterLabels<N>, delta?: number): void;
  /** sets one of TELEMETRY_GAUGES, e.g. `gauge("breaker_state", { source, destination, version }, BREAKER_STATE_VALUE.open)` */
  gauge<N extends TelemetryGaugeName>(name: N, labels: TelemetryGaugeLabels<N>, value: number): void;
  /** publishes what was gathered since the last report now (tests; the timer does it otherwise) */
  flush(): void;
  /** publishes a final report and stops the timer; call before closing the NATS connection */
  stop(): Promise<void>;
}

interface Series {
  row: RequestRow;
  buckets: number[];
}

/** Index of the histogram bucket (bound >= seconds); the last index is +Inf. */
export function bucketIndex(seconds: number, bounds: readonly number[] = DURATION_BUCKETS_SECONDS): number {
  let i = 0;
  while (i < bounds.length && seconds > bounds[i]!) i++;
  return i;
}

function labelValues(names: readonly string[], labels: Record<string, string>): string[] {
  return names.map((n) => String(labels[n] ?? ""));
}

/**
 * Mesh-wide metrics from this sidecar: requests are aggregated in memory and
 * published as compact deltas on `mesh.telemetry.<service>.<instance>` every
 * interval (core NATS, fire and forget). Control merges them; a lost delta is
 * lost counts, never a failed or slower request.
 */
export function createTelemetry(opts: TelemetryOptions): Telemetry {
  return new TelemetryReporter(opts);
}

class TelemetryReporter implements Telemetry {
  readonly #opts: TelemetryOptions;
  readonly #intervalMs: number;
  readonly #maxSeries: number;
  readonly #subject: string;
  readonly #boot = randomBytes(6).toString("hex");
  readonly #gauges = new Map<string, NamedRow>();
  readonly #timer: NodeJS.Timeout;
  #series = new Map<string, Series>();
  #counters = new Map<string, NamedRow>();
  #droppedSeries = 0;
  #seq = 0;
  #warned = false;

  constructor(opts: TelemetryOptions) {
    this.#opts = opts;
    this.#intervalMs = opts.intervalMs ?? TELEMETRY_INTERVAL_MS;
    this.#maxSeries = opts.maxSeries ?? DEFAULT_MAX_SERIES;
    this.#subject = telemetrySubject(opts.service, opts.instance);
    this.#timer = setInterval(() => this.#flush(false), this.#intervalMs);
    this.#timer.unref();
  }

  readonly observe = (r: RequestRecord): void => {
    try {
      const method = methodLabel(r.method);
      const key = r.direction + SEP + r.source + SEP + r.destination + SEP + r.version + SEP + method + SEP + r.code;
      let s = this.#series.get(key);
      if (!s) {
        if (this.#series.size >= this.#maxSeries) return void this.#droppedSeries++;
        const buckets = new Array<number>(DURATION_BUCKETS_SECONDS.length + 1).fill(0);
        s = { row: [r.direction, r.source, r.destination, r.version, method, r.code, 0, 0, buckets], buckets };
        this.#series.set(key, s);
      }
      const seconds = Math.max(0, r.durationMs) / 1000;
      s.row[6]++;
      s.row[7] += seconds;
      s.buckets[bucketIndex(seconds)]!++;
      if (r.stream && r.direction === "outbound") {
        this.count("stream_bytes", { source: r.source, destination: r.destination, flow: "request" }, r.stream.bytesOut);
        this.count("stream_bytes", { source: r.source, destination: r.destination, flow: "response" }, r.stream.bytesIn);
      }
    } catch {
      // A malformed record costs its count, never the request.
    }
  };

  count<N extends TelemetryCounterName>(name: N, labels: TelemetryCounterLabels<N>, delta = 1): void {
    try {
      const values = labelValues(TELEMETRY_COUNTERS[name].labels, labels);
      const key = name + SEP + values.join(SEP);
      const row = this.#counters.get(key);
      if (row) row[2] += delta;
      else this.#counters.set(key, [name, values, delta]);
    } catch {
      /* telemetry never fails its caller */
    }
  }

  gauge<N extends TelemetryGaugeName>(name: N, labels: TelemetryGaugeLabels<N>, value: number): void {
    try {
      const values = labelValues(TELEMETRY_GAUGES[name].labels, labels);
      this.#gauges.set(name + SEP + values.join(SEP), [name, values, value]);
    } catch {
      /* as above */
    }
  }

  flush(): void {
    this.#flush(false);
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#flush(true);
  }

  /** Publishes this interval's deltas (in several messages when there are many rows) and starts the next. */
  #flush(final: boolean): void {
    const idle = this.#series.size === 0 && this.#counters.size === 0 && this.#gauges.size === 0 && this.#droppedSeries === 0;
    if (idle && !final) return;
    const rows = [...this.#series.values()].map((s) => s.row);
    const { service, version, instance } = this.#opts;
    const region = this.#opts.region?.();
    const base = { v: 1 as const, service, version, instance, ...(region ? { region } : {}), boot: this.#boot, at: Date.now(), intervalMs: this.#intervalMs, le: [...DURATION_BUCKETS_SECONDS] };
    const parts = Math.max(1, Math.ceil(rows.length / ROWS_PER_MESSAGE));
    for (let p = 0; p < parts; p++) {
      const first = p === 0;
      this.#publish({
        ...base,
        seq: ++this.#seq,
        requests: rows.slice(p * ROWS_PER_MESSAGE, (p + 1) * ROWS_PER_MESSAGE),
        counters: first ? [...this.#counters.values()] : [],
        gauges: first ? [...this.#gauges.values()] : [],
        droppedSeries: first ? this.#droppedSeries : 0,
        final: final && p === parts - 1,
      });
    }
    this.#series = new Map();
    this.#counters = new Map();
    this.#droppedSeries = 0;
  }

  #publish(report: TelemetryReport): void {
    try {
      this.#opts.nc.publish(this.#subject, JSON.stringify(report));
    } catch (err) {
      // Closed connection: the delta is lost, which control sees as a gap in seq.
      if (!this.#warned) this.#opts.logger.warn({ err, subject: this.#subject }, "telemetry not published");
      this.#warned = true;
    }
  }
}
