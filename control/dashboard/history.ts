import type { ServiceSample } from "../telemetry.ts";
import { SERIES_FIELDS, type ServiceSeries } from "./model.ts";

/**
 * The last 15 minutes of each service's golden signals, for the dashboard's
 * charts (docs/dashboard.md §Time series). Control samples its merged
 * telemetry every `sampleMs` into one fixed ring per service. Pure: the
 * caller passes the time and the sample.
 */
export const HISTORY_LIMITS = {
  /** one point every this many ms */
  sampleMs: 5_000,
  /** points kept per service: 15 min at 5 s */
  points: 180,
  /** rate, success and latency of a point cover this much traffic before it */
  windowMs: 10_000,
  /** services with a ring; a new one past this is not recorded (counted in `droppedServices`) until an idle one is forgotten */
  services: 500,
} as const;


const FIELDS = SERIES_FIELDS.length;

interface Totals {
  retries: number;
  authzDenied: number;
  quotaRejected: number;
}

class Ring {
  readonly times = new Float64Array(HISTORY_LIMITS.points);
  readonly values = new Float64Array(HISTORY_LIMITS.points * FIELDS).fill(NaN);
  count = 0;
  next = 0;
  /** the time of the last point with any activity */
  activeAt: number;
  totals: Totals | undefined;

  constructor(at: number) {
    this.activeAt = at;
  }

  push(at: number, point: readonly number[]): void {
    this.times[this.next] = at;
    for (let f = 0; f < FIELDS; f++) this.values[this.next * FIELDS + f] = point[f]!;
    this.next = (this.next + 1) % HISTORY_LIMITS.points;
    this.count = Math.min(this.count + 1, HISTORY_LIMITS.points);
  }

  series(): ServiceSeries {
    const out = { t: [] as number[], ...Object.fromEntries(SERIES_FIELDS.map((f) => [f, [] as Array<number | null>])) } as ServiceSeries;
    const first = (this.next - this.count + HISTORY_LIMITS.points) % HISTORY_LIMITS.points;
    for (let i = 0; i < this.count; i++) {
      const p = (first + i) % HISTORY_LIMITS.points;
      out.t.push(Math.round(this.times[p]!) / 1000);
      SERIES_FIELDS.forEach((f, fi) => {
        const v = this.values[p * FIELDS + fi]!;
        out[f].push(Number.isNaN(v) ? null : Math.round(v * 1000) / 1000);
      });
    }
    return out;
  }
}

export class ServiceHistory {
  readonly #rings = new Map<string, Ring>();
  #droppedServices = 0;
  #lastAt: number | undefined;

  /** services that had activity while every ring was taken, since start */
  get droppedServices(): number {
    return this.#droppedServices;
  }

  /** Adds one point per known service (and per newly active one, room permitting) at time `at` (epoch ms). */
  record(at: number, samples: ReadonlyMap<string, ServiceSample>): void {
    const seconds = this.#lastAt === undefined ? 0 : (at - this.#lastAt) / 1000;
    this.#lastAt = at;
    for (const [service, ring] of this.#rings) {
      if (!samples.has(service) && at - ring.activeAt > HISTORY_LIMITS.points * HISTORY_LIMITS.sampleMs) this.#rings.delete(service);
    }
    for (const [service, sample] of samples) {
      let ring = this.#rings.get(service);
      if (!ring) {
        if (this.#rings.size >= HISTORY_LIMITS.services) {
          this.#droppedServices++;
          continue;
        }
        this.#rings.set(service, (ring = new Ring(at)));
      }
      const point = pointOf(sample, ring.totals, seconds);
      if (sample.traffic || point.slice(4).some((v) => v > 0)) ring.activeAt = at;
      ring.totals = { retries: sample.retries, authzDenied: sample.authzDenied, quotaRejected: sample.quotaRejected };
      ring.push(at, point);
    }
    // A known service absent from this sample had no traffic and no counters: a point of nothing.
    for (const [service, ring] of this.#rings) if (!samples.has(service)) ring.push(at, EMPTY_POINT);
  }

  series(service: string): ServiceSeries | undefined {
    return this.#rings.get(service)?.series();
  }
}

const EMPTY_POINT: readonly number[] = [NaN, NaN, NaN, NaN, 0, 0, 0, 0];

/** A point in SERIES_FIELDS order; counters become per-second rates since the previous point (NaN on the first). */
function pointOf(s: ServiceSample, before: Totals | undefined, seconds: number): number[] {
  const rate = (now: number, then: number | undefined) => (then === undefined || seconds <= 0 ? NaN : Math.max(0, now - then) / seconds);
  const t = s.traffic;
  return [
    t ? t.rps : NaN,
    t?.successRate ?? NaN,
    t?.p50Ms ?? NaN,
    t?.p99Ms ?? NaN,
    rate(s.retries, before?.retries),
    s.breakersOpen,
    rate(s.quotaRejected, before?.quotaRejected),
    rate(s.authzDenied, before?.authzDenied),
  ];
}
