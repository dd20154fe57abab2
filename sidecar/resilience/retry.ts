import type { Outcome, RetryCondition } from "../../schemas/index.ts";

/**
 * Retry decisions for the calling sidecar: whether an attempt may be tried
 * again (which outcomes are retryable is the outcome's class, from
 * schemas/outcome.ts), how long to wait, and how many retries a destination
 * may absorb. Pure: time and randomness are injected, so every decision is
 * unit-tested without I/O.
 */

/** Defaults; units are in the names. */
export const DEFAULT_BACKOFF_BASE_MS = 25;
export const DEFAULT_BACKOFF_CAP_MS = 1_000;
export const DEFAULT_BUDGET_WINDOW_MS = 10_000;
/** Retries always allowed per window, so a caller with little traffic can still retry. */
export const DEFAULT_MIN_RETRIES_PER_WINDOW = 10;
/** Granularity of the sliding window: it slides in steps of windowMs / BUDGET_BUCKETS. */
const BUDGET_BUCKETS = 10;

/**
 * Methods whose repetition has the same effect as one call (RFC 9110 §9.2.2),
 * so a retry after an ambiguous failure cannot apply a change twice. Methods
 * are case-sensitive: an unknown spelling is treated as not idempotent.
 */
export const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);

export interface MayRetryArgs {
  method: string;
  /** the route's `retries.retryNonIdempotent` */
  retryNonIdempotent: boolean;
  /** the route's `retries.on` */
  on: readonly RetryCondition[];
  /** how the attempt ended (schemas/outcome.ts classify) */
  outcome: Pick<Outcome, "retryOn">;
  /** attempts made so far, the first try included (1-based) */
  attempt: number;
  /** attempts allowed in all: 1 + the route's `retries.attempts` */
  maxAttempts: number;
}

/**
 * Whether another attempt may follow. The caller still checks its deadline
 * and the RetryBudget: this answers only what the route and the outcome allow.
 */
export function mayRetry(a: MayRetryArgs): boolean {
  if (a.attempt >= a.maxAttempts) return false;
  if (!a.retryNonIdempotent && !IDEMPOTENT_METHODS.has(a.method)) return false;
  const condition = a.outcome.retryOn;
  return condition !== null && a.on.includes(condition);
}

/**
 * Milliseconds to wait before retry number `retry` (1 for the first retry):
 * "full jitter", uniformly random in [0, min(cap, base * 2^(retry-1))).
 * Exponential growth backs off from a struggling destination; drawing the
 * whole delay at random (not base + jitter) spreads the retries of many callers
 * that failed at the same moment, so they do not arrive again as one wave.
 * `random` returns [0, 1) like Math.random.
 */
export function backoffMs(
  retry: number,
  random: () => number,
  baseMs = DEFAULT_BACKOFF_BASE_MS,
  capMs = DEFAULT_BACKOFF_CAP_MS,
): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** (Math.max(1, retry) - 1));
  return Math.floor(random() * ceiling);
}

export interface RetryBudgetOptions {
  /** retries allowed as a percentage of first tries in the window (the route's budgetPercent, 0-100) */
  percent: number;
  /** length of the sliding window; default 10000 */
  windowMs?: number;
  /** retries allowed per window whatever the traffic; default 10 */
  minRetriesPerWindow?: number;
  /** current time in milliseconds */
  now: () => number;
}

/**
 * Caps retries at a share of first tries, so that when a destination fails
 * broadly, retries cannot multiply the load on it (a retry storm). Keep one per
 * calling sidecar per destination service: the budget is local, never shared
 * over the mesh, and one failing service must not spend another's retries.
 *
 * The window is a ring of BUDGET_BUCKETS counters with running totals: each
 * call costs O(1) and memory stays fixed however many requests pass.
 */
export class RetryBudget {
  readonly #percent: number;
  readonly #minRetries: number;
  readonly #bucketMs: number;
  readonly #now: () => number;
  readonly #requests = new Float64Array(BUDGET_BUCKETS);
  readonly #retries = new Float64Array(BUDGET_BUCKETS);
  #totalRequests = 0;
  #totalRetries = 0;
  /** index (time / bucketMs) of the newest bucket */
  #head: number;

  constructor(opts: RetryBudgetOptions) {
    this.#percent = opts.percent;
    this.#minRetries = opts.minRetriesPerWindow ?? DEFAULT_MIN_RETRIES_PER_WINDOW;
    this.#bucketMs = (opts.windowMs ?? DEFAULT_BUDGET_WINDOW_MS) / BUDGET_BUCKETS;
    this.#now = opts.now;
    this.#head = Math.floor(this.#now() / this.#bucketMs);
  }

  /** Counts a first try; retries are not counted here. */
  recordRequest(): void {
    const slot = this.#advance();
    this.#requests[slot]!++;
    this.#totalRequests++;
  }

  /** True, and the retry is counted, when the window has budget left for one more. */
  tryRetry(): boolean {
    const slot = this.#advance();
    const allowed = this.#minRetries + (this.#percent / 100) * this.#totalRequests;
    if (this.#totalRetries >= allowed) return false;
    this.#retries[slot]!++;
    this.#totalRetries++;
    return true;
  }

  /** Moves the window to now, emptying buckets that fell out of it; returns the current slot. */
  #advance(): number {
    const bucket = Math.floor(this.#now() / this.#bucketMs);
    // At most BUDGET_BUCKETS buckets are cleared, however long the budget sat idle.
    const steps = Math.min(bucket - this.#head, BUDGET_BUCKETS);
    for (let i = 1; i <= steps; i++) this.#clear((this.#head + i) % BUDGET_BUCKETS);
    // A clock that steps back keeps counting into the newest bucket instead of reviving old ones.
    if (bucket > this.#head) this.#head = bucket;
    return this.#head % BUDGET_BUCKETS;
  }

  #clear(slot: number): void {
    this.#totalRequests -= this.#requests[slot]!;
    this.#totalRetries -= this.#retries[slot]!;
    this.#requests[slot] = 0;
    this.#retries[slot] = 0;
  }
}
