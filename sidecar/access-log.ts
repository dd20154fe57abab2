import type { NatsConnection } from "@nats-io/transport-node";
import { jetstream, type JetStreamClient } from "@nats-io/jetstream";
import type { Logger } from "pino";
import { Counter, type Registry } from "prom-client";
import { accessSubject, type AccessRecord } from "../schemas/index.ts";
import type { RequestObserver, RequestRecord } from "./request-record.ts";
import { traceIdOf } from "./trace.ts";

/** Defaults; units are in the names. */
export const ACCESS_LOG_DEFAULTS = {
  /** a batch leaves at least this often */
  batchMs: 1_000,
  /** ... or as soon as this many records wait */
  maxBatch: 500,
  /** records held while JetStream is slow or away; more are dropped and counted */
  maxBuffered: 10_000,
  /** batches awaiting their JetStream ack at once */
  maxInFlight: 4,
  /** how long a batch waits for its ack before its records count as dropped */
  ackTimeoutMs: 5_000,
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
export function toAccessRecord(r: RequestRecord, reporter: string): AccessRecord {
  const span = /^00-[0-9a-f]{32}-([0-9a-f]{16})-/.exec(r.traceparent)?.[1] ?? "";
  return {
    time: new Date(r.startedAt).toISOString(),
    requestId: r.requestId,
    traceId: traceIdOf(r.traceparent) ?? "",
    spanId: span,
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
  };
}

/**
 * Access records, one per request and sidecar, batched into JetStream stream
 * MESH_ACCESS as JSON lines on `mesh.access.<destination>.<source>.<direction>`.
 * Nothing here runs on a request's path but the push into a bounded buffer;
 * when JetStream is away records are dropped and counted, never waited for.
 */
export function createAccessLog(opts: AccessLogOptions): AccessLog {
  const o = { ...ACCESS_LOG_DEFAULTS, ...definedOnly(opts) };
  const js: JetStreamClient = jetstream(opts.nc);
  const reporter = `${opts.service}/${opts.instance}`;
  const metric = opts.registry
    ? new Counter({ name: "mesh_access_records_total", help: "Access records by outcome: published to MESH_ACCESS, or dropped", labelNames: ["outcome"], registers: [opts.registry] })
    : undefined;
  const counts = { published: 0, dropped: 0 };
  let buffer: RequestRecord[] = [];
  let inFlight = new Set<Promise<void>>();
  let scheduled = false;
  let lastWarn = 0;

  const drop = (n: number, err?: unknown) => {
    counts.dropped += n;
    metric?.inc({ outcome: "dropped" }, n);
    if (Date.now() - lastWarn >= ACCESS_LOG_DEFAULTS.warnEveryMs) {
      lastWarn = Date.now();
      opts.logger.warn({ err, dropped: counts.dropped }, "access records dropped (is the MESH_ACCESS stream reachable?)");
    }
  };

  const send = (subject: string, lines: string[]): void => {
    const n = lines.length;
    const p = js
      .publish(subject, lines.join("\n"), { timeout: o.ackTimeoutMs })
      .then(
        () => {
          counts.published += n;
          metric?.inc({ outcome: "published" }, n);
        },
        (err) => drop(n, err),
      )
      .finally(() => {
        inFlight.delete(p);
        if (buffer.length > 0) schedule();
      });
    inFlight.add(p);
  };

  /** Sends one batch, one message per subject, each under the server's max_payload. */
  const sendBatch = (records: RequestRecord[]): void => {
    const limit = Math.max(1024, (opts.nc.info?.max_payload ?? 1024 * 1024) - 4096);
    const bySubject = new Map<string, string[]>();
    const sizes = new Map<string, number>();
    for (const r of records) {
      const subject = accessSubject(r.destination, r.source, r.direction);
      const line = JSON.stringify(toAccessRecord(r, reporter));
      const size = (sizes.get(subject) ?? 0) + Buffer.byteLength(line) + 1;
      if (size > limit && bySubject.has(subject)) {
        send(subject, bySubject.get(subject)!);
        bySubject.delete(subject);
        sizes.set(subject, Buffer.byteLength(line) + 1);
      } else sizes.set(subject, size);
      let lines = bySubject.get(subject);
      if (!lines) bySubject.set(subject, (lines = []));
      lines.push(line);
    }
    for (const [subject, lines] of bySubject) send(subject, lines);
  };

  const flush = (force = false): void => {
    scheduled = false;
    try {
      while (buffer.length > 0 && (force || inFlight.size < o.maxInFlight)) {
        const batch = buffer.length <= o.maxBatch ? buffer : buffer.slice(0, o.maxBatch);
        buffer = batch === buffer ? [] : buffer.slice(o.maxBatch);
        sendBatch(batch);
      }
    } catch (err) {
      // A closed connection throws at publish: what was taken is lost.
      drop(buffer.length, err);
      buffer = [];
    }
  };

  function schedule(): void {
    if (scheduled) return;
    scheduled = true;
    setImmediate(() => flush());
  }

  const timer = setInterval(() => flush(), o.batchMs);
  timer.unref();

  return {
    observe(record) {
      if (buffer.length >= o.maxBuffered) return drop(1);
      buffer.push(record);
      if (buffer.length >= o.maxBatch) schedule();
    },
    stats: () => ({ ...counts, buffered: buffer.length }),
    async stop() {
      clearInterval(timer);
      flush(true);
      const waiting = [...inFlight];
      inFlight = new Set();
      await Promise.race([Promise.allSettled(waiting), new Promise((r) => setTimeout(r, o.ackTimeoutMs).unref())]);
    },
  };
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
