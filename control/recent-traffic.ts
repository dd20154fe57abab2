import { DURATION_BUCKETS_SECONDS, isFailureCode, type MeshStats, type PairStats } from "../schemas/index.ts";
import { quantile } from "./merged-metrics.ts";

/** Defaults; units are in the names. */
export const RECENT_SLOT_MS = 1_000;
/** the longest window `mesh top` can ask for */
export const RECENT_MAX_WINDOW_MS = 60_000;
export const RECENT_DEFAULT_WINDOW_MS = 30_000;

/** A 5xx answer, the mesh's own 5xx errors included, or a broken stream; client_closed and 4xx are not failures. */
export const isFailure = isFailureCode;

const BUCKETS = DURATION_BUCKETS_SECONDS.length + 1;
const SLOTS = RECENT_MAX_WINDOW_MS / RECENT_SLOT_MS;

/** One service pair's last minute, in one-second slots. */
class PairRing {
  readonly stamps = new Float64Array(SLOTS).fill(-1);
  readonly requests = new Float64Array(SLOTS);
  readonly failures = new Float64Array(SLOTS);
  /** body bytes of streamed calls, both flows */
  readonly bytes = new Float64Array(SLOTS);
  readonly buckets = new Float64Array(SLOTS * BUCKETS);
  lastSlot = -1;

  add(slot: number, count: number, failed: number, buckets: readonly number[]): void {
    const i = this.#slot(slot);
    this.requests[i]! += count;
    this.failures[i]! += failed;
    for (let b = 0; b < BUCKETS; b++) this.buckets[i * BUCKETS + b]! += buckets[b] ?? 0;
    this.lastSlot = slot;
  }

  addBytes(slot: number, bytes: number): void {
    this.bytes[this.#slot(slot)]! += bytes;
  }

  /** The ring index of `slot`, emptied when it last held an older slot. */
  #slot(slot: number): number {
    const i = slot % SLOTS;
    if (this.stamps[i] !== slot) {
      this.stamps[i] = slot;
      this.requests[i] = 0;
      this.failures[i] = 0;
      this.bytes[i] = 0;
      this.buckets.fill(0, i * BUCKETS, (i + 1) * BUCKETS);
    }
    return i;
  }

  /** Sums the slots in (now - slots, now]. */
  sum(nowSlot: number, slots: number): { requests: number; failures: number; bytes: number; buckets: Float64Array } {
    const out = { requests: 0, failures: 0, bytes: 0, buckets: new Float64Array(BUCKETS) };
    for (let i = 0; i < SLOTS; i++) {
      const stamp = this.stamps[i]!;
      if (stamp <= nowSlot - slots || stamp > nowSlot) continue;
      out.requests += this.requests[i]!;
      out.failures += this.failures[i]!;
      out.bytes += this.bytes[i]!;
      for (let b = 0; b < BUCKETS; b++) out.buckets[b]! += this.buckets[i * BUCKETS + b]!;
    }
    return out;
  }
}

/**
 * Traffic per service pair over the last minute, from the callers' side
 * (outbound rows: they include the mesh's own errors, which providers never
 * see). What `mesh top` shows, through the `stats` control verb.
 */
export class RecentTraffic {
  readonly #pairs = new Map<string, { source: string; destination: string; cluster: string; ring: PairRing }>();
  readonly #now: () => number;
  readonly #startedAt: number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
    this.#startedAt = now();
  }

  /**
   * `buckets`: per-bucket duration counts on DURATION_BUCKETS_SECONDS, then +Inf.
   * `cluster`: the callers' region, "" for none; a bounded label (control/telemetry.ts, docs/multi-region.md).
   */
  add(source: string, destination: string, code: string, count: number, buckets: readonly number[], cluster = ""): void {
    this.#ring(source, destination, cluster).add(Math.floor(this.#now() / RECENT_SLOT_MS), count, isFailure(code) ? count : 0, buckets);
  }

  /** Body bytes a caller's sidecar moved on streamed calls (docs/architecture.md §15). */
  addStreamBytes(source: string, destination: string, bytes: number, cluster = ""): void {
    this.#ring(source, destination, cluster).addBytes(Math.floor(this.#now() / RECENT_SLOT_MS), bytes);
  }

  #ring(source: string, destination: string, cluster: string): PairRing {
    const key = `${source}\u0001${destination}\u0001${cluster}`;
    let pair = this.#pairs.get(key);
    if (!pair) this.#pairs.set(key, (pair = { source, destination, cluster, ring: new PairRing() }));
    return pair.ring;
  }

  /**
   * Calls to each service over the window, every caller summed (the
   * dashboard's time series, docs/dashboard.md): one entry per destination
   * with traffic in the window.
   */
  destinations(windowMs: number): Map<string, Omit<PairStats, "source" | "destination">> {
    const { nowSlot, slots, covered } = this.#window(windowMs);
    const sums = new Map<string, { requests: number; failures: number; bytes: number; buckets: Float64Array }>();
    for (const p of this.#pairs.values()) {
      const s = p.ring.sum(nowSlot, slots);
      if (s.requests === 0) continue;
      const into = sums.get(p.destination);
      if (!into) sums.set(p.destination, s);
      else {
        into.requests += s.requests;
        into.failures += s.failures;
        into.bytes += s.bytes;
        s.buckets.forEach((n, b) => (into.buckets[b]! += n));
      }
    }
    return new Map([...sums].map(([destination, s]) => [destination, summarize(s, covered)]));
  }

  #window(windowMs: number): { nowSlot: number; slots: number; covered: number } {
    const now = this.#now();
    const window = Math.min(Math.max(RECENT_SLOT_MS, windowMs), RECENT_MAX_WINDOW_MS);
    const covered = Math.max(RECENT_SLOT_MS, Math.min(window, now - this.#startedAt));
    return { nowSlot: Math.floor(now / RECENT_SLOT_MS), slots: Math.round(window / RECENT_SLOT_MS), covered };
  }

  stats(windowMs = RECENT_DEFAULT_WINDOW_MS, service?: string): MeshStats {
    const { nowSlot, slots, covered } = this.#window(windowMs);
    const pairs: PairStats[] = [];
    for (const [key, p] of this.#pairs) {
      if (p.ring.lastSlot <= nowSlot - SLOTS) {
        this.#pairs.delete(key); // quiet for a whole minute: forget it
        continue;
      }
      if (service && p.source !== service && p.destination !== service) continue;
      const s = p.ring.sum(nowSlot, slots);
      if (s.requests > 0) pairs.push({ source: p.source, ...(p.cluster ? { cluster: p.cluster } : {}), destination: p.destination, ...summarize(s, covered) });
    }
    pairs.sort((a, b) => a.source.localeCompare(b.source) || a.destination.localeCompare(b.destination));
    return { windowSeconds: Math.round(covered / 100) / 10, pairs };
  }
}

/** Rate, success and latency quantiles of summed slots covering `coveredMs`. */
function summarize(s: { requests: number; failures: number; bytes: number; buckets: Float64Array }, coveredMs: number): Omit<PairStats, "source" | "destination"> {
  const ms = (q: number) => {
    const seconds = quantile(q, DURATION_BUCKETS_SECONDS, s.buckets);
    return seconds === undefined ? null : Math.round(seconds * 1e6) / 1e3;
  };
  return {
    requests: s.requests,
    rps: Math.round((s.requests / (coveredMs / 1000)) * 100) / 100,
    successRate: 1 - s.failures / s.requests,
    p50Ms: ms(0.5),
    p99Ms: ms(0.99),
    ...(s.bytes > 0 ? { streamBytesPerSecond: Math.round(s.bytes / (coveredMs / 1000)) } : {}),
  };
}
