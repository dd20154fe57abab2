import type { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { type Msg, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node";
import {
  ANY_VERSION,
  StreamProtocol,
  StreamWire,
  Wire,
  classify,
  instanceSubject,
  isVersionName,
  rpcSubject,
  type Outcome,
  type RoutePolicy,
} from "../../schemas/index.ts";
import type { Destinations } from "../resilience/destinations.ts";
import { backoffMs, mayRetry } from "../resilience/retry.ts";
import { choosesInstances, type CompiledRoute, type HeaderLookup } from "../policy/routing.ts";
import { MeshError, timeout } from "../errors.ts";
import type { Inbox } from "../inbox.ts";
import { joinStream, refuseStream, type StreamSettings } from "../streaming/exchange.ts";
import type { StreamOutcome, StreamSession } from "../streaming/session.ts";
import { planCall, type CallPlan } from "./call-plan.ts";
import { meshErrorFromNats, meshErrorFromStream } from "./nats-errors.ts";
import { WireHeaders } from "../wire-headers.ts";

/** Instance names as sidecar-config.schema.json allows them. */
const INSTANCE_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** One outbound call, as the outbound listener hands it over. */
export interface OutboundCall {
  service: string;
  method: string;
  /** raw path and query */
  path: string;
  header: HeaderLookup;
  /** HTTP headers plus the mesh fields; `@deadline` is set per attempt here */
  headers: MsgHdrs;
  /** the whole body (fast path), or one that streams */
  body: Uint8Array | UploadBody;
  /** epoch ms when the application's request arrived: the deadline counts from here */
  startedAt: number;
  /** the application's own limit (x-mesh-timeout-ms, x-mesh-deadline-ms), which may only shorten the deadline */
  askedTimeoutMs: number | undefined;
}

/** A request body that streams: too large for one message, or of unknown length. */
export interface UploadBody {
  source: Readable;
  /** bytes in all, when the application said */
  length: number | undefined;
  /** bytes it may have in all; more fails the call with payload_too_large */
  maxBytes: number;
}

/** The stream of an exchange whose request or answer body streams. */
export interface CallStream {
  session: StreamSession;
  /** the answer's body streams: give the session a sink with `receive` */
  answerStreams: boolean;
  /** how the stream ended, both directions */
  closed: Promise<StreamOutcome>;
}

/** A call with its plan, worked out once. */
interface Call extends OutboundCall {
  plan: CallPlan;
}

export interface CallResult {
  reply?: Msg;
  error?: MeshError;
  /** how the call ended (the last attempt), classified once: retries, breaker, balancer, metrics and access records read it */
  outcome: Outcome;
  version: string;
  instance?: string;
  attempts: number;
  /** set when a body streams either way */
  stream?: CallStream;
  /** part of the request body has gone: the call cannot be repeated */
  bodyStarted?: boolean;
}

export interface CallerOptions {
  nc: NatsConnection;
  /** this sidecar's inbox: every answer and stream comes back there */
  inbox: Inbox;
  streams: StreamSettings;
  caller: string;
  routes: ReadonlyMap<string, CompiledRoute<RoutePolicy>>;
  destinations: Destinations;
  onRetry: (service: string) => void;
  /** deadline of a call whose route sets none */
  defaultTimeoutMs: number;
  /** a MeshError when the destination's policy refuses this caller (checked before anything is sent) */
  authorize?: (service: string, method: string, path: string) => MeshError | undefined;
  now?: () => number;
  random?: () => number;
  /** this sidecar's region, for locality (docs/multi-region.md); absent: none */
  region?: () => string | undefined;
}

/**
 * Everything between "the app called service X" and "here is the answer":
 * executes the call's plan (call-plan.ts: deadline, rule, fault, mirror) with
 * retries within a budget, circuit breakers and latency-aware instance
 * choice, all within the deadline.
 */
export class MeshCaller {
  readonly #o: CallerOptions;
  readonly #now: () => number;
  readonly #random: () => number;

  constructor(opts: CallerOptions) {
    this.#o = opts;
    this.#now = opts.now ?? Date.now;
    this.#random = opts.random ?? Math.random;
  }

  async call(outbound: OutboundCall): Promise<CallResult> {
    const route = this.#o.routes.get(outbound.service);
    const plan = planCall(route, outbound, this.#now, this.#random, this.#o.defaultTimeoutMs);
    const c: Call = Object.assign(outbound, { plan });
    const refused = this.#o.authorize?.(c.service, c.method, plan.pathOnly);
    if (refused) return failed(refused, ANY_VERSION, 0);
    if (plan.delayMs > 0) await sleep(plan.delayMs);
    if (plan.abortStatus !== undefined) {
      const error = new MeshError("fault_injected", `fault injected by the route of '${c.service}'`, { status: plan.abortStatus });
      return failed(error, ANY_VERSION, 0);
    }
    // A streamed body cannot be read twice: it is not mirrored.
    if (plan.mirrorVersion !== undefined && c.body instanceof Uint8Array) this.#mirror(c, plan.mirrorVersion, c.body);
    return this.#attempts(c, route?.source);
  }

  async #attempts(c: Call, route: RoutePolicy | undefined): Promise<CallResult> {
    const retries = route?.retries;
    const maxAttempts = 1 + (retries?.attempts ?? 0);
    const budget = retries ? this.#o.destinations.budget(c.service, retries.budgetPercent) : undefined;
    budget?.recordRequest();
    // Instances this call went to: a retry tries another local one before a remote one (docs/multi-region.md).
    // Only a call that may be retried keeps them.
    const tried = retries ? new Set<string>() : undefined;
    for (let attempt = 1; ; attempt++) {
      const result = await this.#attempt(c, route, c.plan.pickVersion(), attempt, tried);
      // Once part of a streamed body has gone, nothing can send it again.
      if (!retries || result.bodyStarted) return result;
      const allowed = mayRetry({ method: c.method, retryNonIdempotent: retries.retryNonIdempotent, on: retries.on, outcome: result.outcome, attempt, maxAttempts });
      if (!allowed) return result;
      const wait = backoffMs(attempt, this.#random);
      // Never retry after the deadline: a retry that cannot finish in time only adds load.
      if (this.#now() + wait >= c.plan.deadlineAt || !budget!.tryRetry()) return result;
      this.#o.onRetry(c.service);
      if (wait > 0) await sleep(wait);
    }
  }

  async #attempt(c: Call, route: RoutePolicy | undefined, version: string, attempt: number, tried: Set<string> | undefined): Promise<CallResult> {
    const { deadlineAt } = c.plan;
    const left = deadlineAt - this.#now();
    if (left <= 0) return failed(timeout(c.service, deadlineAt - c.startedAt), version, attempt - 1);
    const perTry = Math.min(route?.retries?.perTryTimeoutMs ?? left, left);
    // Before the breaker: a refusal by locality says nothing about the destination's health.
    const choice = this.#choose(c.service, version, route, tried);
    if (choice === "none_local") return failed(noLocalInstance(c.service, version, this.#o.region?.()), version, attempt - 1);
    const breaker = route?.circuitBreaker ? this.#o.destinations.breaker(c.service, version, route.circuitBreaker) : undefined;
    if (breaker && !breaker.tryAcquire()) {
      const which = version === ANY_VERSION ? "" : ` (version '${version}')`;
      return failed(new MeshError("circuit_open", `circuit to '${c.service}'${which} is open`), version, attempt - 1);
    }
    const balancer = choice?.balancer;
    const instance = choice?.instance;
    if (instance) tried?.add(instance);
    const subject = instance ? instanceSubject(c.service, instance, this.#o.caller) : rpcSubject(c.service, version, this.#o.caller);
    c.headers.set(Wire.deadline, String(this.#now() + perTry));
    const started = this.#now();
    if (instance) balancer!.start(instance);
    const result = await this.#send(c, subject, perTry, version, attempt);
    const { breakerFailure } = result.outcome;
    if (instance) balancer!.finish(instance, this.#now() - started, breakerFailure);
    if (breaker) breakerFailure ? breaker.onFailure() : breaker.onSuccess();
    return result;
  }

  /**
   * An instance chosen by the sidecar (p2c-ewma, or a route that may not
   * leave the region), or undefined for the queue group, whose members in
   * the local cluster NATS prefers by itself.
   */
  #choose(service: string, version: string, route: RoutePolicy | undefined, tried: ReadonlySet<string> | undefined) {
    if (!route || !choosesInstances(route)) return undefined;
    return this.#o.destinations.choose(service, version, { region: this.#o.region?.(), failover: route.localityFailover !== false, ...(tried ? { tried } : {}) });
  }

  async #send(c: Call, subject: string, perTryMs: number, version: string, attempt: number): Promise<CallResult> {
    const upload = c.body instanceof Uint8Array ? undefined : c.body;
    if (upload) {
      c.headers.set(StreamWire.stream, "1");
      if (upload.length !== undefined) c.headers.set(StreamWire.length, String(upload.length));
    }
    let first: Msg;
    try {
      first = await this.#o.inbox.request(subject, upload ? EMPTY : (c.body as Uint8Array), c.headers, perTryMs, c.service);
    } catch (err) {
      return failed(meshErrorFromNats(err, c.service, version, perTryMs), version, attempt);
    }
    // The provider took the request and asks for its body (docs/architecture.md §15).
    if (upload && first.headers?.has(StreamWire.continue)) return this.#upload(c, first, upload, perTryMs, version, attempt);
    return this.#answered(c, first, undefined, version, attempt);
  }

  /** Sends a streamed body to the provider that asked for it, and waits for its answer's head. */
  async #upload(c: Call, go: Msg, upload: UploadBody, perTryMs: number, version: string, attempt: number): Promise<CallResult> {
    const channel = this.#o.inbox.channelOf(go);
    let settle!: { resolve: (m: Msg) => void; reject: (e: MeshError) => void };
    const head = new Promise<Msg>((resolve, reject) => (settle = { resolve, reject }));
    let closed!: (o: StreamOutcome) => void;
    const ended = new Promise<StreamOutcome>((r) => (closed = r));
    let headTimer: NodeJS.Timeout | undefined;
    let answered = false;
    const session = channel && joinStream({
      nc: this.#o.nc,
      channel,
      self: this.#o.caller,
      peer: c.service,
      peerInbox: go.headers?.get(StreamWire.stream),
      settings: this.#streamSettings(c.service),
      maxSendBytes: upload.maxBytes,
      // The deadline bounds the wait for the answer's head once the whole body has gone.
      onSent: () => {
        if (answered) return;
        headTimer = setTimeout(() => session!.abort("timeout"), perTryMs);
        headTimer.unref();
      },
      onClose: (outcome) => {
        clearTimeout(headTimer);
        closed(outcome);
        if (!answered) settle.reject(meshErrorFromStream(outcome, c.service, perTryMs));
      },
    });
    if (!session) return { ...failed(badStream(c.service), version, attempt), bodyStarted: true };
    // Open until the answer's head: its body may stream back on this session.
    session.hold();
    channel!.attach((m) => {
      if (!answered && m.headers?.has(Wire.status)) {
        answered = true;
        clearTimeout(headTimer);
        settle.resolve(m);
      } else session.onMessage(m);
    });
    session.send(upload.source, 0);
    try {
      const reply = await head;
      const result = { ...this.#answered(c, reply, { session, closed: ended }, version, attempt), bodyStarted: true };
      session.release();
      return result;
    } catch (err) {
      return { ...failed(err as MeshError, version, attempt), bodyStarted: true };
    }
  }

  /** The result of an answer (its head, when its body streams). */
  #answered(c: Call, reply: Msg, upload: { session: StreamSession; closed: Promise<StreamOutcome> } | undefined, version: string, attempt: number): CallResult {
    const h = reply.headers;
    // Whatever answers may write anything here: only well-formed names are believed.
    const answeredBy = h?.get(Wire.version);
    const instance = h?.get(Wire.instance);
    const result: CallResult = {
      reply,
      outcome: classify({ reply: h, switching: c.headers.has(StreamWire.upgrade) }),
      version: answeredBy && isVersionName(answeredBy) ? answeredBy : version,
      instance: instance && INSTANCE_NAME.test(instance) ? instance : undefined,
      attempts: attempt,
    };
    if (!h?.has(StreamWire.stream)) {
      if (upload) result.stream = { ...upload, answerStreams: false };
      return result;
    }
    let stream = upload;
    if (!stream) {
      const channel = this.#o.inbox.channelOf(reply);
      let closed!: (o: StreamOutcome) => void;
      const ended = new Promise<StreamOutcome>((r) => (closed = r));
      const session = channel && joinStream({ nc: this.#o.nc, channel, self: this.#o.caller, peer: c.service, peerInbox: h.get(StreamWire.stream), settings: this.#streamSettings(c.service), onClose: closed });
      if (!session) return failed(badStream(c.service), version, attempt);
      session.expectData(StreamProtocol.initialWindowBytes);
      channel!.attach((m) => session.onMessage(m));
      stream = { session, closed: ended };
    } else stream.session.expectData(StreamProtocol.initialWindowBytes);
    result.stream = { ...stream, answerStreams: true };
    return result;
  }

  /** The sidecar's stream settings, with the route's streamIdleTimeoutMs. */
  #streamSettings(service: string): StreamSettings {
    const idle = this.#o.routes.get(service)?.source.streamIdleTimeoutMs;
    return idle === undefined ? this.#o.streams : { ...this.#o.streams, idleTimeoutMs: idle };
  }

  /** A copy to `version`, fire and forget: its answer, slowness or failure never reach the caller. */
  #mirror(c: Call, version: string, body: Uint8Array): void {
    const h = new WireHeaders();
    for (const k of c.headers.keys()) for (const v of c.headers.values(k)) h.append(k, v);
    h.set(Wire.mirror, "true");
    const left = Math.max(1, c.plan.deadlineAt - this.#now());
    h.set(Wire.deadline, String(this.#now() + left));
    this.#o.inbox.request(rpcSubject(c.service, version, this.#o.caller), body, h, left, c.service).then(
      // A mirrored answer that streams is not wanted either.
      (answer) => {
        const channel = this.#o.inbox.channelOf(answer);
        if (channel) refuseStream(this.#o.nc, channel, this.#o.caller, c.service, answer.headers?.get(StreamWire.stream), "client_closed");
      },
      () => undefined,
    );
  }
}

const EMPTY = new Uint8Array(0);

/** A provider named a stream inbox that is not its own. */
function badStream(service: string): MeshError {
  return new MeshError("bad_response", `'${service}' named a stream inbox that is not its own`);
}

/** A Route with localityFailover: false, and no ready instance in the caller's region. */
function noLocalInstance(service: string, version: string, region: string | undefined): MeshError {
  const which = version === ANY_VERSION ? "" : ` (version '${version}')`;
  return new MeshError("unavailable", `no ready instance of '${service}'${which} in region '${region ?? "-"}', and its route has localityFailover: false`);
}

/** A call that ended in a mesh error after `attempts` attempts. */
function failed(error: MeshError, version: string, attempts: number): CallResult {
  return { error, outcome: classify({ meshError: error }), version, attempts };
}
