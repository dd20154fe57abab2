import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";
import type { Msg, NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { ANY_VERSION, HttpHeader, Wire, isMeshErrorCode, rpcSubject } from "../schemas/index.ts";
import { ClientGoneError, readBody } from "./body.ts";
import { MeshError } from "./errors.ts";
import { natsHeadersToFlat, requestHeadersToNats } from "./http-wire.ts";
import { methodLabel, type SidecarMetrics } from "./metrics.ts";
import { meshErrorFromNats } from "./nats-errors.ts";
import { writeMeshError } from "./respond.ts";
import { resolveTarget } from "./target.ts";
import { childTraceparent } from "./trace.ts";
import { InflightTracker } from "./inflight.ts";
import type { CompiledRoute } from "./routing.ts";

export interface OutboundOptions {
  nc: NatsConnection;
  /** this sidecar's service: the caller token of every request subject */
  caller: string;
  host: string;
  port: number;
  /** deadline of a call unless the app asks for less with `x-mesh-timeout-ms` */
  defaultTimeoutMs: number;
  metrics: SidecarMetrics;
  logger: Logger;
  /** compiled Route documents by service, kept current by the policy watch */
  routes: ReadonlyMap<string, CompiledRoute>;
}

/**
 * The outbound listener: the application's HTTP requests to other services
 * become NATS requests on `mesh.rpc.<service>.<version>.<caller>`.
 */
export class OutboundProxy {
  readonly server: Server;
  readonly inflight = new InflightTracker();
  readonly #opts: OutboundOptions;

  constructor(opts: OutboundOptions) {
    this.#opts = opts;
    this.server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
      this.inflight.track(this.#handle(req, res));
    });
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
    const started = performance.now();
    const method = req.method ?? "GET";
    const target = resolveTarget(req.url ?? "/", req.headers.host);
    const service = target instanceof MeshError ? "unknown" : target.service;
    const route = this.#opts.routes.get(service);
    const deadlineMs = this.#deadlineMs(req, route?.timeoutMs);
    let code: string;
    let version = ANY_VERSION;
    try {
      if (target instanceof MeshError) throw target;
      const rule = route?.select(method, target.path, (name) => single(req.headers[name]));
      if (rule) version = rule.pickVersion();
      const body = await readBody(req, this.#maxPayload());
      const remainingMs = Math.max(1, Math.round(deadlineMs - (performance.now() - started)));
      const headers = requestHeadersToNats(req.rawHeaders);
      headers.set(Wire.method, method);
      headers.set(Wire.path, target.path);
      headers.set(Wire.timeoutMs, String(remainingMs));
      headers.set(Wire.requestId, randomUUID());
      headers.set(Wire.traceparent, childTraceparent(single(req.headers.traceparent)));
      const subject = rpcSubject(service, version, this.#opts.caller);
      let reply: Msg;
      try {
        reply = await this.#opts.nc.request(subject, body, { timeout: remainingMs, headers });
      } catch (err) {
        throw meshErrorFromNats(err, service, version, deadlineMs);
      }
      version = reply.headers?.get(Wire.version) || version;
      code = writeReply(res, reply, method);
    } catch (err) {
      if (err instanceof ClientGoneError) code = "client_closed";
      else if (err instanceof MeshError) {
        writeMeshError(res, err, err.code === "payload_too_large");
        code = err.code;
      } else {
        this.#opts.logger.error({ err, service }, "outbound request failed unexpectedly");
        const meshErr = meshErrorFromNats(err, service, version, deadlineMs);
        writeMeshError(res, meshErr);
        code = meshErr.code;
      }
    }
    const labels = { direction: "outbound" as const, source: this.#opts.caller, destination: service, version, method: methodLabel(method), code };
    this.#opts.metrics.observe(labels, (performance.now() - started) / 1000);
  }

  /** The route's deadline (else the sidecar's); the app may ask for less, never more. */
  #deadlineMs(req: IncomingMessage, routeTimeoutMs: number | undefined): number {
    const asked = Number(req.headers[HttpHeader.timeoutMs]);
    const fallback = routeTimeoutMs ?? this.#opts.defaultTimeoutMs;
    return asked > 0 && asked < fallback ? asked : fallback;
  }

  #maxPayload(): number {
    return this.#opts.nc.info?.max_payload ?? 1024 * 1024;
  }
}

/** Writes a provider's reply to the application; returns the metric code. */
function writeReply(res: ServerResponse, reply: Msg, method: string): string {
  const h = reply.headers;
  const status = Number(h?.get(Wire.status)) || 502;
  const flat = natsHeadersToFlat(h);
  // The whole body is at hand, so say its length rather than fall back to chunked encoding.
  if (method !== "HEAD" && status !== 204 && status !== 304 && !h?.has("content-length")) {
    flat.push("content-length", String(reply.data.length));
  }
  const meshError = h?.get(Wire.error);
  if (meshError) flat.push(HttpHeader.meshError, meshError);
  const version = h?.get(Wire.version);
  if (version) flat.push(HttpHeader.servedBy, version);
  res.writeHead(status, flat);
  res.end(reply.data);
  return meshError && isMeshErrorCode(meshError) ? meshError : String(status);
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
