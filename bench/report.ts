// Turns measured cells into the markdown tables printed at the end of a run
// and the JSON document saved under bench/results/.
import type { LoadResult } from "./load.ts";
import type { StartupResult } from "./startup.ts";

export type Side = "caller" | "provider";
/** Where CPU is counted, per request: the two sides, the shared processes, and mesh control. */
export const CPU_COLUMNS = ["caller", "provider", "nats-server", "app", "control"] as const;
export type CpuColumn = (typeof CPU_COLUMNS)[number];

/** One scenario at one concurrency. */
export interface Cell {
  scenario: string;
  concurrency: number;
  /** which round of the run (BENCH_ROUNDS > 1); ratios are to the baseline of the same round */
  round?: number;
  load: LoadResult;
  /** which process played each side (e.g. caller: "floor caller") */
  processes: Partial<Record<Side, string>>;
  /** per side: RSS at the end of the measured window and the max sampled during it (MiB) */
  rssMiB: Partial<Record<Side, { end: number | undefined; max: number | undefined }>>;
  /**
   * CPU time per request (µs) of each process on this scenario's path; a
   * column is absent when the scenario has no such process (no app behind
   * moleculer, no NATS for direct, control only for the mesh). `system` is
   * their sum; the load generator is reported apart from it.
   */
  cpuUsPerRequest: Partial<Record<CpuColumn | "system" | "load generator", number>>;
  /** this cell over the baseline cell at the same concurrency, measured in the same run */
  vsBaseline?: Ratios;
}

export interface Ratios {
  baseline: string;
  rps: number;
  p50: number;
  p99: number;
  cpu: Partial<Record<CpuColumn | "system", number>>;
}

/** Fills each cell's vsBaseline from the baseline scenario's cell at the same concurrency (when it ran). */
export function addRatios(cells: Cell[], baseline: string): void {
  for (const c of cells) {
    const b = cells.find((x) => x.scenario === baseline && x.concurrency === c.concurrency && x.round === c.round);
    if (!b) continue;
    const cpu: Ratios["cpu"] = {};
    for (const k of [...CPU_COLUMNS, "system"] as const) {
      const a = c.cpuUsPerRequest[k];
      const d = b.cpuUsPerRequest[k];
      if (a !== undefined && d !== undefined && d > 0) cpu[k] = a / d;
    }
    c.vsBaseline = { baseline, rps: c.load.rps / b.load.rps, p50: c.load.p50Ms / b.load.p50Ms, p99: c.load.p99Ms / b.load.p99Ms, cpu };
  }
}

/** a row's name: the scenario, and its round when there are several */
const label = (c: Cell) => (c.round === undefined ? c.scenario : `${c.scenario} #${c.round}`);
const fmt = (n: number | undefined, digits: number) => (n === undefined || !Number.isFinite(n) ? "-" : n.toFixed(digits));
const times = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? "-" : `${n.toFixed(2)}x`);

function row(cells: string[]): string {
  return `| ${cells.join(" | ")} |`;
}

function table(header: string[], rows: string[][], textColumns = 2): string {
  const rule = header.map((_h, i) => (i < textColumns ? "---" : "---:"));
  return [row(header), row(rule), ...rows.map(row)].join("\n");
}

/** Throughput, latency, their ratios to the baseline, and the RSS of both sides. */
export function mainTable(cells: Cell[], baseline: string): string {
  const header = ["scenario", "conc", "req/s", "p50 ms", "p99 ms", "errors", `req/s vs ${baseline}`, `p50 vs ${baseline}`, `p99 vs ${baseline}`, "caller RSS MiB", "provider RSS MiB"];
  const rows = cells.map((c) => [
    label(c),
    String(c.concurrency),
    fmt(c.load.rps, 0),
    fmt(c.load.p50Ms, 3),
    fmt(c.load.p99Ms, 3),
    String(c.load.errors),
    times(c.vsBaseline?.rps),
    times(c.vsBaseline?.p50),
    times(c.vsBaseline?.p99),
    fmt(c.rssMiB.caller?.max, 1),
    fmt(c.rssMiB.provider?.max, 1),
  ]);
  return table(header, rows);
}

/** Where the CPU goes: µs of CPU per request in each process (the machine's cores are shared by all of them). */
export function cpuTable(cells: Cell[]): string {
  const header = ["scenario", "conc", ...CPU_COLUMNS.map((p) => `${p} µs/req`), "system µs/req", "load generator µs/req"];
  const rows = cells.map((c) => [label(c), String(c.concurrency), ...[...CPU_COLUMNS, "system", "load generator"].map((k) => fmt(c.cpuUsPerRequest[k as CpuColumn], 0))]);
  return table(header, rows);
}

/** The CPU table divided by the baseline's, column by column. */
export function cpuRatioTable(cells: Cell[], baseline: string): string {
  const cols = [...CPU_COLUMNS.filter((k) => k !== "control"), "system"] as const;
  const header = ["scenario", "conc", ...cols.map((k) => `${k} vs ${baseline}`)];
  const rows = cells.map((c) => [label(c), String(c.concurrency), ...cols.map((k) => times(c.vsBaseline?.cpu[k]))]);
  return table(header, rows);
}

/** Which process is the caller and the provider side of each scenario. */
export function sidesLegend(cells: Cell[]): string {
  const seen = new Map<string, Cell["processes"]>();
  for (const c of cells) seen.set(c.scenario, c.processes);
  const sides = [...seen].filter(([, p]) => p.caller || p.provider).map(([s, p]) => `${s}: ${p.caller ?? "-"} / ${p.provider ?? "-"}`);
  return `caller / provider side: ${sides.join("; ")}.`;
}

export function startupTable(s: StartupResult): string {
  const rows = s.runs.map((r, i) => [`#${i + 1}`, fmt(r.readyMs, 0), fmt(r.idleRssMiB, 1)]);
  rows.push(["median", fmt(s.median.readyMs, 0), fmt(s.median.idleRssMiB, 1)]);
  for (const v of s.variants ?? []) rows.push([`median [${v.launch}]`, fmt(v.median.readyMs, 0), fmt(v.median.idleRssMiB, 1)]);
  return table(["sidecar start", "spawn -> /readyz 200 ms", `idle RSS MiB (${s.settings.idleSettleMs / 1000} s after ready)`], rows, 1);
}

/** The median of the finite values; undefined when there is none. */
export function median(values: number[]): number | undefined {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (!v.length) return undefined;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

/** With several rounds: per scenario and concurrency, the median over rounds of each ratio and RSS peak. */
export function roundsTable(cells: Cell[], baseline: string): string {
  const groups = new Map<string, Cell[]>();
  for (const c of cells) {
    const key = `${c.scenario}\u0000${c.concurrency}`;
    groups.set(key, [...(groups.get(key) ?? []), c]);
  }
  const header = ["scenario", "conc", "rounds", `req/s vs ${baseline}`, `caller µs/req vs ${baseline}`, `provider µs/req vs ${baseline}`, "caller RSS MiB", "provider RSS MiB"];
  const rows = [...groups.values()].map((g) => [
    g[0]!.scenario,
    String(g[0]!.concurrency),
    String(g.length),
    times(median(g.map((c) => c.vsBaseline?.rps ?? NaN))),
    times(median(g.map((c) => c.vsBaseline?.cpu.caller ?? NaN))),
    times(median(g.map((c) => c.vsBaseline?.cpu.provider ?? NaN))),
    fmt(median(g.map((c) => c.rssMiB.caller?.max ?? NaN)), 1),
    fmt(median(g.map((c) => c.rssMiB.provider?.max ?? NaN)), 1),
  ]);
  return `Medians over rounds:\n\n${table(header, rows)}`;
}

/** Error kinds per cell, only for cells that had any. */
export function errorLines(cells: Cell[]): string[] {
  return cells
    .filter((c) => c.load.errors > 0)
    .map((c) => `${label(c)} c=${c.concurrency}: ${Object.entries(c.load.errorKinds).map(([k, n]) => `${n} x ${k}`).join(", ")}`);
}

/** The p-th percentile of ascending `sorted` (nearest rank): with fewer than 100 values p99 is the largest. */
export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}
