// npm run bench:propagation — how fast a `mesh apply` reaches every sidecar.
//
// 500 policy watchers follow mesh_routes on a 3-node JetStream cluster. A
// watcher is the sidecar's own Route-following code (KvFollower + KvReader,
// the sidecar's check and compileRoute; bench/propagation-watchers.ts) on its
// own NATS connection, spread over the nodes, in PROPAGATION_PROCESSES
// processes: not a whole sidecar. Each round applies a new Route through
// control and measures the time from the apply returning to the last watcher
// having applied that revision (clock: performance.timeOrigin + now(), the
// same in every process of the machine).
// Every round counts, the first too (the watchers' code is not warm yet: it
// is printed on its own line). With 100 rounds p99 is the 99th value.
// Env: PROPAGATION_WATCHERS (500), PROPAGATION_PROCESSES (4), PROPAGATION_ROUNDS (100),
// BENCH_PROFILE=1 (watcher processes under --cpu-prof, in bench/results/profiles/propagation/).
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { connect } from "@nats-io/transport-node";
import pino from "pino";
import { controlRequest } from "../cli/client.ts";
import { startNatsCluster } from "../local/nats-cluster.ts";
import { startControl } from "../control/service.ts";
import { cleanup, cpuSeconds, installSignalHandlers, startChild, waitFor } from "./procs.ts";
import { percentile } from "./report.ts";

const WATCHERS = Number(process.env.PROPAGATION_WATCHERS ?? 500);
const PROCESSES = Math.min(WATCHERS, Number(process.env.PROPAGATION_PROCESSES ?? 4));
const ROUNDS = Number(process.env.PROPAGATION_ROUNDS ?? 100);
const BENCH_DIR = fileURLToPath(new URL("./", import.meta.url));
const RESULTS_DIR = join(BENCH_DIR, "results");
const logger = pino({ level: "warn" });
const now = () => performance.timeOrigin + performance.now();

/** PROCESSES children of bench/propagation-watchers.ts; `reached(r)` resolves with when the last watcher applied revision r. */
async function startWatchers(urls: string[]) {
  const workers = Array.from({ length: PROCESSES }, (_, w) => {
    const count = Math.floor(WATCHERS / PROCESSES) + (w < WATCHERS % PROCESSES ? 1 : 0);
    const first = w * Math.floor(WATCHERS / PROCESSES) + Math.min(w, WATCHERS % PROCESSES);
    const state = { ready: false, revision: 0, at: 0, wake: () => {} };
    let pending = "";
    const profile = process.env.BENCH_PROFILE === "1" ? ["--cpu-prof", "--cpu-prof-dir", join(RESULTS_DIR, "profiles", "propagation")] : [];
    const child = startChild(`watchers ${w}`, process.execPath, [...profile, "--import", "tsx", join(BENCH_DIR, "propagation-watchers.ts"), JSON.stringify({ urls, count, first })], {
      cwd: join(BENCH_DIR, ".."),
      onStdout: (chunk) => {
        pending += chunk;
        for (let i = pending.indexOf("\n"); i !== -1; i = pending.indexOf("\n")) {
          const msg = JSON.parse(pending.slice(0, i)) as { ready?: true; revision?: number; at?: number };
          pending = pending.slice(i + 1);
          if (msg.ready) state.ready = true;
          if (msg.revision !== undefined) Object.assign(state, { revision: msg.revision, at: msg.at });
          state.wake();
        }
      },
    });
    return { child, state };
  });
  for (const { child, state } of workers) await waitFor(child, "have its watchers ready", async () => state.ready || undefined, 300_000);
  const reached = async (revision: number): Promise<number> => {
    for (const { state } of workers) {
      while (state.revision < revision) await new Promise<void>((resolve) => (state.wake = resolve));
    }
    return Math.max(...workers.map((w) => w.state.at));
  };
  return { reached, pids: workers.map((w) => w.child.pid), stop: () => Promise.all(workers.map((w) => w.child.stop())) };
}

async function main(): Promise<void> {
  const cluster = await startNatsCluster({ nodes: 3 });
  try {
    const controlNc = await connect({ servers: cluster.urls, noAsyncTraces: true });
    const control = await startControl(controlNc, logger);
    const cli = await connect({ servers: cluster.urls, noAsyncTraces: true });
    const watchers = await startWatchers(cluster.urls);
    const latencies: number[] = [];
    const fromStart: number[] = [];
    // CPU the watchers and the servers spend on the rounds: what propagation costs whatever else runs on the machine.
    const natsPids = cluster.servers.map((s) => s.process.pid!);
    const cpuOf = async (pids: number[]) => (await Promise.all(pids.map(async (pid) => (await cpuSeconds(pid)) ?? NaN))).reduce((a, b) => a + b, 0);
    const cpuBefore = { watchers: await cpuOf(watchers.pids), nats: await cpuOf(natsPids) };
    for (let round = 0; round < ROUNDS; round++) {
      const document = { kind: "Route", service: "pricing", timeoutMs: 1000 + round };
      const startedAt = now();
      const { applied } = await controlRequest(cli, "apply", { documents: [document] });
      const returnedAt = now();
      const last = await watchers.reached(applied[0]!.revision);
      latencies.push(Math.max(0, last - returnedAt));
      fromStart.push(last - startedAt);
    }
    const cpuMsPerRound = {
      watchers: ((await cpuOf(watchers.pids)) - cpuBefore.watchers) * 1000 / ROUNDS,
      natsServers: ((await cpuOf(natsPids)) - cpuBefore.nats) * 1000 / ROUNDS,
    };
    await watchers.stop();
    await control.stop();
    await cli.close();
    await controlNc.close();
    const sorted = [...latencies].sort((a, b) => a - b);
    const sortedStart = [...fromStart].sort((a, b) => a - b);
    const result = {
      watchers: WATCHERS,
      watcher: "KvFollower + KvReader + checkStoredPolicy + compileRoute, one NATS connection each (not a whole sidecar)",
      processes: PROCESSES,
      nodes: 3,
      rounds: ROUNDS,
      afterApplyReturned: { p50Ms: percentile(sorted, 50), p99Ms: percentile(sorted, 99), maxMs: sorted.at(-1)! },
      fromApplyStart: { p50Ms: percentile(sortedStart, 50), p99Ms: percentile(sortedStart, 99), maxMs: sortedStart.at(-1)! },
      cpuMsPerRound,
      node: process.version,
      afterApplyReturnedByRound: latencies.map((ms) => Number(ms.toFixed(1))),
    };
    console.log(`\n${WATCHERS} watchers in ${PROCESSES} processes (the sidecar's Route follower on its own connection each)`);
    console.log(`| measured from | watchers | nodes | rounds | p50 ms | p99 ms | max ms |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |`);
    for (const [what, r] of [["apply returned", result.afterApplyReturned], ["apply sent", result.fromApplyStart]] as const) {
      console.log(`| ${what} | ${WATCHERS} | 3 | ${ROUNDS} | ${r.p50Ms.toFixed(1)} | ${r.p99Ms.toFixed(1)} | ${r.maxMs.toFixed(1)} |`);
    }
    console.log(`first apply after the watchers started (counted above): ${latencies[0]!.toFixed(1)} ms after it returned`);
    console.log(`CPU per round: watchers ${cpuMsPerRound.watchers.toFixed(1)} ms (${((cpuMsPerRound.watchers * 1000) / WATCHERS).toFixed(0)} µs per watcher), nats-servers ${cpuMsPerRound.natsServers.toFixed(1)} ms`);
    await mkdir(RESULTS_DIR, { recursive: true });
    const file = join(RESULTS_DIR, `propagation-${new Date().toISOString().replaceAll(":", "-")}.json`);
    await writeFile(file, `${JSON.stringify(result, null, 2)}\n`);
    console.log(`saved ${file}`);
  } finally {
    await cleanup();
    await cluster.stop();
  }
}

installSignalHandlers();
await main();
