import { STATUS_CODES, createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";
import type { Duplex, Readable } from "node:stream";
import type { Msg } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { ANY_VERSION, HttpHeader, StreamWire, Wire, classify, isMeshErrorCode, isVersionName, type Outcome } from "../../schemas/index.ts";
import { ClientGoneError, readRequestBody } from "./body.ts";
import type { CallResult, CallStream, MeshCaller, UploadBody } from "./caller.ts";
import { MeshError, payloadTooLarge } from "../errors.ts";
import { requestHeadersToNats } from "../http-wire.ts";
import { InflightTracker } from "../inflight.ts";
import type { RequestObserver, RequestRecord } from "../observability/request-record.ts";
import { frameHead, frameReply } from "./reply.ts";
import { brokenStream, oneMessageLimit, type StreamSettings } from "../streaming/exchange.ts";
import type { StreamOutcome, StreamSink } from "../streaming/session.ts";
import { writeMeshError } from "./respond.ts";
import { resolveTarget } from "./target.ts";
import { childSpan } from "../observability/trace.ts";

export interface OutboundOptions {
  /** this sidecar's service: the caller token of every request subject */
  caller: string;
  host: string;
  port: number;
  /** the largest message the cluster takes (bytes), read from the server */
  maxPayload: () => number;
  /** time to receive a request's complete headers (ms); then 408 request_timeout */
  headersTimeoutMs: number;
  /** time between bytes of a request body (ms); then 408 request_timeout */
  bodyIdleTimeoutMs: number;
  streams: StreamSettings;
  /** bytes a request body to `service` may have (its route's maxBodyBytes, else the sidecar's) */
  maxBodyBytes: (service: string) => number;
  mesh: MeshCaller;
  observe: RequestObserver;
  logger: Logger;
}

/**
 * The outbound listener: the application's HTTP requests to other services
 * become mesh calls; their answers, or the mesh's errors, go back as HTTP.
 */
export class OutboundProxy {
  readonly server: Server;
  readonly inflight = new InflightTracker();
  readonly #opts: OutboundOptions;

  constructor(opts: OutboundOptions) {
    this.#opts = opts;
    this.server = createServer(
      {
        keepAliveTimeout: 65_000,
        headersTimeout: opts.headersTimeoutMs,
        // How often Node checks for expired header timeouts: often enough for the timeout to mean what it says.
        connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(opts.headersTimeoutMs / 4))),
      },
      (req, res) => {
        this.inflight.track(this.#handle(req, res));
      },
    );
    // `Expect: 100-continue` is answered here, never passed on: 100 when the body may fit, else 413 unread.
    this.server.on("checkContinue", (req: IncomingMessage, res: ServerResponse) => {
      const declared = Number(req.headers["content-length"]);
      const target = resolveTarget(req.url ?? "/", req.headers.host);
      const limit = this.#opts.maxBodyBytes(target instanceof MeshError ? "" : target.service);
      if (Number.isFinite(declared) && declared > limit) {
        writeMeshError(res, payloadTooLarge(declared, limit), true);
        return;
      }
      res.writeContinue();
      this.inflight.track(this.#handle(req, res));
    });
    this.server.on("clientError", (err: NodeJS.ErrnoException, socket: Duplex) => answerClientError(err, socket, opts.headersTimeoutMs));
    this.server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => this.inflight.track(this.#upgrade(req, socket, head)));
  }

  async listen(): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(this.#opts.port, this.#opts.host, () => resolve());
    });
    return this.server.address() as AddressInfo;
  }

  /** Stops accepting connections, lets requests in flight finish. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    await this.inflight.idle();
    this.server.closeAllConnections();
    await closed;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const call = outgoing(req);
    const { target, service, method } = call;
    let result: CallResult | undefined;
    let unreadBody: Uint8Array | UploadBody | undefined;
    let outcome: Outcome;
    let streamed: StreamOutcome | undefined;
    try {
      if (target instanceof MeshError) throw target;
      const body = (unreadBody = await readRequestBody(req, {
        fastPathMaxBytes: oneMessageLimit(this.#opts.streams, this.#opts.maxPayload()),
        maxBodyBytes: this.#opts.maxBodyBytes(service),
        idleMs: this.#opts.bodyIdleTimeoutMs,
      }));
      result = await this.#call(req, call, body);
      if (result.error) {
        if (req.destroyed && !req.complete) throw new ClientGoneError();
        throw result.error;
      }
      outcome = result.outcome;
      const stream = result.stream;
      if (stream?.answerStreams) streamed = await streamAnswer(res, result.reply!, stream, outcome, method, service);
      else {
        writeReply(res, result.reply!, outcome, method, service);
        // The answer may come before the last of a streamed request body has gone.
        if (stream) streamed = await stream.closed;
      }
      if (streamed && !streamed.completed) outcome = brokenStream(streamed, outcome, false);
    } catch (err) {
      if (err instanceof ClientGoneError) outcome = classify({ clientClosed: true });
      else {
        const meshErr = err instanceof MeshError ? err : new MeshError("unavailable", `request to '${service}' failed: ${(err as Error).message}`);
        if (!(err instanceof MeshError)) this.#opts.logger.error({ err, service }, "outbound request failed unexpectedly");
        // The rest of an unread body would be taken for the next request: such a connection ends here.
        writeMeshError(res, meshErr, meshErr.code === "payload_too_large" || meshErr.code === "request_timeout");
        outcome = classify({ meshError: meshErr });
      }
    }
    // A streamed body the call did not read to its end (refused, or answered early) stops here, with its timers.
    if (unreadBody && "source" in unreadBody) unreadBody.source.destroy();
    this.#opts.observe(this.#record(result, outcome, streamed, call));
  }

  /** Sends the call: the application's headers, less what the mesh owns, plus the mesh's own. */
  #call(req: IncomingMessage, call: Outgoing, body: Uint8Array | UploadBody, upgrade = false): Promise<CallResult> {
    const { service, method, path, startedAt } = call;
    const headers = requestHeadersToNats(req.rawHeaders);
    headers.set(Wire.method, method);
    headers.set(Wire.path, path);
    headers.set(Wire.requestId, call.requestId);
    headers.set(Wire.traceparent, call.traceparent);
    if (upgrade) headers.set(StreamWire.upgrade, "websocket");
    const header = (name: string) => single(req.headers[name]);
    return this.#opts.mesh.call({ service, method, path, header, headers, body, startedAt, askedTimeoutMs: askedTimeoutMs(req) });
  }

  /**
   * An HTTP upgrade (WebSocket): the request crosses as a head with
   * `@upgrade`; on the provider's 101 the connection becomes a byte stream
   * both ways over the same flow-controlled session as any streamed body
   * (docs/architecture.md §15). Frames, pings and the close handshake pass
   * untouched; either side closing closes the other.
   */
  async #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const call = outgoing(req);
    const { target, service, method } = call;
    let result: CallResult | undefined;
    let outcome: Outcome;
    let streamed: StreamOutcome | undefined;
    socket.on("error", () => undefined);
    try {
      if (target instanceof MeshError) throw target;
      if (String(req.headers.upgrade ?? "").toLowerCase() !== "websocket") throw new MeshError("bad_target", `upgrade to '${String(req.headers.upgrade)}' is not supported (only websocket)`);
      result = await this.#call(req, call, EMPTY, true);
      if (result.error) throw result.error;
      outcome = result.outcome;
      const stream = result.stream;
      if (outcome.status === 101 && stream?.answerStreams) streamed = await tunnel(socket, head, result.reply!, stream, service);
      else {
        // The application did not switch: its answer, and the connection ends.
        if (stream) stream.session.abort("client_closed");
        writeRawAnswer(socket, result.reply!, outcome, method, service);
      }
      if (streamed && !streamed.completed) outcome = brokenStream(streamed, outcome, false);
    } catch (err) {
      const meshErr = err instanceof MeshError ? err : new MeshError("unavailable", `upgrade to '${service}' failed: ${(err as Error).message}`);
      socket.end(rawMeshError(meshErr));
      outcome = classify({ meshError: meshErr });
    }
    this.#opts.observe(this.#record(result, outcome, streamed, call));
  }

  #record(result: CallResult | undefined, outcome: Outcome, streamed: StreamOutcome | undefined, r: Outgoing): RequestRecord {
    return {
      direction: "outbound",
      source: this.#opts.caller,
      destination: r.service,
      version: result?.version ?? ANY_VERSION,
      instance: result?.instance,
      method: r.method,
      path: r.path,
      status: outcome.status,
      code: outcome.code,
      meshError: outcome.meshError,
      startedAt: r.startedAt,
      durationMs: Date.now() - r.startedAt,
      attempts: result?.attempts ?? 0,
      requestId: r.requestId,
      traceparent: r.traceparent,
      parentSpanId: r.parentSpanId,
      ...(streamed ? { stream: streamRecord(streamed) } : {}),
    };
  }
}

const EMPTY = new Uint8Array(0);

/** What a request and an upgrade both know of an outgoing call before it is sent. */
interface Outgoing {
  startedAt: number;
  method: string;
  /** where the call goes, or why it names no service */
  target: ReturnType<typeof resolveTarget>;
  /** the service named ("unknown" when none is) */
  service: string;
  path: string;
  requestId: string;
  /** this call's span, a child of the application's span when it sent one */
  traceparent: string;
  parentSpanId: string | undefined;
}

function outgoing(req: IncomingMessage): Outgoing {
  const target = resolveTarget(req.url ?? "/", req.headers.host);
  const { traceparent, parentSpanId } = childSpan(single(req.headers.traceparent));
  return {
    startedAt: Date.now(),
    method: req.method ?? "GET",
    target,
    service: target instanceof MeshError ? "unknown" : target.service,
    path: target instanceof MeshError ? req.url ?? "" : target.path,
    requestId: randomUUID(),
    traceparent,
    parentSpanId,
  };
}

/** The provider switched protocols: 101 to the client, then bytes both ways until both ends close. */
async function tunnel(socket: Duplex, head: Buffer, answer: Msg, stream: CallStream, service: string): Promise<StreamOutcome> {
  const framed = frameHead(answer, "GET", service, true);
  if (framed instanceof MeshError) {
    stream.session.abort("protocol_error");
    throw framed;
  }
  const lines = ["HTTP/1.1 101 Switching Protocols", "upgrade: websocket", "connection: Upgrade"];
  for (let i = 0; i < framed.headers.length; i += 2) lines.push(`${framed.headers[i]}: ${framed.headers[i + 1]}`);
  socket.write(`${lines.join("\r\n")}\r\n\r\n`);
  if (head.length > 0) socket.unshift(head);
  socket.once("close", () => stream.session.abort("client_closed"));
  stream.session.receive(socket as unknown as StreamSink);
  stream.session.send(socket as unknown as Readable, 0);
  const ended = await stream.closed;
  if (ended.completed) socket.end();
  else socket.destroy();
  return ended;
}

/** A provider's answer written on a raw socket (an upgrade the application refused), then the connection ends. */
function writeRawAnswer(socket: Duplex, reply: Msg, outcome: Outcome, method: string, service: string): void {
  const framed = frameReply(reply, method, service);
  if (framed instanceof MeshError) throw framed;
  if (outcome.meshError && isMeshErrorCode(outcome.meshError)) framed.headers.push(HttpHeader.meshError, outcome.meshError);
  const lines = [`HTTP/1.1 ${framed.status} ${STATUS_CODES[framed.status] ?? ""}`, "connection: close"];
  for (let i = 0; i < framed.headers.length; i += 2) lines.push(`${framed.headers[i]}: ${framed.headers[i + 1]}`);
  socket.write(`${lines.join("\r\n")}\r\n\r\n`);
  socket.end(framed.body);
}

/** A mesh error as a whole raw HTTP answer that closes the connection. */
function rawMeshError(err: MeshError): string {
  const body = err.body();
  const extra = (err.extraHeaders ?? []).map(([k, v]) => `${k}: ${v}\r\n`).join("");
  return `HTTP/1.1 ${err.status} ${STATUS_CODES[err.status] ?? ""}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${HttpHeader.meshError}: ${err.code}\r\n${extra}connection: close\r\n\r\n${body}`;
}


/** What a record says of a stream: bytes each way, and why it did not complete. */
function streamRecord(o: StreamOutcome): NonNullable<RequestRecord["stream"]> {
  return { bytesIn: o.bytesIn, bytesOut: o.bytesOut, ...(o.completed ? {} : { aborted: o.reason ?? "protocol_error" }) };
}

/**
 * Writes an answer whose body streams: its head now, its bytes as they come
 * (the session slows the provider down when the application reads slowly).
 * The application leaving ends the stream at the provider; a stream that
 * breaks resets the connection, so a cut body never passes for a whole one.
 */
async function streamAnswer(res: ServerResponse, head: Msg, stream: CallStream, outcome: Outcome, method: string, service: string): Promise<StreamOutcome> {
  const framed = frameHead(head, method, service);
  if (framed instanceof MeshError) {
    stream.session.abort("protocol_error");
    throw framed;
  }
  if (outcome.meshError && isMeshErrorCode(outcome.meshError)) framed.headers.push(HttpHeader.meshError, outcome.meshError);
  const version = head.headers?.get(Wire.version);
  if (version && isVersionName(version)) framed.headers.push(HttpHeader.servedBy, version);
  res.strictContentLength = true;
  res.writeHead(framed.status, framed.headers);
  res.flushHeaders();
  res.once("close", () => {
    if (!res.writableFinished) stream.session.abort("client_closed");
  });
  stream.session.receive(res);
  const ended = await stream.closed;
  if (!ended.completed) res.destroy();
  return ended;
}

/**
 * What the listener answers a connection Node could not read a request from
 * (a listener for `clientError` replaces Node's own answer): 408
 * request_timeout as a mesh error when the headers took too long, else what
 * Node would answer.
 */
function answerClientError(err: NodeJS.ErrnoException, socket: Duplex, headersTimeoutMs: number): void {
  if (!socket.writable || err.code === "ECONNRESET") {
    socket.destroy();
    return;
  }
  let head = "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n";
  if (err.code === "ERR_HTTP_REQUEST_TIMEOUT") {
    const body = new MeshError("request_timeout", `request headers not received within ${headersTimeoutMs} ms`).body();
    head = `HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${HttpHeader.meshError}: request_timeout\r\nConnection: close\r\n\r\n${body}`;
  } else if (err.code === "HPE_HEADER_OVERFLOW") {
    head = "HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n";
  }
  socket.end(head);
}

/** The application's own limit for this call: the smaller of x-mesh-timeout-ms and x-mesh-deadline-ms. */
function askedTimeoutMs(req: IncomingMessage): number | undefined {
  let asked: number | undefined;
  for (const name of [HttpHeader.timeoutMs, HttpHeader.deadlineMs]) {
    const value = Number(req.headers[name]);
    if (value > 0 && (asked === undefined || value < asked)) asked = value;
  }
  return asked;
}

/** Writes a provider's reply to the application, framed by what is written (its outcome names the mesh error, if any). */
function writeReply(res: ServerResponse, reply: Msg, outcome: Outcome, method: string, service: string): void {
  const framed = frameReply(reply, method, service);
  if (framed instanceof MeshError) throw framed;
  // An @error outside the table (unknown_error) is counted, never passed on as a mesh-error header.
  if (outcome.meshError && isMeshErrorCode(outcome.meshError)) framed.headers.push(HttpHeader.meshError, outcome.meshError);
  const version = reply.headers?.get(Wire.version);
  if (version && isVersionName(version)) framed.headers.push(HttpHeader.servedBy, version);
  // A body that disagrees with content-length is an error Node raises, never bytes that desync the connection.
  res.strictContentLength = true;
  res.writeHead(framed.status, framed.headers);
  res.end(framed.body);
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
