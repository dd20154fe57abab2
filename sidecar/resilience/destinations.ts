import type { CircuitBreakerPolicy } from "../../schemas/index.ts";
import { P2cEwmaBalancer } from "./balancer.ts";
import { CircuitBreaker, type BreakerState } from "./circuit-breaker.ts";
import type { InstanceView } from "../policy/instances.ts";
import { RetryBudget } from "./retry.ts";

/** An instance to address, and the balancer that learns from the call. */
export interface InstanceChoice {
  balancer: P2cEwmaBalancer;
  instance: string;
}

/** How an attempt may choose by region (docs/multi-region.md). */
export interface LocalityOptions {
  /** the caller's region; undefined = every instance is local */
  region: string | undefined;
  /** may leave the region when it has no ready instance (Route localityFailover) */
  failover: boolean;
  /** instances earlier attempts of this call went to */
  tried?: ReadonlySet<string>;
}

export interface DestinationHooks {
  onBreakerChange(service: string, version: string, to: BreakerState): void;
}

/**
 * Per-destination resilience state of a caller sidecar: retry budgets per
 * service, circuit breakers and latency balancers per service and version.
 * Created lazily on first use and rebuilt when the route's settings change.
 */
export class Destinations {
  readonly #budgets = new Map<string, { percent: number; budget: RetryBudget }>();
  readonly #breakers = new Map<string, { policy: CircuitBreakerPolicy; breaker: CircuitBreaker }>();
  readonly #balancers = new Map<string, { balancer: P2cEwmaBalancer; ids: readonly string[] }>();
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #hooks: DestinationHooks;
  readonly #instances: InstanceView;

  constructor(opts: { now: () => number; random: () => number; hooks: DestinationHooks; instances: InstanceView }) {
    this.#now = opts.now;
    this.#random = opts.random;
    this.#hooks = opts.hooks;
    this.#instances = opts.instances;
  }

  budget(service: string, percent: number): RetryBudget {
    const current = this.#budgets.get(service);
    if (current?.percent === percent) return current.budget;
    const budget = new RetryBudget({ percent, now: this.#now });
    this.#budgets.set(service, { percent, budget });
    return budget;
  }

  breaker(service: string, version: string, policy: CircuitBreakerPolicy): CircuitBreaker {
    const key = `${service}/${version}`;
    const current = this.#breakers.get(key);
    if (current?.policy === policy) return current.breaker;
    const breaker = new CircuitBreaker({
      consecutiveFailures: policy.consecutiveFailures,
      openMs: policy.openMs,
      now: this.#now,
      onChange: (_from, to) => this.#hooks.onBreakerChange(service, version, to),
    });
    this.#breakers.set(key, { policy, breaker });
    return breaker;
  }

  /**
   * Locality first (docs/multi-region.md): p2c-ewma among the ready
   * instances in the caller's region not tried yet by this call; with
   * failover, then among untried ones elsewhere; then one tried already,
   * local before remote. The threshold to cross is zero: one ready local
   * instance keeps every call in the region. "none_local": failover is off
   * and the region has no ready instance. undefined: no instance known at
   * all, so the call goes to the queue group (which prefers the local
   * cluster on its own, and answers no-responders when nobody serves).
   */
  choose(service: string, version: string, opts: LocalityOptions): InstanceChoice | "none_local" | undefined {
    const all = this.#instances.ready(service, version);
    const balancer = this.#balancer(service, version, all);
    if (!balancer) return opts.failover ? undefined : "none_local";
    const local = opts.region === undefined ? all : this.#instances.ready(service, version, opts.region);
    const tried = opts.tried;
    const fresh = (ids: string[]) => (tried?.size ? ids.filter((id) => !tried.has(id)) : ids);
    const order = opts.failover ? [fresh(local), fresh(all), local, all] : [fresh(local), local];
    const among = order.find((ids) => ids.length > 0);
    if (!among) return opts.failover ? undefined : "none_local";
    return { balancer, instance: balancer.pick(among)! };
  }

  /** The p2c-ewma balancer over `ids`, the ready instances of service/version; undefined when none is known. */
  #balancer(service: string, version: string, ids: string[]): P2cEwmaBalancer | undefined {
    if (ids.length === 0) return undefined;
    const key = `${service}/${version}`;
    let entry = this.#balancers.get(key);
    if (!entry) {
      entry = { balancer: new P2cEwmaBalancer({ now: this.#now, random: this.#random }), ids: [] };
      this.#balancers.set(key, entry);
    }
    // The view hands out the same list until something changed: comparing references is enough.
    if (entry.ids !== ids) {
      entry.balancer.setInstances(ids);
      entry.ids = ids;
    }
    return entry.balancer;
  }
}
