import type { Metric, Registry } from "prom-client";
import type { MetricSpec, MetricType } from "../schemas/index.ts";

/**
 * Metric families control fills from sidecars' telemetry deltas. prom-client's
 * own Histogram can only observe single values, not add bucket counts, so
 * these implement the small interface a prom-client Registry reads (`get()`),
 * and can be hidden: a replica that is not the telemetry leader exposes the
 * families empty, so summing every replica's scrape never double counts.
 */

interface Series {
  labels: Record<string, string>;
  value: number;
  /** histograms: per-bucket counts for each bound, then +Inf */
  buckets?: number[];
}

interface MetricValue {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}

export interface FamilyOptions {
  /** name, type, label names and (histograms) bucket bounds: one of MESH_METRICS (schemas/metrics.ts) */
  metric: MetricSpec;
  help: string;
  /** false: scrapes see the family without values */
  visible: () => boolean;
  /** runs before every scrape, e.g. to recompute gauges */
  collect?: (family: MergedFamily) => void;
  /** series kept at most; adding a new one beyond it is refused (add/set return false). Absent: 100 000 */
  maxSeries?: number;
  /** labels left out of a series whose value for them is "" (e.g. `cluster` of a sidecar with no region) */
  optionalLabels?: readonly string[];
}

const DEFAULT_MAX_SERIES = 100_000;

const SEP = "\u0001";

export class MergedFamily {
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
  readonly aggregator = "sum";
  readonly #labelNames: readonly string[];
  readonly #bounds: readonly number[];
  readonly #visible: () => boolean;
  readonly #collect: FamilyOptions["collect"];
  readonly #maxSeries: number;
  readonly #optional: ReadonlySet<string>;
  #series = new Map<string, Series>();

  constructor(opts: FamilyOptions) {
    this.name = opts.metric.name;
    this.help = opts.help;
    this.type = opts.metric.type;
    this.#labelNames = opts.metric.labels;
    this.#bounds = opts.metric.buckets ?? [];
    this.#visible = opts.visible;
    this.#collect = opts.collect;
    this.#maxSeries = opts.maxSeries ?? DEFAULT_MAX_SERIES;
    this.#optional = new Set(opts.optionalLabels ?? []);
  }

  /** Registers with a prom-client Registry, which reads any object with `get()`. */
  register(registry: Registry): this {
    registry.registerMetric(this as unknown as Metric);
    return this;
  }

  get size(): number {
    return this.#series.size;
  }

  has(values: readonly string[]): boolean {
    return this.#series.has(values.join(SEP));
  }

  #get(values: readonly string[]): Series | undefined {
    const key = values.join(SEP);
    let s = this.#series.get(key);
    if (!s) {
      if (this.#series.size >= this.#maxSeries) return undefined;
      const pairs = this.#labelNames.map((n, i) => [n, values[i] ?? ""] as const);
      const labels = Object.fromEntries(pairs.filter(([n, v]) => v !== "" || !this.#optional.has(n)));
      s = { labels, value: 0, ...(this.type === "histogram" ? { buckets: new Array<number>(this.#bounds.length + 1).fill(0) } : {}) };
      this.#series.set(key, s);
    }
    return s;
  }

  /** counters: adds; histograms: adds `counts` (per bucket, aligned to the bounds, then +Inf) and `sum`. False: the family is full. */
  add(values: readonly string[], amount: number, counts?: readonly number[]): boolean {
    const s = this.#get(values);
    if (!s) return false;
    s.value += amount;
    if (s.buckets && counts) for (let i = 0; i < s.buckets.length; i++) s.buckets[i]! += counts[i] ?? 0;
    return true;
  }

  /** gauges. False: the family is full. */
  set(values: readonly string[], value: number): boolean {
    const s = this.#get(values);
    if (s) s.value = value;
    return s !== undefined;
  }

  /** Every series' labels and value (histograms: their sum), visible or not: what control's own views read. */
  *entries(): IterableIterator<[Readonly<Record<string, string>>, number]> {
    for (const s of this.#series.values()) yield [s.labels, s.value];
  }

  clear(): void {
    this.#series = new Map();
  }

  async get(): Promise<{ name: string; help: string; type: MetricType; aggregator: string; values: MetricValue[] }> {
    this.#collect?.(this);
    const values: MetricValue[] = [];
    if (this.#visible()) for (const s of this.#series.values()) this.#values(s, values);
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  #values(s: Series, out: MetricValue[]): void {
    if (!s.buckets) return void out.push({ labels: s.labels, value: s.value });
    let cumulative = 0;
    this.#bounds.forEach((le, i) => {
      cumulative += s.buckets![i]!;
      out.push({ metricName: `${this.name}_bucket`, labels: { ...s.labels, le }, value: cumulative });
    });
    cumulative += s.buckets[this.#bounds.length]!;
    out.push({ metricName: `${this.name}_bucket`, labels: { ...s.labels, le: "+Inf" }, value: cumulative });
    out.push({ metricName: `${this.name}_sum`, labels: s.labels, value: s.value });
    out.push({ metricName: `${this.name}_count`, labels: s.labels, value: cumulative });
  }
}

/**
 * Maps a sidecar's bucket counts onto control's bounds. Each sidecar bucket
 * goes to the smallest control bucket whose bound is >= its own, so counts
 * stay exact when the bounds agree and err on the slow side when they do not.
 */
export function rebinner(from: readonly number[], to: readonly number[]): (counts: readonly number[]) => number[] {
  const target = from.map((le) => {
    const i = to.findIndex((b) => b >= le);
    return i === -1 ? to.length : i;
  });
  target.push(to.length);
  return (counts) => {
    const out = new Array<number>(to.length + 1).fill(0);
    counts.forEach((n, i) => (out[target[i] ?? to.length]! += n));
    return out;
  };
}

/** histogram_quantile: linear interpolation inside the bucket holding the q-th request; the last finite bound for +Inf. */
export function quantile(q: number, bounds: readonly number[], counts: ArrayLike<number>): number | undefined {
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i]!;
  if (total === 0) return undefined;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    const n = counts[i]!;
    if (seen + n >= rank && n > 0) {
      if (i >= bounds.length) return bounds[bounds.length - 1];
      const lower = i === 0 ? 0 : bounds[i - 1]!;
      return lower + (bounds[i]! - lower) * ((rank - seen) / n);
    }
    seen += n;
  }
  return bounds[bounds.length - 1];
}
