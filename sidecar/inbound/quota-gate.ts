import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import {
  RateLimitHeader,
  checkControlReply,
  formatProblems,
  quotaLeaseSubject,
  type QuotaLeaseReply,
  type QuotaLeaseRequest,
  type QuotaPolicy,
} from "../../schemas/index.ts";
import { LocalCounter, compileQuota, headersOf, secondsUntil, type CompiledQuota, type RateLimitHeaders } from "./quota-plan.ts";

export type { RateLimitHeaders } from "./quota-plan.ts";

/**
 * Global quota at a provider sidecar. Permits are leased from control in
 * small batches per (caller, window) and spent here, so a request that finds
 * a permit is decided synchronously with no round trip; only running out
 * asks control (one request in flight per counter, shared by every request
 * waiting for it).
 */

export type AdmitDecision =
  | { allowed: true; headers?: RateLimitHeaders }
  | { allowed: false; retryAfterS: number; headers: RateLimitHeaders };

/** For metrics: `unavailable_*` = control could not be asked and `onUnavailable` decided. */
export type QuotaOutcome = "allowed" | "denied" | "unavailable_allowed" | "unavailable_denied";

export interface QuotaGateOptions {
  nc: NatsConnection;
  /** the provider service whose callers are limited */
  service: string;
  logger: Logger;
  /** epoch milliseconds; windows follow this clock */
  now?: () => number;
  onDecision?: (caller: string, decision: QuotaOutcome) => void;
  /** how long a lease request may take before control counts as unavailable; default 500 */
  leaseTimeoutMs?: number;
}

export interface QuotaGate {
  /** The Quota document this service follows; undefined = nobody is limited. */
  setPolicy(policy: Readonly<QuotaPolicy> | undefined): void;
  /** One request from `caller`: synchronous while this instance holds permits. */
  admit(caller: string): AdmitDecision | Promise<AdmitDecision>;
  /** Gives back unspent permits of current windows (so other instances can use them) and stops. */
  close(): Promise<void>;
}

const QuotaDefaults = {
  leaseTimeoutMs: 500,
  /** after control was unreachable, `onUnavailable` decides without asking for this long */
  unavailableRetryMs: 1_000,
  /** after control said a window is used up, deny locally for this long, then ask again (permits may have come back) */
  exhaustedRecheckMs: 1_000,
  /** how often held permits are checked for idleness */
  sweepMs: 1_000,
  /** permits unused this long are given back, if their window has at least `sweepMs` left */
  idleReleaseMs: 1_000,
  /** callers remembered; beyond it the memory starts over (callers are service names, so rarely reached) */
  maxCallers: 10_000,
} as const;

const ALLOWED: AdmitDecision = Object.freeze({ allowed: true });

/** `[name, value]` pairs of a decision's headers: RateLimit-* when a limit applies, Retry-After on a denial. */
export function rateLimitHeaders(decision: AdmitDecision): Array<[string, string]> {
  const h = decision.headers;
  if (!h) return [];
  const out: Array<[string, string]> = [
    [RateLimitHeader.limit, String(h.limit)],
    [RateLimitHeader.remaining, String(h.remaining)],
    [RateLimitHeader.reset, String(h.resetS)],
  ];
  if (!decision.allowed) out.push([RateLimitHeader.retryAfter, String(decision.retryAfterS)]);
  return out;
}

export function createQuotaGate(opts: QuotaGateOptions): QuotaGate {
  return new Gate(opts);
}

class Gate implements QuotaGate {
  readonly #opts: QuotaGateOptions;
  readonly #now: () => number;
  #quota: CompiledQuota | undefined;
  /** caller -> its counters, or null when not limited; rebuilt after a policy change */
  readonly #plans = new Map<string, LocalCounter[] | null>();
  /** `<per> <caller>` -> counter; outlives policy changes so held permits stay counted */
  readonly #counters = new Map<string, LocalCounter>();
  readonly #releases = new Set<Promise<void>>();
  #unavailableUntil = 0;
  readonly #sweep: NodeJS.Timeout;

  constructor(opts: QuotaGateOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    this.#sweep = setInterval(() => this.#releaseIdle(), QuotaDefaults.sweepMs).unref();
  }

  setPolicy(policy: Readonly<QuotaPolicy> | undefined): void {
    this.#quota = compileQuota(policy);
    this.#plans.clear();
  }

  admit(caller: string): AdmitDecision | Promise<AdmitDecision> {
    const counters = this.#planFor(caller);
    if (!counters) return ALLOWED;
    return this.#decideLocally(caller, counters, this.#now()) ?? this.#admitAfterLease(caller, counters);
  }

  async close(): Promise<void> {
    clearInterval(this.#sweep);
    const now = this.#now();
    for (const c of this.#counters.values()) {
      c.roll(now);
      if (c.permits > 0) this.#release(c);
    }
    await Promise.all([...this.#releases]);
  }

  #planFor(caller: string): LocalCounter[] | null {
    const known = this.#plans.get(caller);
    if (known !== undefined) return known;
    if (this.#plans.size >= QuotaDefaults.maxCallers || this.#counters.size >= QuotaDefaults.maxCallers) {
      // Start over (permits held are simply not spent): plans point at counters, so both go.
      this.#plans.clear();
      this.#counters.clear();
    }
    const limits = this.#quota?.limitsFor(caller);
    const plan = limits
      ? limits.map(({ per, requests }) => {
          const key = `${per} ${caller}`;
          const counter = this.#counters.get(key) ?? new LocalCounter(caller, per, requests);
          counter.limit = requests;
          this.#counters.set(key, counter);
          return counter;
        })
      : null;
    this.#plans.set(caller, plan);
    return plan;
  }

  /** A decision from what this instance holds and knows, or undefined when a lease is needed first. */
  #decideLocally(caller: string, counters: LocalCounter[], now: number): AdmitDecision | undefined {
    let lacking = false;
    for (const c of counters) {
      c.roll(now);
      if (c.permits > 0) continue;
      if (now < c.exhaustedUntil) return this.#decide(caller, "denied", deniedBy(c, now));
      if (now < this.#unavailableUntil) return this.#whenUnavailable(caller, c, now);
      lacking = true;
    }
    if (lacking) return undefined;
    for (const c of counters) {
      c.permits--;
      c.lastUseMs = now;
    }
    return this.#decide(caller, "allowed", { allowed: true, headers: headersOf(counters, now) });
  }

  async #admitAfterLease(caller: string, counters: LocalCounter[]): Promise<AdmitDecision> {
    // Each round either brings permits, learns the window is used up, or finds control unavailable;
    // permits may go to other waiters first, so ask again. The bound is a guard, never reached in practice.
    for (let round = 0; round < 1_000; round++) {
      const now = this.#now();
      const lacking = counters.filter((c) => {
        c.roll(now);
        return c.permits === 0 && now >= c.exhaustedUntil;
      });
      await Promise.all(lacking.map((c) => this.#lease(c, now)));
      const decision = this.#decideLocally(caller, counters, this.#now());
      if (decision) return decision;
    }
    return this.#whenUnavailable(caller, counters[0]!, this.#now());
  }

  #whenUnavailable(caller: string, c: LocalCounter, now: number): AdmitDecision {
    if (this.#quota?.onUnavailable !== "deny") return this.#decide(caller, "unavailable_allowed", ALLOWED);
    const retryAfterS = secondsUntil(this.#unavailableUntil, now);
    const headers = { limit: c.limit, remaining: 0, resetS: secondsUntil(c.windowEnd(), now) };
    return this.#decide(caller, "unavailable_denied", { allowed: false, retryAfterS, headers });
  }

  #decide(caller: string, outcome: QuotaOutcome, decision: AdmitDecision): AdmitDecision {
    this.#opts.onDecision?.(caller, outcome);
    return decision;
  }

  #lease(c: LocalCounter, now: number): Promise<void> {
    c.inflight ??= this.#requestLease(c, now).finally(() => (c.inflight = undefined));
    return c.inflight;
  }

  async #requestLease(c: LocalCounter, now: number): Promise<void> {
    const window = c.window;
    try {
      const reply = await this.#ask({ ...this.#address(c), want: c.want });
      c.granted(window, reply.granted, reply.remaining, this.#now(), QuotaDefaults.exhaustedRecheckMs);
      if (this.#unavailableUntil !== 0) {
        this.#unavailableUntil = 0;
        this.#opts.logger.info({ service: this.#opts.service }, "quota accounting reachable again");
      }
    } catch (err) {
      if (this.#unavailableUntil === 0) {
        const onUnavailable = this.#quota?.onUnavailable ?? "allow";
        this.#opts.logger.warn({ err, service: this.#opts.service, onUnavailable }, "quota accounting unreachable; onUnavailable decides");
      }
      this.#unavailableUntil = now + QuotaDefaults.unavailableRetryMs;
    }
  }

  /** Gives back permits nobody used for a while, while their window still has time for others to use them. */
  #releaseIdle(): void {
    const now = this.#now();
    for (const c of this.#counters.values()) {
      c.roll(now);
      const idle = now - c.lastUseMs >= QuotaDefaults.idleReleaseMs;
      if (c.permits > 0 && idle && !c.inflight && c.windowEnd() - now > QuotaDefaults.sweepMs) this.#release(c);
    }
  }

  /** Permits given back are gone here at once; if the request fails they are simply lost (never counted twice). */
  #release(c: LocalCounter): void {
    const release = c.permits;
    c.permits = 0;
    c.want = Math.max(1, Math.ceil(c.want / 2));
    const done = this.#ask({ ...this.#address(c), want: 0, release })
      .then(() => undefined)
      .catch((err) => this.#opts.logger.debug({ err, caller: c.caller, release }, "quota release lost"))
      .finally(() => this.#releases.delete(done));
    this.#releases.add(done);
  }

  #address(c: LocalCounter): Omit<QuotaLeaseRequest, "want" | "release"> {
    return { service: this.#opts.service, caller: c.caller, per: c.per, window: c.window, limit: c.limit };
  }

  /** One lease request; throws (control counts as unavailable) unless control answers with a grant that fits control-quota-reply.schema.json. */
  async #ask(body: QuotaLeaseRequest): Promise<QuotaLeaseReply> {
    const timeout = this.#opts.leaseTimeoutMs ?? QuotaDefaults.leaseTimeoutMs;
    const msg = await this.#opts.nc.request(quotaLeaseSubject(this.#opts.service), JSON.stringify(body), { timeout });
    const checked = checkControlReply("quota", msg.json<unknown>());
    if (!checked.ok) throw new Error(`invalid quota lease reply: ${formatProblems(checked.problems)}`);
    const reply = checked.value;
    if (!reply.ok) throw new Error(`control refused the quota lease: ${reply.error.code}: ${reply.error.message}`);
    return reply;
  }
}

/** 429 until the window ends; the count of the window is used up. */
function deniedBy(c: LocalCounter, now: number): AdmitDecision {
  const resetS = secondsUntil(c.windowEnd(), now);
  return { allowed: false, retryAfterS: resetS, headers: { limit: c.limit, remaining: 0, resetS } };
}
