/**
 * How control serves requests: at most `maxConcurrent` handlers run at once,
 * and waiting requests queue per key, served round-robin across keys. The key
 * of a verb a sidecar sends as itself (quota leases, registry heartbeats, key
 * listings) is its subject, e.g. `mesh.ctl.v1.quota.<service>`, which secure
 * mode binds to that service's sidecars; every other verb is its own key. So a
 * flood from one identity fills its own queue only: everyone else keeps
 * their turn, and one key never holds more than `maxInFlightPerKey` handlers.
 * A request that finds its queue full (or no room for a new queue) is
 * refused at once, never held. Pure scheduling; the handler is injected.
 */
export const DISPATCH_LIMITS = {
  /** handlers running at once, in all */
  maxConcurrent: 64,
  /** handlers running at once for one key */
  maxInFlightPerKey: 16,
  /** requests waiting per key; more are refused */
  maxQueuedPerKey: 256,
  /** keys with requests waiting; a request for another is refused */
  maxKeys: 1_024,
} as const;

export type DispatchLimits = { -readonly [K in keyof typeof DISPATCH_LIMITS]: number };

export class FairDispatcher<T> {
  readonly #limits: DispatchLimits;
  readonly #run: (item: T) => Promise<void>;
  /** key -> waiting items; Map order is the round-robin ring */
  readonly #queues = new Map<string, T[]>();
  readonly #inFlight = new Map<string, number>();
  #running = 0;
  /** the key served last: the next turn starts after it */
  #last: string | undefined;

  constructor(run: (item: T) => Promise<void>, limits: Partial<DispatchLimits> = {}) {
    this.#run = run;
    this.#limits = { ...DISPATCH_LIMITS, ...limits };
  }

  get running(): number {
    return this.#running;
  }

  /** Queues `item` under `key`; false when it is refused (its queue is full, or too many keys wait). */
  submit(key: string, item: T): boolean {
    let queue = this.#queues.get(key);
    if (!queue) {
      if (this.#queues.size >= this.#limits.maxKeys) return false;
      this.#queues.set(key, (queue = []));
    }
    if (queue.length >= this.#limits.maxQueuedPerKey) return false;
    queue.push(item);
    this.#pump();
    return true;
  }

  #pump(): void {
    while (this.#running < this.#limits.maxConcurrent) {
      const key = this.#nextKey();
      if (key === undefined) return;
      const queue = this.#queues.get(key)!;
      const item = queue.shift()!;
      if (queue.length === 0) this.#queues.delete(key);
      this.#last = key;
      this.#start(key, item);
    }
  }

  /** The first key after the last one served (in ring order) that has work and room to run it. */
  #nextKey(): string | undefined {
    const keys = [...this.#queues.keys()];
    if (keys.length === 0) return undefined;
    const after = this.#last === undefined ? -1 : keys.indexOf(this.#last);
    for (let i = 1; i <= keys.length; i++) {
      const key = keys[(after + i + keys.length) % keys.length]!;
      if ((this.#inFlight.get(key) ?? 0) < this.#limits.maxInFlightPerKey) return key;
    }
    return undefined;
  }

  #start(key: string, item: T): void {
    this.#running++;
    this.#inFlight.set(key, (this.#inFlight.get(key) ?? 0) + 1);
    const done = () => {
      this.#running--;
      const n = (this.#inFlight.get(key) ?? 1) - 1;
      if (n === 0) this.#inFlight.delete(key);
      else this.#inFlight.set(key, n);
      this.#pump();
    };
    this.#run(item).then(done, done);
  }
}
