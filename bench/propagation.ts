// npm run bench:propagation — how fast a `mesh apply` reaches every sidecar.
//
// 60 policy watchers (the sidecar's own KvFollower, each on its own NATS
// connection, spread over a 3-node JetStream cluster) follow mesh_routes.
// Each round applies a new Route through control and measures the time from
// the apply returning to the last watcher having applied that revision.
// Env: PROPAGATION_WATCHERS (60), PROPAGATION_ROUNDS (50).
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import pino from "pino";
import { controlRequest } from "../cli/client.ts";
import { startNatsCluster } from "../local/nats-cluster.ts";
import { startControl } from "../control/service.ts";
import { POLICY_BUCKETS, validatePolicy, type RoutePolicy } from "../schemas/index.ts";
import { KvFollower, KvReader } from "../sidecar/index.ts";

const WATCHERS = Number(process.env.PROPAGATION_WATCHERS ?? 60);
const ROUNDS = Number(process.env.PROPAGATION_ROUNDS ?? 50);
const RESULTS_DIR = fileURLToPath(new URL("./results/", import.meta.url));
const logger = pino({ level: "warn" });

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function startWatchers(urls: string[]) {
  const applied: number[] = new Array(WATCHERS).fill(0);
  const appliedAt: number[] = new Array(WATCHERS).fill(0);
  const connections: NatsConnection[] = [];
  const watches: KvFollower<RoutePolicy>[] = [];
  for (let i = 0; i < WATCHERS; i++) {
    const nc = await connect({ servers: [urls[i % urls.length]!], noAsyncTraces: true });
    connections.push(nc);
    const watch = new KvFollower<RoutePolicy>({
      nc,
      reader: new KvReader(nc),
      logger,
      quiet: true,
      bucket: POLICY_BUCKETS.Route,
      key: ">",
      check: (doc) => {
        const r = validatePolicy(doc);
        return r.ok ? { ok: true, value: r.value as RoutePolicy } : { ok: false, problems: ["invalid"] };
      },
      onChange: (_key, policy) => {
        if (!policy) return;
        applied[i] = policy.revision;
        appliedAt[i] = performance.now();
      },
      onRejected: () => undefined,
    });
    await watch.start();
    watches.push(watch);
  }
  const stop = async () => {
    for (const w of watches) w.stop();
    await Promise.all(connections.map((nc) => nc.close()));
  };
  return { applied, appliedAt, stop };
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
    for (let round = 0; round < ROUNDS; round++) {
      const document = { kind: "Route", service: "pricing", timeoutMs: 1000 + round };
      const startedAt = performance.now();
      const { applied } = await controlRequest(cli, "apply", { documents: [document] });
      const returnedAt = performance.now();
      const revision = applied[0]!.revision;
      while (watchers.applied.some((r) => r < revision)) await new Promise((r) => setImmediate(r));
      const last = Math.max(...watchers.appliedAt);
      latencies.push(Math.max(0, last - returnedAt));
      fromStart.push(last - startedAt);
    }
    await watchers.stop();
    await control.stop();
    await cli.close();
    await controlNc.close();
    const sorted = [...latencies].sort((a, b) => a - b);
    const sortedStart = [...fromStart].sort((a, b) => a - b);
    const result = {
      watchers: WATCHERS,
      nodes: 3,
      rounds: ROUNDS,
      afterApplyReturned: { p50Ms: percentile(sorted, 50), p99Ms: percentile(sorted, 99), maxMs: sorted.at(-1)! },
      fromApplyStart: { p50Ms: percentile(sortedStart, 50), p99Ms: percentile(sortedStart, 99), maxMs: sortedStart.at(-1)! },
      node: process.version,
    };
    console.log(`\n| measured from | watchers | nodes | rounds | p50 ms | p99 ms | max ms |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |`);
    for (const [what, r] of [["apply returned", result.afterApplyReturned], ["apply sent", result.fromApplyStart]] as const) {
      console.log(`| ${what} | ${WATCHERS} | 3 | ${ROUNDS} | ${r.p50Ms.toFixed(1)} | ${r.p99Ms.toFixed(1)} | ${r.maxMs.toFixed(1)} |`);
    }
    await mkdir(RESULTS_DIR, { recursive: true });
    const file = join(RESULTS_DIR, `propagation-${new Date().toISOString().replaceAll(":", "-")}.json`);
    await writeFile(file, `${JSON.stringify(result, null, 2)}\n`);
    console.log(`saved ${file}`);
  } finally {
    await cluster.stop();
  }
}

await main();
