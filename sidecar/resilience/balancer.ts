/**
 * Latency-aware instance choice for the `p2c-ewma` load balancer, as in
 * Linkerd and Finagle: pick two distinct instances at random and send to the
 * cheaper, where cost = peak-EWMA latency * (in-flight requests + 1).
 * Two random choices avoid herding every caller onto the one best instance
 * while still steering clearly away from slow or busy ones. Pure: time and
 * randomness are injected; the caller reports each request's start and end.
 */

/** Defaults; units are in the names. */
export const DEFAULT_EWMA_DECAY_MS = 10_000;
export const DEFAULT_INITIAL_LATENCY_MS = 5;
/** A failed request costs at least this many times the instance's estimate. */
const FAILURE_PENALTY_FACTOR = 10;

export interface P2cEwmaOptions {
  /** time constant of the moving average in milliseconds; default 10000 */
  decayMs?: number;
  /** latency estimate of the first instances, before any was measured; default 5 */
  initialLatencyMs?: number;
  /** current time in milliseconds */
  now: () => number;
  /** uniform in [0, 1), like Math.random */
  random: () => number;
}

interface InstanceStats {
  /** latency estimate in ms as of `stamp` */
  ewma: number;
  stamp: number;
  inflight: number;
}

export class P2cEwmaBalancer {
  readonly #decayMs: number;
  readonly #initialMs: number;
  readonly #now: () => number;
  readonly #random: () => number;
  #ids: readonly string[] = [];
  #stats = new Map<string, InstanceStats>();

  constructor(opts: P2cEwmaOptions) {
    this.#decayMs = opts.decayMs ?? DEFAULT_EWMA_DECAY_MS;
    this.#initialMs = opts.initialLatencyMs ?? DEFAULT_INITIAL_LATENCY_MS;
    this.#now = opts.now;
    this.#random = opts.random;
  }

  /**
   * Replaces the instance set. Instances that stay keep what was learned
   * about them; new ones start at the median estimate of the others (the
   * initial latency if there are none): starting lower would flood a cold
   * instance with every pick it takes part in, starting higher would starve it.
   */
  setInstances(ids: readonly string[]): void {
    const now = this.#now();
    const start = this.#stats.size > 0 ? median([...this.#stats.values()].map((s) => this.#estimate(s, now))) : this.#initialMs;
    const next = new Map<string, InstanceStats>();
    for (const id of ids) next.set(id, this.#stats.get(id) ?? { ewma: start, stamp: now, inflight: 0 });
    this.#stats = next;
    this.#ids = [...next.keys()];
  }

  /**
   * The instance to call; undefined when there is none. `among`: choose only
   * from these (a subset of the instance set: the caller's region, the ones
   * not tried yet; docs/multi-region.md).
   */
  pick(among: readonly string[] = this.#ids): string | undefined {
    const n = among.length;
    if (n <= 1) return among[0];
    const i = this.#index(n);
    // A second index among the other n-1, shifted past i: two distinct instances, uniformly.
    let j = this.#index(n - 1);
    if (j >= i) j++;
    const a = among[i]!;
    const b = among[j]!;
    const now = this.#now();
    return this.#cost(a, now) <= this.#cost(b, now) ? a : b;
  }

  /** A request to `id` went out. */
  start(id: string): void {
    const s = this.#stats.get(id);
    if (s) s.inflight++;
  }

  /**
   * A request to `id` ended after `latencyMs`. Instances removed meanwhile are
   * ignored. A failure is charged a penalty latency: failing fast must not look
   * like answering fast, or an instance that errors at once would draw all traffic.
   */
  finish(id: string, latencyMs: number, failed: boolean): void {
    const s = this.#stats.get(id);
    if (!s) return;
    s.inflight = Math.max(0, s.inflight - 1);
    const now = this.#now();
    // The longer since the last sample, the less the old estimate weighs (w near 0 when stale).
    const w = this.#weight(s, now);
    const current = s.ewma * w;
    const sample = failed ? Math.max(latencyMs, FAILURE_PENALTY_FACTOR * Math.max(current, this.#initialMs)) : latencyMs;
    // Peak: a slowdown is believed at once; only improvements are averaged in, so the
    // result stays between the sample and the current estimate.
    s.ewma = sample > current ? sample : current * w + sample * (1 - w);
    s.stamp = now;
  }

  /** The current latency estimate of `id` in ms; undefined for an unknown instance. */
  estimateMs(id: string): number | undefined {
    const s = this.#stats.get(id);
    return s && this.#estimate(s, this.#now());
  }

  /**
   * The estimate decays toward zero while an instance gets no samples, so an
   * instance that lost every comparison because it was slow is tried again
   * after a while and can win its traffic back once it has recovered.
   */
  #estimate(s: InstanceStats, now: number): number {
    return s.ewma * this.#weight(s, now);
  }

  /** exp(-elapsed / decay): how much of the estimate at the last sample is left now. */
  #weight(s: InstanceStats, now: number): number {
    return Math.exp(-Math.max(0, now - s.stamp) / this.#decayMs);
  }

  #cost(id: string, now: number): number {
    const s = this.#stats.get(id);
    return s ? this.#estimate(s, now) * (s.inflight + 1) : this.#initialMs;
  }

  /** A uniform index in [0, n), safe against a random() that returns 1. */
  #index(n: number): number {
    return Math.min(n - 1, Math.floor(this.#random() * n));
  }
}

function median(values: number[]): number {
  values.sort((x, y) => x - y);
  const mid = values.length >> 1;
  return values.length % 2 ? values[mid]! : (values[mid - 1]! + values[mid]!) / 2;
}
