import { headers as natsHeaders, type Msg, type MsgHdrs, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import type { Logger } from "pino";
import type { Dispatcher, Pool } from "undici";
import {
  HttpHeader,
  Wire,
  classify,
  instanceSubscription,
  isReplyOf,
  parseRpcSubject,
  providerSubscriptions,
  signedSubject,
  type Outcome,
} from "../../schemas/index.ts";
import { MeshError, appUnreachable } from "../errors.ts";
import { NOT_FOR_THE_APP, natsHeadersToFlat, responseHeadersToNats } from "../http-wire.ts";
import { InflightTracker } from "../inflight.ts";
import type { RequestObserver } from "../observability/request-record.ts";
import { pathOnly } from "../policy/routing.ts";
import { childSpan } from "../observability/trace.ts";

/**
 * Decides, before the application is called, whether a request may go on
 * (authorization, quota). Returning a MeshError answers with it instead.
 * `extraHeaders` are added to the application's answer (e.g. RateLimit-*).
 */
export type InboundGate = (
  caller: string,
  method: string,
  path: string,
) => { error?: MeshError; extraHeaders?: ReadonlyArray<readonly [string, string]> } | undefined | Promise<{ error?: MeshError; extraHeaders?: ReadonlyArray<readonly [string, string]> } | undefined>;

export interface InboundOptions {
  nc: NatsConnection;
  service: string;
  version: string;
  instance: string;
  /** the application's origin, for error messages */
  app: string;
  pool: Pool;
  /** used when a request carries no deadline of its own */
  defaultTimeoutMs: number;
  /** requests handled at once; beyond it the answer is `overloaded` at once (0 = no limit) */
  maxConcurrent: number;
  /** a caller's deadline is brought forward to at most this many ms from now */
  maxDeadlineMs: number;
  /** told of every request dropped because its header block cannot be read */
  onMalformed?: (subject: string, err: unknown) => void;
  gate?: InboundGate;
  observe: RequestObserver;
  logger: Logger;
}

/**
 * The inbound adapter: requests arriving in this service's queue groups
 * (or on this instance's own subject) become HTTP requests to the local
 * application, its answers NATS replies.
 */
export class InboundAdapter {
  readonly inflight = new InflightTracker();
  readonly #opts: InboundOptions;
  #subs: Subscription[] = [];

  constructor(opts: InboundOptions) {
    this.#opts = opts;
  }

  /** Joins the queue groups and the instance subject; resolves once the server has them. */
  async start(): Promise<void> {
    if (this.#subs.length > 0) return;
    const { nc, service, version, instance } = this.#opts;
    const subjects = [...providerSubscriptions(service, version), { subject: instanceSubscription(service, instance), queue: undefined }];
    this.#subs = subjects.map(({ subject, queue }) =>
      nc.subscribe(subject, {
        ...(queue ? { queue } : {}),
        callback: (err, msg) => {
          if (err) this.#opts.logger.error({ err, subject }, "inbound subscription failed");
          else {
            const caller = this.#callerOf(msg);
            // Counted before the request is tracked, so the limit is exact.
            if (caller && this.#readable(msg)) this.inflight.track(this.#handle(msg, caller, this.#overloaded()));
          }
        },
      }),
    );
    await nc.flush();
  }

  /**
   * Leaves the queue groups (so new requests go to other instances) and
   * waits until every request already received has been answered.
   */
  async drain(viaNats = true): Promise<void> {
    await this.leave(viaNats);
    await this.inflight.idle();
  }

  /** Stops taking requests, without waiting for those in flight (they still finish). */
  async leave(viaNats = true): Promise<void> {
    const subs = this.#subs;
    this.#subs = [];
    if (viaNats) await Promise.all(subs.map((sub) => sub.drain().catch(() => undefined)));
    else for (const sub of subs) sub.unsubscribe();
  }

  /**
   * The caller of a request, parsed once: only a request subject naming this
   * service (the caller token is only trustworthy there) with a reply
   * subject in that caller's own inbox is a request; undefined otherwise.
   * Anything else delivered on these subscriptions (a JetStream answer or
   * delivery aimed here, or a request whose reply points at a third party's
   * inbox) is dropped unanswered.
   */
  #callerOf(msg: Msg): string | undefined {
    const address = parseRpcSubject(msg.subject);
    return address?.service === this.#opts.service && isReplyOf(msg.reply, address.caller) ? address.caller : undefined;
  }

  /** Answers on `<reply>.<this service>`: the only inbox subjects secure mode lets this sidecar publish to. */
  #respond(msg: Msg, body: Uint8Array, headers: MsgHdrs): void {
    this.#opts.nc.publish(signedSubject(msg.reply!, this.#opts.service), body, { headers });
  }

  /** nats.js decodes headers on first read and throws on a malformed block (a raw client can send one). */
  #readable(msg: Msg): boolean {
    try {
      void msg.headers;
      return true;
    } catch (err) {
      this.#opts.onMalformed?.(msg.subject, err);
      return false;
    }
  }

  #overloaded(): boolean {
    const { maxConcurrent } = this.#opts;
    return maxConcurrent > 0 && this.inflight.size >= maxConcurrent;
  }

  async #handle(msg: Msg, caller: string, overloaded: boolean): Promise<void> {
    const startedAt = Date.now();
    const h = msg.headers;
    const method = h?.get(Wire.method) || "GET";
    const path = h?.get(Wire.path) || "/";
    const requestId = h?.get(Wire.requestId) || crypto.randomUUID();
    // The server span: a child of the caller's span, and the parent of whatever the app does.
    const { traceparent, parentSpanId } = childSpan(h?.get(Wire.traceparent) || undefined);
    let outcome: Outcome;
    try {
      if (overloaded) {
        const { service, instance, maxConcurrent } = this.#opts;
        throw new MeshError("overloaded", `'${service}' instance ${instance} is at its limit of ${maxConcurrent} requests`);
      }
      const appStatus = await this.#forward(msg, { caller, method, path, requestId, traceparent, deadlineAt: this.#deadlineOf(h, startedAt) });
      outcome = classify({ appStatus });
    } catch (err) {
      const e = err instanceof MeshError ? err : appUnreachable(this.#opts.app, err);
      this.#respondError(msg, e);
      outcome = classify({ meshError: e });
    }
    const { service, version, instance } = this.#opts;
    const { status, code, meshError } = outcome;
    this.#opts.observe({
      direction: "inbound", source: caller, destination: service, version, instance, method, path, status,
      code, meshError, startedAt, durationMs: Date.now() - startedAt, attempts: 1, requestId, traceparent, parentSpanId,
    });
  }

  #deadlineOf(h: MsgHdrs | undefined, receivedAt: number): number {
    const deadline = Number(h?.get(Wire.deadline));
    // Capped: a caller cannot hold the app's connections and timers for longer than maxDeadlineMs.
    return Math.min(deadline > 0 ? deadline : receivedAt + this.#opts.defaultTimeoutMs, receivedAt + this.#opts.maxDeadlineMs);
  }

  async #forward(
    msg: Msg,
    r: { caller: string; method: string; path: string; requestId: string; traceparent: string; deadlineAt: number },
  ): Promise<number> {
    const budgetMs = r.deadlineAt - Date.now();
    if (budgetMs <= 0) throw new MeshError("timeout", `deadline passed before '${this.#opts.service}' could be called`);
    const admitted = await this.#opts.gate?.(r.caller, r.method, pathOnly(r.path));
    if (admitted?.error) throw admitted.error;
    const headers = natsHeadersToFlat(msg.headers, [], NOT_FOR_THE_APP);
    headers.push(
      HttpHeader.caller, r.caller,
      HttpHeader.requestId, r.requestId,
      HttpHeader.traceparent, r.traceparent,
      HttpHeader.deadlineMs, String(budgetMs),
    );
    if (msg.headers?.has(Wire.mirror)) headers.push(HttpHeader.mirror, "true");
    const response = await this.#opts.pool
      .request({ method: r.method as Dispatcher.HttpMethod, path: r.path, headers, body: msg.data.length > 0 ? msg.data : null, headersTimeout: budgetMs, bodyTimeout: budgetMs })
      .catch((err) => {
        throw this.#appError(err, budgetMs);
      });
    const body = await this.#readResponse(response, budgetMs);
    const reply = this.#replyHeaders(response.statusCode);
    responseHeadersToNats(reply, response.headers);
    for (const [k, v] of admitted?.extraHeaders ?? []) reply.set(k, v);
    this.#respond(msg, body, reply);
    return response.statusCode;
  }

  async #readResponse(response: Dispatcher.ResponseData, budgetMs: number): Promise<Uint8Array> {
    const limit = this.#opts.nc.info?.max_payload ?? 1024 * 1024;
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of response.body as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > limit) {
          response.body.destroy();
          throw new MeshError("response_too_large", `application response exceeds the mesh limit of ${limit} bytes`);
        }
        chunks.push(chunk);
      }
    } catch (err) {
      throw err instanceof MeshError ? err : this.#appError(err, budgetMs);
    }
    return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
  }

  #appError(err: unknown, budgetMs: number): MeshError {
    const code = (err as { code?: string }).code;
    if (code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_BODY_TIMEOUT") {
      return new MeshError("timeout", `application did not answer within ${budgetMs} ms`, { cause: err });
    }
    return appUnreachable(this.#opts.app, err);
  }

  #replyHeaders(status: number): MsgHdrs {
    const reply = natsHeaders();
    reply.set(Wire.status, String(status));
    reply.set(Wire.version, this.#opts.version);
    reply.set(Wire.instance, this.#opts.instance);
    return reply;
  }

  #respondError(msg: Msg, err: MeshError): void {
    const reply = this.#replyHeaders(err.status);
    reply.set(Wire.error, err.code);
    reply.set("content-type", "application/json");
    if (err.extraHeaders) for (const [k, v] of err.extraHeaders) reply.set(k, v);
    try {
      this.#respond(msg, new TextEncoder().encode(err.body()), reply);
    } catch (respondErr) {
      this.#opts.logger.warn({ err: respondErr }, "could not send error reply");
    }
  }
}
