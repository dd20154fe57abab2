// npm run bench:scale — what a sidecar costs as the mesh grows (issue 12,
// "cost as work grows"; docs/scale.md). In one run, against one nats-server,
// one control and one echo app:
//
//   1. small: a fresh caller and provider sidecar, no policy at all; the load
//      generator (bench/load.ts) calls `bench` through the caller, at each
//      concurrency (fresh sidecars for each).
//   2. grow: 2000 registry entries kept alive by heartbeats sent the way 2000
//      provider sidecars would (mesh.ctl.v1.register.<service> every 2 s), and
//      500 Route + 500 Authz documents for other services applied with
//      `mesh apply -f` (timed as a user sees it, CLI start included, and as
//      the control round trip alone).
//   3. large: fresh sidecars again, which read all of it before /readyz, and
//      the same load. A tenth of the routes ask for p2c-ewma, so the caller
//      follows the registry and its heartbeats as well.
//
// Per-request CPU is each process's CPU time (/proc) over the load
// generator's measured window divided by the requests in it, as bench/run.ts
// counts it. Ratios are large/small of the same run.
// Env: SCALE_DOCS (500), SCALE_INSTANCES (2000), BENCH_DURATION_S (5),
// BENCH_WARMUP_S (1), BENCH_CONCURRENCY ("1,32"), SCALE_IDLE_S (3), SCALE_REPEATS (3), BENCH_PROFILE=1 (--cpu-prof).
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { NatsConnection } from "@nats-io/transport-node";
import { stringify } from "yaml";
import { connectCli, controlRequest } from "../cli/client.ts";
import { registerSubject } from "../schemas/index.ts";
import type { LoadResult, LoadSpec } from "./load.ts";
import { startBenchNats } from "./nats.ts";
import { cleanup, cpuSeconds, installSignalHandlers, makeTempDir, rssMiB, runLoadGenerator, startChild, wasInterrupted } from "./procs.ts";
import { scaleDocuments, scaleHeartbeat } from "./scale-policy.ts";
import { type BenchEnv, startControl, startEchoApp, startSidecar } from "./scenarios.ts";

const BENCH_DIR = fileURLToPath(new URL(".", import.meta.url));
const REPO_DIR = join(BENCH_DIR, "..");
const RESULTS_DIR = join(BENCH_DIR, "results");
const MESH_BIN = join(REPO_DIR, "bin", "mesh.js");
const num = (name: string, fallback: number) => {
  const n = Number(process.env[name] ?? fallback);
  if (!(n > 0)) throw new Error(`${name}='${process.env[name]}' is not a positive number`);
  return n;
};
const DOCS = num("SCALE_DOCS", 500);
const INSTANCES = num("SCALE_INSTANCES", 2000);
const DURATION_S = num("BENCH_DURATION_S", 5);
const WARMUP_S = num("BENCH_WARMUP_S", 1);
/** each case runs once per concurrency; c=1 shows the cost per request without the batching a saturated c=32 gets */
const CONCURRENCIES = (process.env.BENCH_CONCURRENCY ?? "1,32").split(",").map((c) => Number(c.trim()));
if (CONCURRENCIES.some((c) => !Number.isInteger(c) || c < 1)) throw new Error(`BENCH_CONCURRENCY='${process.env.BENCH_CONCURRENCY}' is not a list of positive integers`);
/** instances per service in the registry, and how often each heartbeats (the sidecar's interval) */
const INSTANCES_PER_SERVICE = 4;
const HEARTBEAT_MS = 2_000;
/** heartbeats go out in this many slices per interval, as independent sidecars would spread them */
const HEARTBEAT_SLICES = 20;
const RSS_SAMPLE_MS = 250;
/** how long each case first sits idle, to measure what the sidecars spend with no request (s) */
const IDLE_S = num("SCALE_IDLE_S", 3);
/** load runs per case and concurrency: other work on the machine comes and goes */
const REPEATS = num("SCALE_REPEATS", 3);

const say = (line: string) => process.stderr.write(`bench:scale: ${line}\n`);

interface CaseResult {
  name: string;
  concurrency: number;
  readyMs: { caller: number; provider: number };
  load: LoadResult;
  /** CPU µs per request, per process: all it used over the measured window */
  cpuUs: Record<"caller" | "provider" | "nats-server" | "control", number>;
  /** CPU ms per second each process used idle, before the load (heartbeats, telemetry, timers) */
  idleCpuMsPerS: Record<"caller" | "provider" | "nats-server" | "control", number>;
  /** cpuUs less the idle rate over the window: what the requests themselves cost */
  netCpuUs: Record<"caller" | "provider", number>;
  /** caller sidecar RSS: idle after start, and the largest sample under load */
  callerRssMiB: { idle: number; loadMax: number };
  providerRssMiB: { idle: number; loadMax: number };
  /** what the caller's /config shows it applied */
  callerPolicies: number;
  /** caller CPU µs per request of every run, lowest first (the median run is the one reported) */
  callerCpuUsByRun: number[];
}

/** Runs bench/load.ts once; `window` is called when its measured window opens and closes. */
async function runLoad(origin: string, concurrency: number, window: (edge: "start" | "end") => void): Promise<LoadResult> {
  const spec: LoadSpec = { origin, path: "/echo", headers: { host: "bench" }, concurrency, warmupS: WARMUP_S, durationS: DURATION_S, timeoutMs: 10_000 };
  return (await runLoadGenerator("load generator", spec, window)).result;
}

async function policiesApplied(admin: string): Promise<number> {
  const res = await fetch(`http://${admin}/config`);
  return ((await res.json()) as { policies: unknown[] }).policies.length;
}

/** One load run, with every watched process's CPU at the edges of its measured window and RSS sampled within it. */
async function measuredLoad(origin: string, concurrency: number, cpuNow: () => Promise<Record<string, number>>, sample: () => Promise<void>) {
  let timer: NodeJS.Timeout | undefined;
  let cpuStart: Promise<Record<string, number>> | undefined;
  let cpuEnd: Promise<Record<string, number>> | undefined;
  const load = await runLoad(origin, concurrency, (edge) => {
    if (edge === "start") {
      cpuStart = cpuNow();
      timer = setInterval(() => void sample(), RSS_SAMPLE_MS);
    } else {
      clearInterval(timer);
      cpuEnd = cpuNow();
    }
  });
  await sample();
  const [a, b] = await Promise.all([cpuStart!, cpuEnd!]);
  return { load, a, b };
}

/** Fresh caller and provider sidecars, then SCALE_REPEATS load runs through them. */
async function measureCase(name: string, concurrency: number, env: BenchEnv, pids: { nats: number; control: number }): Promise<CaseResult> {
  const timed = async (spec: Parameters<typeof startSidecar>[1]) => {
    const t0 = performance.now();
    const s = await startSidecar(env, spec);
    return { s, ms: performance.now() - t0 };
  };
  const [provider, caller] = await Promise.all([
    timed({ role: `${name} provider sidecar`, service: "bench", app: env.appOrigin }),
    timed({ role: `${name} caller sidecar`, service: "loadgen" }),
  ]);
  try {
    const watched = { caller: caller.s.child.pid, provider: provider.s.child.pid, "nats-server": pids.nats, control: pids.control };
    const cpuNow = async () => Object.fromEntries(await Promise.all(Object.entries(watched).map(async ([k, pid]) => [k, (await cpuSeconds(pid)) ?? NaN] as const)));
    const idle = { caller: (await rssMiB(caller.s.child.pid)) ?? NaN, provider: (await rssMiB(provider.s.child.pid)) ?? NaN };
    const loadMax = { caller: 0, provider: 0 };
    const sample = async () => {
      loadMax.caller = Math.max(loadMax.caller, (await rssMiB(caller.s.child.pid)) ?? 0);
      loadMax.provider = Math.max(loadMax.provider, (await rssMiB(provider.s.child.pid)) ?? 0);
    };
    const idleStart = await cpuNow();
    const idleT0 = performance.now();
    await new Promise((r) => setTimeout(r, IDLE_S * 1000)); // a window to measure over, not a wait for an event
    const idleEnd = await cpuNow();
    const idleS = (performance.now() - idleT0) / 1000;
    const idleRate = (k: keyof typeof watched) => ((idleEnd[k]! - idleStart[k]!) * 1000) / idleS;
    // Several runs on the same sidecars; the one with the median caller CPU per request is reported.
    const runs: Array<{ load: LoadResult; a: Record<string, number>; b: Record<string, number> }> = [];
    for (let r = 0; r < REPEATS; r++) {
      say(`${name}: load c=${concurrency} for ${DURATION_S} s (run ${r + 1} of ${REPEATS})...`);
      runs.push(await measuredLoad(`http://${caller.s.listen}`, concurrency, cpuNow, sample));
    }
    const callerUs = (run: (typeof runs)[number]) => (run.b.caller! - run.a.caller!) / run.load.requests;
    runs.sort((x, y) => callerUs(x) - callerUs(y));
    const { load, a, b } = runs[Math.floor(runs.length / 2)]!;
    const perRequest = (k: keyof typeof watched) => ((b[k]! - a[k]!) * 1e6) / load.requests;
    const netPerRequest = (k: keyof typeof watched) => ((b[k]! - a[k]! - (idleRate(k) / 1000) * load.elapsedS) * 1e6) / load.requests;
    const result: CaseResult = {
      name,
      concurrency,
      readyMs: { caller: caller.ms, provider: provider.ms },
      load,
      cpuUs: { caller: perRequest("caller"), provider: perRequest("provider"), "nats-server": perRequest("nats-server"), control: perRequest("control") },
      idleCpuMsPerS: { caller: idleRate("caller"), provider: idleRate("provider"), "nats-server": idleRate("nats-server"), control: idleRate("control") },
      netCpuUs: { caller: netPerRequest("caller"), provider: netPerRequest("provider") },
      callerRssMiB: { idle: idle.caller, loadMax: loadMax.caller },
      providerRssMiB: { idle: idle.provider, loadMax: loadMax.provider },
      callerPolicies: await policiesApplied(caller.s.admin),
      callerCpuUsByRun: runs.map((run) => callerUs(run) * 1e6),
    };
    say(`${name} c=${concurrency}: ${load.rps.toFixed(0)} req/s, ${load.errors} errors, caller ${result.cpuUs.caller.toFixed(1)} µs/req, RSS ${idle.caller.toFixed(1)} -> ${loadMax.caller.toFixed(1)} MiB`);
    return result;
  } finally {
    await caller.s.child.stop();
    await provider.s.child.stop();
  }
}

/**
 * Keeps `INSTANCES` registry entries alive the way their sidecars would:
 * each heartbeats every HEARTBEAT_MS through control. Resolves once every
 * entry has been written once; `stop()` ends the heartbeats.
 */
async function keepRegistryAlive(nc: NatsConnection): Promise<{ stop(): void; failed: () => number }> {
  const all = Array.from({ length: INSTANCES }, (_, k) => ({ i: Math.floor(k / INSTANCES_PER_SERVICE), j: k % INSTANCES_PER_SERVICE }));
  const perSlice = Math.ceil(all.length / HEARTBEAT_SLICES);
  let failed = 0;
  const beat = (slice: number) =>
    Promise.all(
      all.slice(slice * perSlice, (slice + 1) * perSlice).map(({ i, j }) => {
        const hb = scaleHeartbeat(i, j);
        return nc.request(registerSubject(hb.entry!.service), JSON.stringify(hb), { timeout: HEARTBEAT_MS }).then(
          (m) => void ((m.json<{ ok: boolean }>().ok) || failed++),
          () => void failed++,
        );
      }),
    );
  for (let s = 0; s < HEARTBEAT_SLICES; s++) await beat(s);
  let slice = 0;
  const timer = setInterval(() => void beat(slice++ % HEARTBEAT_SLICES), HEARTBEAT_MS / HEARTBEAT_SLICES);
  return { stop: () => clearInterval(timer), failed: () => failed };
}

/** `mesh apply -f` of `documents` as a user runs it; wall time of the whole command. */
async function cliApply(natsUrl: string, dir: string, name: string, documents: unknown[]): Promise<number> {
  const file = join(dir, `${name}.yaml`);
  await writeFile(file, documents.map((d) => stringify(d)).join("---\n"));
  const t0 = performance.now();
  const child = startChild(`mesh apply ${name}`, process.execPath, [MESH_BIN, "apply", "-f", file, "--nats", natsUrl]);
  await child.exited;
  const ms = performance.now() - t0;
  if (child.process.exitCode !== 0) throw new Error(`mesh apply -f ${file} failed (exit ${child.process.exitCode}):\n${child.output()}`);
  return ms;
}

/** Rows of the report: what, how to read it from a case, and whether large vs small is a ratio or a difference in MiB. */
const ROWS: Array<[string, (c: CaseResult) => number, "×" | "Δ"]> = [
  ["req/s", (c) => c.load.rps, "×"],
  ["caller sidecar CPU µs/req", (c) => c.cpuUs.caller, "×"],
  ["provider sidecar CPU µs/req", (c) => c.cpuUs.provider, "×"],
  ["caller CPU µs/req less its idle rate", (c) => c.netCpuUs.caller, "×"],
  ["provider CPU µs/req less its idle rate", (c) => c.netCpuUs.provider, "×"],
  ["caller idle CPU ms/s", (c) => c.idleCpuMsPerS.caller, "×"],
  ["nats-server idle CPU ms/s", (c) => c.idleCpuMsPerS["nats-server"], "×"],
  ["control idle CPU ms/s", (c) => c.idleCpuMsPerS.control, "×"],
  ["nats-server CPU µs/req", (c) => c.cpuUs["nats-server"], "×"],
  ["control CPU µs/req", (c) => c.cpuUs.control, "×"],
  ["caller RSS idle MiB", (c) => c.callerRssMiB.idle, "Δ"],
  ["caller RSS under load (max) MiB", (c) => c.callerRssMiB.loadMax, "Δ"],
  ["provider RSS under load (max) MiB", (c) => c.providerRssMiB.loadMax, "Δ"],
  ["caller start to /readyz ms", (c) => c.readyMs.caller, "×"],
  ["p50 ms", (c) => c.load.p50Ms, "×"],
  ["p99 ms", (c) => c.load.p99Ms, "×"],
];

function table(small: CaseResult, large: CaseResult): string {
  const lines = [`| c=${small.concurrency} | small | ${DOCS} Routes + ${DOCS} Authz + ${INSTANCES} instances | large vs small |`, "| --- | ---: | ---: | ---: |"];
  for (const [what, pick, how] of ROWS) {
    const [s, l] = [pick(small), pick(large)];
    const change = how === "×" ? `${(l / s).toFixed(2)}×` : `${l - s >= 0 ? "+" : ""}${(l - s).toFixed(1)} MiB`;
    lines.push(`| ${what} | ${s.toFixed(1)} | ${l.toFixed(1)} | ${change} |`);
  }
  return lines.join("\n");
}

async function main(): Promise<void> {
  installSignalHandlers();
  const nats = await startBenchNats(say);
  if (nats.pid === undefined) throw new Error("nats-server pid unknown: its CPU cannot be measured");
  const appOrigin = (await startEchoApp()).origin;
  const control = await startControl({ natsUrl: nats.url });
  const profileDir = process.env.BENCH_PROFILE === "1" ? join(RESULTS_DIR, "profiles", `scale-${Date.now()}`) : undefined;
  const env: BenchEnv = { appOrigin, natsUrl: nats.url, profileDir };
  const pids = { nats: nats.pid, control: control.pid };

  const smalls: CaseResult[] = [];
  for (const c of CONCURRENCIES) smalls.push(await measureCase("small", c, env, pids));

  say(`growing: ${INSTANCES} registry entries with heartbeats, ${DOCS} Routes and ${DOCS} Authz...`);
  const nc = await connectCli({ nats: nats.url });
  const registry = await keepRegistryAlive(nc);
  const dir = await makeTempDir("natsmesh-bench-scale-");
  const docs = scaleDocuments(DOCS);
  // What `mesh apply` costs whatever the file (process start, connect): one document.
  const oneCliMs = await cliApply(nats.url, dir, "one", [{ kind: "Route", service: "one", timeoutMs: 1_000 }]);
  const routesCliMs = await cliApply(nats.url, dir, "routes", docs.slice(0, DOCS));
  const authzCliMs = await cliApply(nats.url, dir, "authz", docs.slice(DOCS));
  // The control round trip alone, for all of them at once (updates: each key gets a new revision).
  const t0 = performance.now();
  await controlRequest(nc, "apply", { documents: docs });
  const allRoundTripMs = performance.now() - t0;
  say(`mesh apply -f of ${DOCS} Routes: ${routesCliMs.toFixed(0)} ms, of ${DOCS} Authz: ${authzCliMs.toFixed(0)} ms (CLI start included); apply of all ${docs.length} (control round trip): ${allRoundTripMs.toFixed(0)} ms`);

  const larges: CaseResult[] = [];
  for (const c of CONCURRENCIES) larges.push(await measureCase("large", c, env, pids));
  registry.stop();
  const short = larges.find((l) => l.callerPolicies < 2 * DOCS);
  if (short) throw new Error(`the large caller applied only ${short.callerPolicies} of ${2 * DOCS} documents`);
  const heartbeatsFailed = registry.failed();
  await nc.close();

  const apply = { oneCliMs, routesCliMs, authzCliMs, [`all${docs.length}RoundTripMs`]: allRoundTripMs };
  for (const [i, small] of smalls.entries()) console.log(`\n${table(small, larges[i]!)}`);
  console.log();
  console.log(`| mesh apply | documents | ms |\n| --- | ---: | ---: |`);
  console.log(`| \`mesh apply -f\` one Route (CLI process, start to exit) | 1 | ${oneCliMs.toFixed(0)} |`);
  console.log(`| \`mesh apply -f\` Routes (CLI process, start to exit) | ${DOCS} | ${routesCliMs.toFixed(0)} |`);
  console.log(`| \`mesh apply -f\` Authz (CLI process, start to exit) | ${DOCS} | ${authzCliMs.toFixed(0)} |`);
  console.log(`| apply verb, control round trip | ${docs.length} | ${allRoundTripMs.toFixed(0)} |`);
  if (heartbeatsFailed) console.log(`registry heartbeats not accepted by control: ${heartbeatsFailed}`);
  await mkdir(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, `scale-${new Date().toISOString().replaceAll(":", "-")}.json`);
  const settings = { docs: DOCS, instances: INSTANCES, concurrencies: CONCURRENCIES, durationS: DURATION_S, warmupS: WARMUP_S, node: process.version, natsServer: nats.version };
  await writeFile(file, `${JSON.stringify({ settings, smalls, larges, apply, heartbeatsFailed }, null, 2)}\n`);
  say(`saved ${file}`);
}

try {
  await main();
} catch (err) {
  if (!wasInterrupted()) console.error(`bench:scale: ${(err as Error).stack ?? String(err)}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
