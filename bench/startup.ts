// Sidecar start-up, measured in the same run as the load scenarios: the time
// from spawning `node bin/mesh.js sidecar --app <echo app> ...` to its admin
// /readyz first answering 200, and its RSS once it has sat idle for a while.
// The sidecar is a provider (it has an app), against the run's NATS and mesh
// control, so ready means: connected, policy read, app answering, queue
// groups joined. Repeated STARTUP_RUNS times, one after another; the median
// is what the table shows. With launch variants (BENCH_MESH_VARIANTS), each
// round starts the default and then every variant, so they share the
// machine's conditions; each gets a row of medians.
import { fileURLToPath } from "node:url";
import { freePort, rssMiB, startChild } from "./procs.ts";
import { median } from "./report.ts";
import { type BenchEnv, type Launch, parseLaunch, readyzProbe } from "./scenarios.ts";

const MESH_BIN = fileURLToPath(new URL("../bin/mesh.js", import.meta.url));
/** BENCH_STARTUP_RUNS: starts per launch */
export const STARTUP_RUNS = Number(process.env.BENCH_STARTUP_RUNS || 3);
/** BENCH_IDLE_SETTLE_S: how long a ready sidecar sits idle before its RSS is read (ms) */
export const IDLE_SETTLE_MS = Number(process.env.BENCH_IDLE_SETTLE_S || 2) * 1000;
/** /readyz is polled this often while waiting (ms); it bounds the timing's resolution */
const POLL_MS = 5;
const READY_TIMEOUT_MS = 30_000;

export interface StartupSample {
  /** spawn -> first 200 from /readyz (ms) */
  readyMs: number;
  /** RSS IDLE_SETTLE_MS after ready (MiB) */
  idleRssMiB: number | undefined;
}

export interface StartupResult {
  runs: StartupSample[];
  median: { readyMs: number; idleRssMiB: number | undefined };
  settings: { runs: number; idleSettleMs: number; pollMs: number; service: string };
  /** the same for each launch variant, started in the same rounds */
  variants?: Array<{ launch: string; runs: StartupSample[]; median: StartupResult["median"] }>;
}

async function startOnce(env: BenchEnv, service: string, run: number, launch: Launch): Promise<StartupSample> {
  const listen = `127.0.0.1:${await freePort()}`;
  const admin = `127.0.0.1:${await freePort()}`;
  const args = [...launch.nodeFlags, MESH_BIN, "sidecar", "--service", service, "--app", env.appOrigin, "--nats", env.natsUrl, "--listen", listen, "--admin", admin, "--log-level", "warn"];
  const t0 = performance.now();
  const child = startChild(`startup sidecar #${run}`, process.execPath, args, { env: launch.env });
  try {
    let readyMs: number | undefined;
    while (readyMs === undefined) {
      if (child.process.exitCode !== null || child.process.signalCode !== null) throw new Error(`${child.name} exited before it was ready:\n${child.output()}`);
      if (await readyzProbe(admin)().catch(() => undefined)) readyMs = performance.now() - t0;
      else if (performance.now() - t0 > READY_TIMEOUT_MS) throw new Error(`${child.name} was not ready within ${READY_TIMEOUT_MS} ms:\n${child.output()}`);
      else await new Promise((r) => setTimeout(r, POLL_MS));
    }
    await new Promise((r) => setTimeout(r, IDLE_SETTLE_MS));
    return { readyMs, idleRssMiB: await rssMiB(child.pid) };
  } finally {
    await child.stop();
  }
}

function summary(runs: StartupSample[]): StartupResult["median"] {
  const rss = runs.map((r) => r.idleRssMiB).filter((v): v is number => v !== undefined);
  return { readyMs: median(runs.map((r) => r.readyMs)) ?? NaN, idleRssMiB: median(rss) };
}

export async function measureSidecarStartup(env: BenchEnv, say: (line: string) => void, variants: readonly Launch[] = []): Promise<StartupResult> {
  const service = "startup";
  const launches = [parseLaunch(""), ...variants];
  const runs = launches.map((): StartupSample[] => []);
  for (let i = 1; i <= STARTUP_RUNS; i++) {
    for (const [k, launch] of launches.entries()) {
      const sample = await startOnce(env, service, i, launch);
      say(`  start #${i}${launch.label ? ` [${launch.label}]` : ""}: ready after ${sample.readyMs.toFixed(0)} ms, idle RSS ${sample.idleRssMiB?.toFixed(1) ?? "-"} MiB`);
      runs[k]!.push(sample);
    }
  }
  return {
    runs: runs[0]!,
    median: summary(runs[0]!),
    settings: { runs: STARTUP_RUNS, idleSettleMs: IDLE_SETTLE_MS, pollMs: POLL_MS, service },
    ...(variants.length ? { variants: variants.map((v, k) => ({ launch: v.label, runs: runs[k + 1]!, median: summary(runs[k + 1]!) })) } : {}),
  };
}
