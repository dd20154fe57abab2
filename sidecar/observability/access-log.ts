import type { NatsConnection } from "@nats-io/transport-node";
import { jetstream, type JetStreamClient } from "@nats-io/jetstream";
import type { Logger } from "pino";
import { Counter, type Registry } from "prom-client";
import { atMost } from "../../runtime/lifecycle.ts";
import { accessSubject, type AccessRecord } from "../../schemas/index.ts";
import type { RequestObserver, RequestRecord } from "./request-record.ts";
import { spanIdOf, traceIdOf } from "./trace.ts";

/** Defaults; units are in the names. */
export const ACCESS_LOG_DEFAULTS = {
  /** a batch leaves at least this often */
  batchMs: 1_000,
  /**
   * ... or as soon as this many records wait. Small enough that under load a
   * record waits less than the time between two young-generation GCs: the
   * records of 500 waited long enough to be moved to the old generation, and
   * made most of what a provider sidecar promoted (docs/architecture.md §16).
   */
  maxBatch: 100,
  /** records held while JetStream is slow or away; more are dropped and counted */
  maxBuffered: 10_000,
  /** batches awaiting their JetStream ack at once (20 x 100: as many records as 4 batches of 500 were) */
  maxInFlight: 20,
  /** how long a batch waits for its ack before its records count as dropped */
  ackTimeoutMs: 5_000,
  /** how long stop() waits for outstanding acks */
  stopWaitMs: 2_000,
  /** at most one warning per this many milliseconds while records are dropped */
  warnEveryMs: 60_000,
} as const;

export interface AccessLogOptions {
  nc: NatsConnection;
  service: string;
  instance: string;
  logger: Logger;
  batchMs?: number;
  maxBatch?: number;
  maxBuffered?: number;
  maxInFlight?: number;
  ackTimeoutMs?: number;
  /** counts published and dropped records when given */
  registry?: Registry;
  /** the sidecar's region, in every record (docs/multi-region.md) */
  region?: () => string | undefined;
}

export interface AccessLogStats {
  /** records JetStream acknowledged */
  published: number;
  /** records lost: buffer full, JetStream unreachable or no MESH_ACCESS stream */
  dropped: number;
  /** records waiting for the next batch */
  buffered: number;
}

export interface AccessLog {
  /** O(1), never throws: queues the record for the next batch */
  readonly observe: RequestObserver;
  stats(): AccessLogStats;
  /** sends what waits and waits (a bounded time) for outstanding acks */
  stop(): Promise<void>;
}

/** The stored form of a record; `reporter` is the sidecar instance that saw it. */
export function toAccessRecord(r: RequestRecord, reporter: string, region?: string): AccessRecord {
  return {
    time: new Date(r.startedAt).toISOString(),
    requestId: r.requestId,
    traceId: traceIdOf(r.traceparent) ?? "",
    spanId: spanIdOf(r.traceparent) ?? "",
    direction: r.direction,
    source: r.source,
    destination: r.destination,
    version: r.version,
    instance: r.instance ?? null,
    method: r.method,
    path: r.path,
    status: r.status,
    code: r.code,
    durationMs: Math.round(r.durationMs * 1000) / 1000,
    attempts: r.attempts,
    meshError: r.meshError ?? null,
    reporter,
    ...(region ? { region } : {}),
    ...(r.stream ? { stream: r.stream } : {}),
  };
}

/**
 * Access records, one per request and sidecar, batched into JetStream stream
 * MESH_ACCESS as JSON lines on `mesh.access.<destination>.<source>.<direction>`.
 * Nothing here runs on a request's path but the push into a bounded buffer;
 * when JetStream is away records are dropped and counted, never waited for.
 */
export function createAccessLog(opts: AccessLogOptions): AccessLog {
  return new BatchingAccessLog(opts);
}

class BatchingAccessLog implements AccessLog {
  readonly #opts: AccessLogOptions;
  readonly #o: { -readonly [K in keyof typeof ACCESS_LOG_DEFAULTS]: number };
  readonly #js: JetStreamClient;
  readonly #reporter: string;
  readonly #region: (() => string | undefined) | undefined;
  readonly #metric: Counter<"outcome"> | undefined;
  readonly #counts = { published: 0, dropped: 0 };
  readonly #timer: NodeJS.Timeout;
  #buffer: RequestRecord[] = [];
  #inFlight = new Set<Promise<void>>();
  #scheduled = false;
  #lastWarn = 0;

  constructor(opts: AccessLogOptions) {
    this.#opts = opts;
    this.#o = { ...ACCESS_LOG_DEFAULTS, ...Object.fromEntries(Object.entries(opts).filter(([k, v]) => v !== undefined && k in ACCESS_LOG_DEFAULTS)) };
    this.#js = jetstream(opts.nc);
    this.#reporter = `${opts.service}/${opts.instance}`;
    this.#region = opts.region;
    this.#metric = opts.registry
      ? new Counter({ name: "mesh_access_records_total", help: "Access records by outcome: published to MESH_ACCESS, or dropped", labelNames: ["outcome"], registers: [opts.registry] })
      : undefined;
    this.#timer = setInterval(() => this.#flush(false), this.#o.batchMs);
    this.#timer.unref();
  }

  readonly observe = (record: RequestRecord): void => {
    if (this.#buffer.length >= this.#o.maxBuffered) return this.#drop(1);
    this.#buffer.push(record);
    if (this.#buffer.length >= this.#o.maxBatch) this.#schedule();
  };

  stats(): AccessLogStats {
    return { ...this.#counts, buffered: this.#buffer.length };
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#flush(true);
    const waiting = [...this.#inFlight];
    await atMost(Promise.allSettled(waiting), this.#o.stopWaitMs);
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => this.#flush(false));
  }

  /** Sends batches while fewer than maxInFlight await their acks (all of them when forced). */
  #flush(force: boolean): void {
    this.#scheduled = false;
    const { maxBatch, maxInFlight } = this.#o;
    while (this.#buffer.length > 0 && (force || this.#inFlight.size < maxInFlight)) {
      const batch = this.#buffer.length <= maxBatch ? this.#buffer : this.#buffer.slice(0, maxBatch);
      this.#buffer = batch === this.#buffer ? [] : this.#buffer.slice(maxBatch);
      this.#sendBatch(batch);
    }
  }

  /** One message per subject, each under the server's max_payload. */
  #sendBatch(records: RequestRecord[]): void {
    const limit = Math.max(1024, (this.#opts.nc.info?.max_payload ?? 1024 * 1024) - 4096);
    const bySubject = new Map<string, { lines: string[]; size: number }>();
    const region = this.#region?.();
    for (const r of records) {
      const subject = accessSubject(r.destination, r.source, r.direction);
      const line = JSON.stringify(toAccessRecord(r, this.#reporter, region));
      const size = Buffer.byteLength(line) + 1;
      let group = bySubject.get(subject);
      if (group && group.size + size > limit) {
        this.#send(subject, group.lines);
        group = undefined;
      }
      if (!group) bySubject.set(subject, (group = { lines: [], size: 0 }));
      group.lines.push(line);
      group.size += size;
    }
    for (const [subject, group] of bySubject) this.#send(subject, group.lines);
  }

  #send(subject: string, lines: string[]): void {
    const n = lines.length;
    const p: Promise<void> = this.#js
      .publish(subject, lines.join("\n"), { timeout: this.#o.ackTimeoutMs })
      .then(
        () => {
          this.#counts.published += n;
          this.#metric?.inc({ outcome: "published" }, n);
        },
        (err) => this.#drop(n, err),
      )
      .finally(() => {
        this.#inFlight.delete(p);
        if (this.#buffer.length > 0) this.#schedule();
      });
    this.#inFlight.add(p);
  }

  #drop(n: number, err?: unknown): void {
    this.#counts.dropped += n;
    this.#metric?.inc({ outcome: "dropped" }, n);
    if (Date.now() - this.#lastWarn >= ACCESS_LOG_DEFAULTS.warnEveryMs) {
      this.#lastWarn = Date.now();
      this.#opts.logger.warn({ err, dropped: this.#counts.dropped }, "access records dropped (is the MESH_ACCESS stream reachable?)");
    }
  }
}
