import { setTimeout as sleep } from "node:timers/promises";
import { headers as natsHeaders, type Msg, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node";
import { ANY_VERSION, Wire, classify, instanceSubject, isVersionName, rpcSubject, type Outcome, type RoutePolicy } from "../../schemas/index.ts";
import type { Destinations } from "../resilience/destinations.ts";
import { backoffMs, mayRetry } from "../resilience/retry.ts";
import type { CompiledRoute, HeaderLookup } from "../policy/routing.ts";
import { MeshError, timeout } from "../errors.ts";
import { planCall, type CallPlan } from "./call-plan.ts";
import { meshErrorFromNats } from "./nats-errors.ts";
import { Requester } from "./requester.ts";

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
  body: Uint8Array;
  /** epoch ms when the application's request arrived: the deadline counts from here */
  startedAt: number;
  /** the application's own limit (x-mesh-timeout-ms, x-mesh-deadline-ms), which may only shorten the deadline */
  askedTimeoutMs: number | undefined;
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
}

export interface CallerOptions {
  nc: NatsConnection;
  caller: string;
  routes: ReadonlyMap<string, CompiledRoute<RoutePolicy>>;
  destinations: Destinations;
  onRetry: (service: string) => void;
  /** an answer came from another service than the one called (and was ignored) */
  onForgedReply?: (sender: string, expected: string) => void;
  /** deadline of a call whose route sets none */
  defaultTimeoutMs: number;
  /** a MeshError when the destination's policy refuses this caller (checked before anything is sent) */
  authorize?: (service: string, method: string, path: string) => MeshError | undefined;
  now?: () => number;
  random?: () => number;
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
  readonly #requester: Requester;

  constructor(opts: CallerOptions) {
    this.#o = opts;
    this.#requester = new Requester(opts.nc, opts.caller, opts.onForgedReply);
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
    if (plan.mirrorVersion !== undefined) this.#mirror(c, plan.mirrorVersion);
    return this.#attempts(c, route?.source);
  }

  async #attempts(c: Call, route: RoutePolicy | undefined): Promise<CallResult> {
    const retries = route?.retries;
    const maxAttempts = 1 + (retries?.attempts ?? 0);
    const budget = retries ? this.#o.destinations.budget(c.service, retries.budgetPercent) : undefined;
    budget?.recordRequest();
    for (let attempt = 1; ; attempt++) {
      const result = await this.#attempt(c, route, c.plan.pickVersion(), attempt);
      if (!retries) return result;
      const allowed = mayRetry({ method: c.method, retryNonIdempotent: retries.retryNonIdempotent, on: retries.on, outcome: result.outcome, attempt, maxAttempts });
      if (!allowed) return result;
      const wait = backoffMs(attempt, this.#random);
      // Never retry after the deadline: a retry that cannot finish in time only adds load.
      if (this.#now() + wait >= c.plan.deadlineAt || !budget!.tryRetry()) return result;
      this.#o.onRetry(c.service);
      if (wait > 0) await sleep(wait);
    }
  }

  async #attempt(c: Call, route: RoutePolicy | undefined, version: string, attempt: number): Promise<CallResult> {
    const { deadlineAt } = c.plan;
    const left = deadlineAt - this.#now();
    if (left <= 0) return failed(timeout(c.service, deadlineAt - c.startedAt), version, attempt - 1);
    const perTry = Math.min(route?.retries?.perTryTimeoutMs ?? left, left);
    const breaker = route?.circuitBreaker ? this.#o.destinations.breaker(c.service, version, route.circuitBreaker) : undefined;
    if (breaker && !breaker.tryAcquire()) {
      const which = version === ANY_VERSION ? "" : ` (version '${version}')`;
      return failed(new MeshError("circuit_open", `circuit to '${c.service}'${which} is open`), version, attempt - 1);
    }
    const balancer = route?.loadBalancer === "p2c-ewma" ? this.#o.destinations.balancer(c.service, version) : undefined;
    const instance = balancer?.pick();
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

  async #send(c: Call, subject: string, perTryMs: number, version: string, attempt: number): Promise<CallResult> {
    try {
      const reply = await this.#requester.request(subject, c.body, c.headers, perTryMs, c.service);
      const h = reply.headers;
      // Whatever answers may write anything here: only well-formed names are believed.
      const answeredBy = h?.get(Wire.version);
      const instance = h?.get(Wire.instance);
      return {
        reply,
        outcome: classify({ reply: h }),
        version: answeredBy && isVersionName(answeredBy) ? answeredBy : version,
        instance: instance && INSTANCE_NAME.test(instance) ? instance : undefined,
        attempts: attempt,
      };
    } catch (err) {
      return failed(meshErrorFromNats(err, c.service, version, perTryMs), version, attempt);
    }
  }

  /** A copy to `version`, fire and forget: its answer, slowness or failure never reach the caller. */
  #mirror(c: Call, version: string): void {
    const h = natsHeaders();
    for (const k of c.headers.keys()) for (const v of c.headers.values(k)) h.append(k, v);
    h.set(Wire.mirror, "true");
    const left = Math.max(1, c.plan.deadlineAt - this.#now());
    h.set(Wire.deadline, String(this.#now() + left));
    this.#requester.request(rpcSubject(c.service, version, this.#o.caller), c.body, h, left, c.service).catch(() => undefined);
  }
}

/** A call that ended in a mesh error after `attempts` attempts. */
function failed(error: MeshError, version: string, attempts: number): CallResult {
  return { error, outcome: classify({ meshError: error }), version, attempts };
}
