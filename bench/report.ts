// Turns measured cells into the markdown tables printed at the end of a run
// and the JSON document saved under bench/results/.
import type { LoadResult } from "./load.ts";

/** One scenario at one concurrency. */
export interface Cell {
  scenario: string;
  concurrency: number;
  load: LoadResult;
  /** per sidecar role: RSS at the end of the measured window and the max sampled during it (MiB) */
  sidecarRssMiB: Record<string, { end: number | undefined; max: number | undefined }>;
  /** per process (load generator, app, nats-server, sidecars): CPU time per request (µs) */
  cpuUsPerRequest: Record<string, number>;
}

const fmt = (n: number | undefined, digits: number) => (n === undefined || !Number.isFinite(n) ? "-" : n.toFixed(digits));

function row(cells: string[]): string {
  return `| ${cells.join(" | ")} |`;
}

function table(header: string[], rows: string[][]): string {
  const rule = header.map((_h, i) => (i < 2 ? "---" : "---:"));
  return [row(header), row(rule), ...rows.map(row)].join("\n");
}

function unique(values: string[]): string[] {
  return [...new Set(values)];
}

/**
 * Throughput, latency and memory, with each row's ratio to the baseline
 * scenario (the first one run) at the same concurrency.
 */
export function mainTable(cells: Cell[]): string {
  const baseline = cells[0]?.scenario;
  const roles = unique(cells.flatMap((c) => Object.keys(c.sidecarRssMiB)));
  const header = ["scenario", "conc", "req/s", "p50 ms", "p99 ms", "errors", `req/s vs ${baseline}`, `p50 vs ${baseline}`, `p99 vs ${baseline}`, ...roles.map((r) => `${r} RSS MiB (max)`)];
  const rows = cells.map((c) => {
    const base = cells.find((b) => b.scenario === baseline && b.concurrency === c.concurrency)?.load;
    const ratio = (a: number, b: number | undefined) => (b ? `${fmt(a / b, 2)}x` : "-");
    return [
      c.scenario,
      String(c.concurrency),
      fmt(c.load.rps, 0),
      fmt(c.load.p50Ms, 3),
      fmt(c.load.p99Ms, 3),
      String(c.load.errors),
      ratio(c.load.rps, base?.rps),
      ratio(c.load.p50Ms, base?.p50Ms),
      ratio(c.load.p99Ms, base?.p99Ms),
      ...roles.map((r) => fmt(c.sidecarRssMiB[r]?.max, 1)),
    ];
  });
  return table(header, rows);
}

/** Where the CPU goes: µs of CPU per request in each process (2 cores are shared by all of them). */
export function cpuTable(cells: Cell[]): string {
  const procs = unique(cells.flatMap((c) => Object.keys(c.cpuUsPerRequest)));
  const header = ["scenario", "conc", ...procs.map((p) => `${p} µs/req`), "total µs/req"];
  const rows = cells.map((c) => {
    const total = Object.values(c.cpuUsPerRequest).reduce((a, b) => a + b, 0);
    return [c.scenario, String(c.concurrency), ...procs.map((p) => fmt(c.cpuUsPerRequest[p], 0)), fmt(total, 0)];
  });
  return table(header, rows);
}

/** Error kinds per cell, only for cells that had any. */
export function errorLines(cells: Cell[]): string[] {
  return cells
    .filter((c) => c.load.errors > 0)
    .map((c) => `${c.scenario} c=${c.concurrency}: ${Object.entries(c.load.errorKinds).map(([k, n]) => `${n} x ${k}`).join(", ")}`);
}
