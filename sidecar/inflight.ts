/**
 * Counts work in flight so that a draining sidecar can wait for the last
 * request to be answered before it closes its connections.
 */
export class InflightTracker {
  #count = 0;
  #waiters: Array<() => void> = [];

  get size(): number {
    return this.#count;
  }

  track(work: Promise<unknown>): void {
    this.#count++;
    const done = () => {
      if (--this.#count === 0) this.#wake();
    };
    work.then(done, done);
  }

  /** Resolves once nothing is in flight. */
  idle(): Promise<void> {
    if (this.#count === 0) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }
}
