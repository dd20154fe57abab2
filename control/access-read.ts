import type { NatsConnection } from "@nats-io/transport-node";
import { jetstream, type Consumer } from "@nats-io/jetstream";
import { Counter, type Registry } from "prom-client";
import { ACCESS_STREAM, accessFilter, accessRecordsOf, type ControlReplies, type ValidControlRequests } from "../schemas/index.ts";
import { ControlError } from "./errors.ts";

/**
 * The `logs` verb: control reads stream MESH_ACCESS for the CLI, so the CLI
 * needs no JetStream permission at all. Each page is read with a short-lived
 * ordered consumer (deleted after the page), every record is validated and
 * checked against its subject, and the page is bounded in records and bytes.
 */
export const LOGS_LIMITS = {
  /** records per page at most (a request's limit defaults to 1000: control-logs-request.schema.json) */
  maxLimit: 5_000,
  /** stream messages (batches of records) read per page at most */
  maxMessages: 256,
  /** a page's records stop growing past this share of the server's max_payload */
  replyShareOfMaxPayload: 0.75,
  /** how long a page waits for messages the server said were pending */
  fetchExpiresMs: 5_000,
} as const;

/** Validated: `limit` is always there. */
export type LogsRequest = ValidControlRequests["logs"];
export type LogsReply = ControlReplies["logs"];

export class AccessReader {
  readonly #nc: NatsConnection;
  readonly #dropped: Counter;

  constructor(nc: NatsConnection, registry: Registry) {
    this.#nc = nc;
    this.#dropped = new Counter({
      name: "mesh_access_records_rejected_total",
      help: "Access records control read from MESH_ACCESS and did not return: malformed, or not matching their subject",
      registers: [registry],
    });
  }

  async logs(request: LogsRequest): Promise<LogsReply> {
    const req = { ...request, limit: Math.min(request.limit, LOGS_LIMITS.maxLimit) };
    const consumer = await this.#open(req);
    try {
      return await this.#page(consumer, req);
    } finally {
      await consumer.delete().catch(() => undefined);
    }
  }

  async #open(req: LogsRequest): Promise<Consumer> {
    const start = req.afterSeq !== undefined ? { opt_start_seq: req.afterSeq + 1 } : { opt_start_time: new Date(req.since ?? 0).toISOString() };
    try {
      return await jetstream(this.#nc).consumers.get(ACCESS_STREAM, { filter_subjects: accessFilter(req.service, req.from), inactive_threshold: 30_000, ...start });
    } catch (err) {
      if (/stream not found/i.test(String((err as Error).message))) throw new ControlError("not_found", `no access log: stream ${ACCESS_STREAM} does not exist`);
      throw err;
    }
  }

  async #page(consumer: Consumer, req: LogsRequest): Promise<LogsReply> {
    const pending = (await consumer.info(true)).num_pending;
    const reply: LogsReply = { records: [], lastSeq: req.afterSeq ?? 0, more: false };
    if (pending === 0) return reply;
    const budget = (this.#nc.info?.max_payload ?? 1024 * 1024) * LOGS_LIMITS.replyShareOfMaxPayload;
    const messages = Math.min(pending, LOGS_LIMITS.maxMessages);
    const iter = await consumer.fetch({ max_messages: messages, expires: LOGS_LIMITS.fetchExpiresMs });
    let bytes = 0;
    let read = 0;
    for await (const m of iter) {
      read++;
      const { records, dropped } = accessRecordsOf(m.subject, m.string());
      if (dropped > 0) this.#dropped.inc(dropped);
      reply.lastSeq = m.seq;
      for (const record of records) {
        if (req.since !== undefined && Date.parse(record.time) < req.since) continue;
        reply.records.push({ seq: m.seq, record });
        bytes += JSON.stringify(record).length + 24;
      }
      if (reply.records.length >= req.limit || bytes >= budget || read >= messages) break;
    }
    await iter.close().catch(() => undefined);
    reply.more = read < pending;
    // Batches come in publish order, several sidecars interleaved: the page is in time order.
    reply.records.sort((a, b) => (a.record.time < b.record.time ? -1 : a.record.time > b.record.time ? 1 : a.seq - b.seq));
    return reply;
  }
}
