import { request as httpRequest } from "node:http";
import { PassThrough, type Duplex, type Readable } from "node:stream";
import { type Msg, type MsgHdrs, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import type { Logger } from "pino";
import type { Dispatcher, Pool } from "undici";
import {
  HttpHeader,
  StreamProtocol,
  StreamWire,
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
import type { Channel, Inbox } from "../inbox.ts";
import { InflightTracker } from "../inflight.ts";
import type { RequestObserver, StreamRecord } from "../observability/request-record.ts";
import { readAtHand } from "../streaming/at-hand.ts";
import { brokenStream, joinStream, oneMessageLimit, type StreamSettings } from "../streaming/exchange.ts";
import type { StreamOutcome, StreamSession, StreamSink } from "../streaming/session.ts";
import { pathOnly } from "../policy/routing.ts";
import { childSpan } from "../observability/trace.ts";
import { WireHeaders, readHeaders } from "../wire-headers.ts";

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
  /** this sidecar's inbox: where callers send the bodies and credits of streams */
  inbox: Inbox;
  streams: StreamSettings;
  /** bytes a request body may have in all; more ends its stream with too_large */
  maxBodyBytes: number;
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
  #joined = false;

  constructor(opts: InboundOptions) {
    this.#opts = opts;
  }

  /** True once the server has this instance's subscriptions, until it starts to leave. */
  get joined(): boolean {
    return this.#joined;
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
    // Ready only now: a request sent before the server had the subscriptions would find no responders.
    this.#joined = this.#subs.length > 0;
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
    this.#joined = false;
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

  /**
   * Answers on `<reply>.<this service>`: the only inbox subjects secure mode
   * lets this sidecar publish to. `batched`: a whole answer that nothing of
   * its exchange must follow may leave with the others of this event-loop
   * turn (sidecar/publish-batch.ts).
   */
  #respond(msg: Msg, body: Uint8Array, headers: MsgHdrs, batched = false): void {
    const subject = signedSubject(msg.reply!, this.#opts.service);
    if (!batched) return this.#opts.nc.publish(subject, body, { headers });
    this.#opts.inbox.batch.publish(subject, body, { headers }, this.#answerFailed, this.inflight.size <= 1);
  }

  readonly #answerFailed = (err: Error): void => this.#opts.logger.warn({ err }, "could not send an answer");

  /** Reads the header block once (readHeaders), which throws on a malformed one (a raw client can send one). */
  #readable(msg: Msg): boolean {
    try {
      readHeaders(msg);
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
    const exchange: Exchange = { caller };
    try {
      if (overloaded) {
        const { service, instance, maxConcurrent } = this.#opts;
        throw new MeshError("overloaded", `'${service}' instance ${instance} is at its limit of ${maxConcurrent} requests`);
      }
      const appStatus = await this.#forward(msg, exchange, { caller, method, path, requestId, traceparent, deadlineAt: this.#deadlineOf(h, startedAt) });
      outcome = classify({ appStatus });
    } catch (err) {
      const e = err instanceof MeshError ? err : appUnreachable(this.#opts.app, err);
      // Once a head has gone, the stream's abort says it; otherwise the error is the answer,
      // and a body still coming in is not wanted.
      if (exchange.headSent) exchange.session?.abort("source_failed");
      else {
        this.#respondError(msg, e);
        exchange.session?.abort("answered");
      }
      outcome = classify({ meshError: e });
    }
    const streamed = exchange.session ? await exchange.closed : undefined;
    if (streamed && !streamed.completed && exchange.headSent) outcome = brokenStream(streamed, outcome, true);
    const { service, version, instance } = this.#opts;
    const { status, code, meshError } = outcome;
    this.#opts.observe({
      direction: "inbound", source: caller, destination: service, version, instance, method, path, status,
      code, meshError, startedAt, durationMs: Date.now() - startedAt, attempts: 1, requestId, traceparent, parentSpanId,
      ...(streamed ? { stream: streamRecordOf(streamed) } : {}),
    });
  }

  #deadlineOf(h: MsgHdrs | undefined, receivedAt: number): number {
    const deadline = Number(h?.get(Wire.deadline));
    // Capped: a caller cannot hold the app's connections and timers for longer than maxDeadlineMs.
    return Math.min(deadline > 0 ? deadline : receivedAt + this.#opts.defaultTimeoutMs, receivedAt + this.#opts.maxDeadlineMs);
  }

  async #forward(
    msg: Msg,
    exchange: Exchange,
    r: { caller: string; method: string; path: string; requestId: string; traceparent: string; deadlineAt: number },
  ): Promise<number> {
    const budgetMs = r.deadlineAt - Date.now();
    if (budgetMs <= 0) throw new MeshError("timeout", `deadline passed before '${this.#opts.service}' could be called`);
    const admitted = await this.#opts.gate?.(r.caller, r.method, pathOnly(r.path));
    if (admitted?.error) throw admitted.error;
    // A body that streams is asked for only now, once the request is admitted (docs/architecture.md §15).
    const uploading = msg.headers?.has(StreamWire.stream) ?? false;
    let body: Uint8Array | Readable | null = msg.data.length > 0 ? msg.data : null;
    if (uploading) body = this.#askForBody(msg, exchange);
    const headers = natsHeadersToFlat(msg.headers, [], NOT_FOR_THE_APP);
    headers.push(
      HttpHeader.caller, r.caller,
      HttpHeader.requestId, r.requestId,
      HttpHeader.traceparent, r.traceparent,
      HttpHeader.deadlineMs, String(budgetMs),
    );
    if (msg.headers?.has(Wire.mirror)) headers.push(HttpHeader.mirror, "true");
    if (msg.headers?.get(StreamWire.upgrade) === "websocket") return this.#upgrade(msg, exchange, r, headers, budgetMs, admitted?.extraHeaders);
    // While a body streams in, the caller's sidecar keeps the time (it counts from the body's end).
    const response = await this.#opts.pool
      .request({
        method: r.method as Dispatcher.HttpMethod,
        path: r.path,
        headers,
        body,
        // Only an upload needs to abort the app's request from outside; a streamed answer is stopped by destroying its body.
        signal: exchange.abort?.signal,
        headersTimeout: uploading ? 0 : budgetMs,
        bodyTimeout: 0,
      })
      .catch((err) => {
        throw this.#appError(err, budgetMs);
      });
    return this.#answer(msg, exchange, r.method, { statusCode: response.statusCode, headers: response.headers, body: response.body }, budgetMs, admitted?.extraHeaders);
  }

  /** The application's answer: whole in one message when small and at hand, else its head and a stream. */
  async #answer(msg: Msg, exchange: Exchange, method: string, response: AppAnswer, budgetMs: number, extra: ReadonlyArray<readonly [string, string]> | undefined): Promise<number> {
    const reply = this.#replyHeaders(response.statusCode);
    responseHeadersToNats(reply, response.headers);
    for (const [k, v] of extra ?? []) reply.set(k, v);
    const whole = await this.#wholeBody(method, response, budgetMs);
    if (whole) {
      this.#respond(msg, whole, reply, !exchange.session);
      exchange.headSent = true;
      this.#release(exchange);
      return response.statusCode;
    }
    this.#streamAnswer(msg, exchange, reply, response);
    this.#release(exchange);
    return response.statusCode;
  }

  /**
   * A WebSocket upgrade: the application switches (101) and the connection
   * becomes a byte stream both ways with the caller's sidecar; an application
   * that does not switch answers as usual.
   */
  async #upgrade(
    msg: Msg,
    exchange: Exchange,
    r: { method: string; path: string },
    headers: string[],
    budgetMs: number,
    extra: ReadonlyArray<readonly [string, string]> | undefined,
  ): Promise<number> {
    const abort = (exchange.abort ??= new AbortController());
    const answer = await upgradeApp(this.#opts.app, r.path, headers, abort.signal, budgetMs).catch((err) => {
      throw this.#appError(err, budgetMs);
    });
    if (!("socket" in answer)) return this.#answer(msg, exchange, r.method, answer, budgetMs, extra);
    const { socket, head } = answer;
    socket.on("error", () => exchange.session?.abort("source_failed"));
    const session = this.#session(msg, exchange);
    const reply = this.#replyHeaders(101);
    responseHeadersToNats(reply, answer.headers);
    reply.set(StreamWire.stream, exchange.channel!.subject);
    this.#respond(msg, EMPTY, reply);
    exchange.headSent = true;
    abort.signal.addEventListener("abort", () => socket.destroy(), { once: true });
    if (head.length > 0) socket.unshift(head);
    session.receive(socket as unknown as StreamSink);
    session.send(socket, StreamProtocol.initialWindowBytes);
    void exchange.closed!.then((o) => (o.completed ? socket.end() : socket.destroy()));
    return 101;
  }

  /** The answer has gone (or its body is on its way): a body still coming in is not wanted any more. */
  #release(exchange: Exchange): void {
    if (!exchange.held) return;
    exchange.held = false;
    const session = exchange.session!;
    if (!session.receiving) session.release();
    else session.abort("answered");
  }

  /**
   * A body that streams from the caller: a channel for it on this sidecar's
   * inbox, `@continue` to the caller, and the bytes into what the application
   * reads (the caller is given credit as the application reads).
   */
  #askForBody(msg: Msg, exchange: Exchange): Readable {
    const sink = new PassThrough();
    const session = this.#session(msg, exchange);
    const go = this.#replyHeaders(100);
    go.delete(Wire.status);
    go.set(StreamWire.continue, "1");
    go.set(StreamWire.stream, exchange.channel!.subject);
    this.#respond(msg, EMPTY, go);
    // Open until the application's answer has gone: it may stream back on this session.
    session.hold();
    exchange.held = true;
    session.receive(sink);
    return sink;
  }

  /** The session of this exchange, made once: a channel on the inbox for messages from the caller. */
  #session(msg: Msg, exchange: Exchange): StreamSession {
    if (exchange.session) return exchange.session;
    exchange.abort ??= new AbortController();
    const channel = this.#opts.inbox.open(exchange.caller);
    let closed!: (o: StreamOutcome) => void;
    exchange.closed = new Promise((r) => (closed = r));
    // The caller's inbox is the request's reply subject: the session answers there, signed.
    const session = joinStream({
      nc: this.#opts.nc,
      channel,
      self: this.#opts.service,
      peer: exchange.caller,
      peerInbox: msg.reply,
      settings: this.#opts.streams,
      maxReceiveBytes: this.#opts.maxBodyBytes,
      onClose: (outcome) => {
        if (!outcome.completed) exchange.abort?.abort();
        closed(outcome);
      },
    })!;
    channel.attach((m) => session.onMessage(m));
    exchange.channel = channel;
    exchange.session = session;
    return session;
  }

  /**
   * The whole answer body when it is small and at hand (a declared length up
   * to the fast path's limit, or a chunked body that came whole with its
   * head); undefined when it streams: an event stream, a large or unknown
   * length. What was read of a streaming body stays in it.
   */
  async #wholeBody(method: string, response: AppAnswer, budgetMs: number): Promise<Uint8Array | undefined> {
    const { statusCode, headers } = response;
    if (method === "HEAD" || statusCode === 204 || statusCode === 304) {
      response.body.resume();
      return EMPTY;
    }
    const type = String(headers["content-type"] ?? "");
    if (type.startsWith("text/event-stream")) return undefined;
    const limit = oneMessageLimit(this.#opts.streams, this.#opts.nc.info?.max_payload);
    const declared = headers["content-length"] === undefined ? undefined : Number(headers["content-length"]);
    if (declared !== undefined && declared > limit) return undefined;
    try {
      if (declared !== undefined) return await readWithin(response.body, budgetMs);
      // Chunked: one message if it all came with the head, else it streams from what came.
      const { chunks, size, ended } = await readAtHand(response.body, limit);
      if (ended) return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
      for (let i = chunks.length - 1; i >= 0; i--) response.body.unshift(chunks[i]!);
      return undefined;
    } catch (err) {
      throw err instanceof MeshError ? err : this.#appError(err, budgetMs);
    }
  }

  /** Sends the answer's head, then its body as the caller's credit allows. */
  #streamAnswer(msg: Msg, exchange: Exchange, reply: MsgHdrs, response: AppAnswer): void {
    const session = this.#session(msg, exchange);
    reply.set(StreamWire.stream, exchange.channel!.subject);
    const length = response.headers["content-length"];
    if (typeof length === "string" && /^[0-9]{1,15}$/.test(length)) reply.set(StreamWire.length, length);
    this.#respond(msg, EMPTY, reply);
    exchange.headSent = true;
    session.send(response.body, StreamProtocol.initialWindowBytes);
  }

  #appError(err: unknown, budgetMs: number): MeshError {
    const code = (err as { code?: string }).code;
    if (code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_BODY_TIMEOUT") {
      return new MeshError("timeout", `application did not answer within ${budgetMs} ms`, { cause: err });
    }
    return appUnreachable(this.#opts.app, err);
  }

  #replyHeaders(status: number): MsgHdrs {
    const reply = new WireHeaders();
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

const EMPTY = new Uint8Array(0);

/** What an application answered: an undici response, or a node:http one (an upgrade it refused). */
interface AppAnswer {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  body: Readable;
}

/**
 * Asks the application to upgrade (node:http: undici's upgrade cannot hand
 * back a refusal's answer): its socket and the bytes that came with the 101,
 * or its answer when it does not switch.
 */
function upgradeApp(app: string, path: string, headers: string[], signal: AbortSignal, timeoutMs: number): Promise<{ headers: AppAnswer["headers"]; socket: Duplex; head: Buffer } | AppAnswer> {
  return new Promise((resolve, reject) => {
    const url = new URL(app);
    const req = httpRequest({
      host: url.hostname,
      port: url.port,
      path,
      method: "GET",
      headers: [...headers, "connection", "Upgrade", "upgrade", "websocket"],
      agent: false,
      signal,
      timeout: timeoutMs,
    });
    req.once("upgrade", (res, socket, head) => resolve({ headers: res.headers, socket, head }));
    req.once("response", (res) => resolve({ statusCode: res.statusCode ?? 502, headers: res.headers, body: res }));
    req.once("timeout", () => req.destroy(Object.assign(new Error("upgrade not answered in time"), { code: "UND_ERR_HEADERS_TIMEOUT" })));
    req.once("error", reject);
    req.end();
  });
}

/** One request's exchange with its caller: set as it goes. */
interface Exchange {
  caller: string;
  /**
   * aborts the request to the application (the caller gave up, or the stream
   * broke); made with the exchange's stream or upgrade only: the fast path,
   * nearly every request, pays for no AbortSignal
   */
  abort?: AbortController;
  channel?: Channel;
  session?: StreamSession;
  closed?: Promise<StreamOutcome>;
  /** an answer's head (or the whole answer) has gone: errors now end the stream instead */
  headSent?: boolean;
  /** the session is held open for the answer (see StreamSession.hold) */
  held?: boolean;
}

function streamRecordOf(o: StreamOutcome): StreamRecord {
  return { bytesIn: o.bytesIn, bytesOut: o.bytesOut, ...(o.completed ? {} : { aborted: o.reason ?? "protocol_error" }) };
}

/** `work` (reading `body`), or a timeout once `ms` pass: then the body is dropped. */
/**
 * The whole of a body of declared (small) length, or a `timeout` after `ms`.
 * Plain listeners and one timer: this runs for nearly every request, where
 * an async iterator and a Promise.race cost measurably more.
 */
function readWithin(body: Readable, ms: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const timer = setTimeout(() => {
      body.destroy();
      reject(new MeshError("timeout", `application did not send its answer within ${ms} ms`));
    }, ms);
    body.on("data", (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
    });
    body.once("end", () => {
      clearTimeout(timer);
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    });
    body.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

