import { setTimeout as sleep } from "node:timers/promises";
import { RECENT_MAX_WINDOW_MS } from "../../control/client.ts";
import type { MeshStats, PairStats } from "../../schemas/index.ts";
import { NATS_FLAGS, OUTPUT_FLAG, durationArg, formatTable, jsonOutput, serviceArg, type Parsed } from "../args.ts";
import { Exit, connectCli, controlRequest, type NatsFlags } from "../client.ts";
import type { Command } from "../command.ts";

/**
 * `mesh top`: request rate, success rate and latency per service pair, from
 * control's merged telemetry (the `stats` verb), redrawn every interval
 * until Ctrl-C; `--once` prints one frame and exits.
 */
async function top(p: Parsed): Promise<number> {
  const { values, positionals } = p;
  const service = serviceArg("SERVICE", positionals[0]);
  const json = jsonOutput(p);
  const asked = durationArg("window", values.window, "30s");
  // Control keeps 1 to 60 s of traffic and reads a longer or shorter window as the nearest bound: say so.
  const windowMs = Math.min(Math.max(asked, 1_000), RECENT_MAX_WINDOW_MS);
  const clamped = windowMs !== asked ? `--window ${values.window} clamped to ${windowMs / 1000}s (control keeps 1s to ${RECENT_MAX_WINDOW_MS / 1000}s)` : undefined;
  if (clamped && json) console.error(`note: ${clamped}`);
  const intervalMs = durationArg("interval", values.interval, "2s");
  const live = values.once !== true;
  const nc = await connectCli(values as NatsFlags);
  const stopped = new AbortController();
  const stop = () => stopped.abort();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  try {
    do {
      const stats = await controlRequest(nc, "stats", { windowSeconds: windowMs / 1000, ...(service ? { service } : {}) });
      const frame = json ? JSON.stringify(stats) : renderTop(stats, new Date(), clamped);
      // Redraw in place on a terminal; elsewhere append frames.
      process.stdout.write(live && !json && process.stdout.isTTY ? `\x1b[H\x1b[2J${frame}\n` : `${frame}\n`);
      if (live) await sleep(intervalMs, undefined, { signal: stopped.signal }).catch(() => undefined);
    } while (live && !stopped.signal.aborted);
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
    await nc.close().catch(() => undefined);
  }
  return Exit.ok;
}

const percent = (v: number | null) => (v === null ? "-" : `${(v * 100).toFixed(2)}%`);
const millis = (v: number | null) => (v === null ? "-" : v >= 100 ? `${Math.round(v)}ms` : `${v.toFixed(1)}ms`);

/** Bytes per second in SI units, as network rates are usually read. */
const rate = (v: number | undefined) => {
  if (v === undefined) return "-";
  const [unit, scale] = v >= 1e9 ? ["GB/s", 1e9] : v >= 1e6 ? ["MB/s", 1e6] : v >= 1e3 ? ["kB/s", 1e3] : ["B/s", 1];
  return `${(v / scale).toFixed(scale === 1 ? 0 : 1)}${unit}`;
};

/** `withCluster`: a CLUSTER column (the callers' region) after SOURCE, when any pair has one (docs/multi-region.md). */
export function topRow(p: PairStats, withCluster = false): string[] {
  const cluster = withCluster ? [p.cluster ?? "-"] : [];
  return [p.source, ...cluster, p.destination, p.rps.toFixed(1), percent(p.successRate), millis(p.p50Ms), millis(p.p99Ms), String(p.requests), rate(p.streamBytesPerSecond)];
}

/** One frame: a title line, then a row per service pair (or a note that there is no traffic). */
export function renderTop(stats: MeshStats, at: Date, note?: string): string {
  const title = `mesh top  ${at.toISOString()}  last ${stats.windowSeconds}s, from the callers' sidecars${note ? `\nnote: ${note}` : ""}`;
  if (stats.pairs.length === 0) return `${title}\n(no requests in the window)`;
  const withCluster = stats.pairs.some((p) => p.cluster !== undefined);
  const head = ["SOURCE", ...(withCluster ? ["CLUSTER"] : []), "DESTINATION", "RPS", "SUCCESS", "P50", "P99", "REQUESTS", "STREAMED"];
  const rows = [head, ...stats.pairs.map((p) => topRow(p, withCluster))];
  return `${title}\n${formatTable(rows)}`;
}

export const TOP_COMMAND: Command = {
  synopsis: "top [SERVICE] [--window 30s] [--interval 2s] [--once] [-o json]",
  summary: "live request rate, success rate and p50/p99 per service pair, from control",
  args: {
    flags: {
      window: { type: "string", value: "30s", help: "the figures cover this much past traffic (at most 60s)" },
      interval: { type: "string", value: "2s", help: "redraw this often" },
      once: { type: "boolean", help: "print one frame and exit" },
      ...OUTPUT_FLAG,
      ...NATS_FLAGS,
    },
    positionals: { min: 0, max: 1, names: "SERVICE" },
  },
  run: top,
};
