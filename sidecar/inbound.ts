import { headers as natsHeaders, type Msg, type MsgHdrs, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import type { Logger } from "pino";
import type { Dispatcher, Pool } from "undici";
import { HttpHeader, Wire, providerSubscriptions } from "../schemas/index.ts";
import { MeshError, appUnreachable } from "./errors.ts";
import { MESH_OWNED, natsHeadersToFlat, responseHeadersToNats, wireNumber } from "./http-wire.ts";
import { InflightTracker } from "./inflight.ts";
import { methodLabel, type SidecarMetrics } from "./metrics.ts";
import { childTraceparent } from "./trace.ts";

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
  metrics: SidecarMetrics;
  logger: Logger;
}

/**
 * The inbound adapter: requests arriving in this service's queue groups
 * become HTTP requests to the local application, its answers NATS replies.
 */
export class InboundAdapter {
  readonly inflight = new InflightTracker();
  readonly #opts: InboundOptions;
  #subs: Subscription[] = [];

  constructor(opts: InboundOptions) {
    this.#opts = opts;
  }

  /** Joins the queue groups; resolves once the server has them. */
  async start(): Promise<void> {
    const { nc, service, version } = this.#opts;
    this.#subs = providerSubscriptions(service, version).map(({ subject, queue }) =>
      nc.subscribe(subject, {
        queue,
        callback: (err, msg) => {
          if (err) this.#opts.logger.error({ err, subject }, "inbound subscription failed");
          else if (msg.reply) this.inflight.track(this.#handle(msg));
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
    if (viaNats) await Promise.all(this.#subs.map((sub) => sub.drain().catch(() => undefined)));
    else for (const sub of this.#subs) sub.unsubscribe();
    await this.inflight.idle();
  }

  async #handle(msg: Msg): Promise<void> {
    const started = performance.now();
    const h = msg.headers;
    const caller = msg.subject.slice(msg.subject.lastIndexOf(".") + 1);
    const method = h?.get(Wire.method) || "GET";
    const budgetMs = wireNumber(h, Wire.timeoutMs) ?? this.#opts.defaultTimeoutMs;
    let code: string;
    try {
      code = await this.#forward(msg, h, caller, method, budgetMs);
    } catch (err) {
      const meshErr = err instanceof MeshError ? err : appUnreachable(this.#opts.app, err);
      this.#respondError(msg, meshErr);
      code = meshErr.code;
    }
    const { service, version } = this.#opts;
    const labels = { direction: "inbound" as const, source: caller, destination: service, version, method: methodLabel(method), code };
    this.#opts.metrics.observe(labels, (performance.now() - started) / 1000);
  }

  async #forward(msg: Msg, h: MsgHdrs | undefined, caller: string, method: string, budgetMs: number): Promise<string> {
    const headers = natsHeadersToFlat(h, [], MESH_OWNED);
    headers.push(
      HttpHeader.caller, caller,
      HttpHeader.requestId, h?.get(Wire.requestId) || crypto.randomUUID(),
      HttpHeader.traceparent, h?.get(Wire.traceparent) || childTraceparent(undefined),
    );
    let response: Dispatcher.ResponseData;
    try {
      response = await this.#opts.pool.request({
        method: method as Dispatcher.HttpMethod,
        path: h?.get(Wire.path) || "/",
        headers,
        body: msg.data.length > 0 ? msg.data : null,
        headersTimeout: budgetMs,
        bodyTimeout: budgetMs,
      });
    } catch (err) {
      throw this.#appError(err, budgetMs);
    }
    const body = await this.#readResponse(response, budgetMs);
    const reply = this.#replyHeaders(response.statusCode);
    responseHeadersToNats(reply, response.headers);
    msg.respond(body, { headers: reply });
    return String(response.statusCode);
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
    try {
      msg.respond(new TextEncoder().encode(err.body()), { headers: reply });
    } catch (respondErr) {
      this.#opts.logger.warn({ err: respondErr }, "could not send error reply");
    }
  }
}
