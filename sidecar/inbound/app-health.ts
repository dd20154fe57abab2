import type { Logger } from "pino";
import type { Pool } from "undici";

export interface AppHealthOptions {
  pool: Pool;
  logger: Logger;
  /** how often the application is asked */
  intervalMs?: number;
  /** failed checks in a row before it counts as down */
  failuresToDown?: number;
  probeTimeoutMs?: number;
  onDown: () => void | Promise<void>;
  onUp: () => void | Promise<void>;
}

/**
 * Watches the local application. When it stops answering, the sidecar leaves
 * its queue groups (so callers' requests and retries land on other instances)
 * and reports not ready; when it answers again, the sidecar rejoins.
 * Any HTTP answer, even a 404, proves the application is up.
 */
export class AppHealth {
  readonly #o: Required<Omit<AppHealthOptions, "logger" | "pool" | "onDown" | "onUp">> & AppHealthOptions;
  #up = true;
  #failures = 0;
  #timer: NodeJS.Timeout | undefined;
  #checking: Promise<boolean> | undefined;

  constructor(opts: AppHealthOptions) {
    this.#o = { intervalMs: 1_000, failuresToDown: 2, probeTimeoutMs: 1_000, ...opts };
  }

  get up(): boolean {
    return this.#up;
  }

  /** Asks once (the answer sets the initial state, without hysteresis), then keeps asking. */
  async start(): Promise<void> {
    this.#up = await appAnswers(this.#o.pool, this.#o.probeTimeoutMs);
    if (!this.#up) this.#o.logger.warn("application does not answer yet: not joining the queue groups");
    this.#timer = setInterval(() => void this.check(), this.#o.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** One probe now (coalesced with one already running); resolves to whether the app answered. */
  check(): Promise<boolean> {
    this.#checking ??= this.#probe().finally(() => (this.#checking = undefined));
    return this.#checking;
  }

  async #probe(): Promise<boolean> {
    const answered = await appAnswers(this.#o.pool, this.#o.probeTimeoutMs);
    this.#failures = answered ? 0 : this.#failures + 1;
    if (answered && !this.#up) {
      this.#up = true;
      this.#o.logger.info("application answers again: rejoining the queue groups");
      await this.#o.onUp();
    } else if (!answered && this.#up && this.#failures >= this.#o.failuresToDown) {
      this.#up = false;
      this.#o.logger.warn("application does not answer: leaving the queue groups");
      await this.#o.onDown();
    }
    return answered;
  }
}

export async function appAnswers(pool: Pool, timeoutMs: number): Promise<boolean> {
  try {
    const res = await pool.request({ method: "GET", path: "/", headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
    await res.body.dump();
    return true;
  } catch {
    return false;
  }
}
