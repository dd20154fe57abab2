/**
 * The circuit breaker a calling sidecar keeps per destination (service and
 * version): after enough failures in a row it refuses calls (circuit_open)
 * for a while instead of piling more load on a failing version, then lets a
 * single probe find out whether the version has recovered. Pure state
 * machine: time is injected, the caller does the I/O and reports outcomes.
 */

export type BreakerState = "closed" | "open" | "half_open";

/** Numeric value of each state, for a gauge. */
export const BREAKER_STATE_VALUE: Readonly<Record<BreakerState, number>> = Object.freeze({
  closed: 0,
  open: 1,
  half_open: 2,
});

export interface CircuitBreakerOptions {
  /** failed calls in a row that open the circuit (>= 1) */
  consecutiveFailures: number;
  /** milliseconds the circuit stays open before one probe is let through */
  openMs: number;
  /** current time in milliseconds */
  now: () => number;
  /** told about every state change, e.g. to set a gauge and log */
  onChange?: (from: BreakerState, to: BreakerState) => void;
}

/**
 * Usage: `if (!breaker.tryAcquire()) answer circuit_open; ...call...;
 * outcome.breakerFailure ? breaker.onFailure() : breaker.onSuccess()`, the
 * outcome classified by schemas/outcome.ts (which outcomes count is decided
 * in the MESH_ERRORS table, not here).
 *
 * Outcomes carry no token, so in half_open the first outcome reported decides,
 * even one from a call admitted before the circuit opened: it is just as
 * recent a sign of the destination's health as the probe.
 */
export class CircuitBreaker {
  readonly #threshold: number;
  readonly #openMs: number;
  readonly #now: () => number;
  readonly #onChange: CircuitBreakerOptions["onChange"];
  #state: BreakerState = "closed";
  #failures = 0;
  /** when the circuit last opened, or when the outstanding half-open probe was admitted */
  #since = 0;

  constructor(opts: CircuitBreakerOptions) {
    this.#threshold = Math.max(1, opts.consecutiveFailures);
    this.#openMs = opts.openMs;
    this.#now = opts.now;
    this.#onChange = opts.onChange;
  }

  /** The state as of the last call; an expired open circuit turns half_open on the next tryAcquire. */
  get state(): BreakerState {
    return this.#state;
  }

  /** May this call go out? In half_open exactly one probe is admitted at a time; the rest are refused until it reports. */
  tryAcquire(): boolean {
    switch (this.#state) {
      case "closed":
        return true;
      case "open":
        if (this.#now() - this.#since < this.#openMs) return false;
        this.#transition("half_open");
        return this.#admitProbe();
      case "half_open":
        // A probe whose outcome never arrives (its caller gave up) must not wedge the
        // circuit: after another openMs a new probe is let through.
        if (this.#now() - this.#since < this.#openMs) return false;
        return this.#admitProbe();
    }
  }

  onSuccess(): void {
    this.#failures = 0;
    // A straggler admitted before the circuit opened does not close it: only a probe may.
    if (this.#state === "half_open") this.#transition("closed");
  }

  onFailure(): void {
    if (this.#state === "half_open") return this.#open();
    // Stragglers failing while open would only prolong it; the probe will tell.
    if (this.#state === "open") return;
    if (++this.#failures >= this.#threshold) this.#open();
  }

  #admitProbe(): true {
    this.#since = this.#now();
    return true;
  }

  #open(): void {
    this.#since = this.#now();
    this.#transition("open");
  }

  #transition(to: BreakerState): void {
    const from = this.#state;
    this.#state = to;
    this.#failures = 0;
    if (from !== to) this.#onChange?.(from, to);
  }
}
