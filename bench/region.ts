// npm run bench:region — what crossing a gateway costs (docs/multi-region.md).
//
// A supercluster of two single-node clusters (east, west) on this machine. A
// caller sidecar in east calls, one request at a time (c=1), a service whose
// only instance is in east (local) and one whose only instance is in west
// (across the gateway). Both apps are the same in-process HTTP server. On one
// machine this measures the extra server hop a gateway adds, not WAN latency.
// Env: REGION_REQUESTS (1000 per scenario), REGION_WARMUP (100).
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { connect } from "@nats-io/transport-node";
import pino from "pino";
import { Registry } from "prom-client";
import { request } from "undici";
import { startSupercluster } from "../local/nats-supercluster.ts";
import { startControl } from "../control/service.ts";
import { parseSidecarConfig } from "../schemas/index.ts";
import { startSidecar, type Sidecar } from "../sidecar/index.ts";
import { percentile } from "./report.ts";

const REQUESTS = Number(process.env.REGION_REQUESTS ?? 1000);
const WARMUP = Number(process.env.REGION_WARMUP ?? 100);
const RESULTS_DIR = fileURLToPath(new URL("./results/", import.meta.url));
const logger = pino({ level: "warn" });

async function sidecar(service: string, nats: string[], app?: string): Promise<Sidecar> {
  const config = parseSidecarConfig({ service, nats, listen: "127.0.0.1:0", admin: "127.0.0.1:0", logLevel: "warn", ...(app ? { app } : {}) });
  return startSidecar(config, { logger, registry: new Registry() });
}

/** Latency in ms of one GET of `service` through the caller's sidecar. */
async function once(port: number, service: string): Promise<number> {
  const started = performance.now();
  const res = await request(`http://127.0.0.1:${port}/`, { headers: { host: service } });
  await res.body.text();
  if (res.statusCode !== 200) throw new Error(`${service} answered ${res.statusCode}`);
  return performance.now() - started;
}

/**
 * `n` sequential GETs of each service, alternating between them, so that
 * whatever else the machine does weighs on both alike.
 */
async function measure(port: number, services: readonly string[], n: number): Promise<number[][]> {
  const out = services.map(() => [] as number[]);
  for (let i = 0; i < n; i++) for (const [k, service] of services.entries()) out[k]!.push(await once(port, service));
  return out;
}

async function main(): Promise<void> {
  const sc = await startSupercluster({ clusters: 2 });
  const app = createServer((req, res) => req.resume().once("end", () => res.end("ok")));
  await new Promise<void>((resolve) => app.listen(0, "127.0.0.1", resolve));
  const appUrl = `http://127.0.0.1:${(app.address() as AddressInfo).port}`;
  const [east, west] = [sc.clusters[0]!.urls, sc.clusters[1]!.urls];
  const sidecars: Sidecar[] = [];
  try {
    const controlNc = await connect({ servers: east, noAsyncTraces: true });
    const control = await startControl(controlNc, logger, new Registry());
    sidecars.push(await sidecar("local-echo", east, appUrl), await sidecar("remote-echo", west, appUrl));
    const caller = await sidecar("bench", east);
    sidecars.push(caller);
    const scenarios = [["local (east -> east)", "local-echo"], ["cross-cluster (east -> west)", "remote-echo"]] as const;
    const services = scenarios.map(([, s]) => s);
    await measure(caller.outbound.port, services, WARMUP);
    const latencies = await measure(caller.outbound.port, services, REQUESTS);
    const rows = scenarios.map(([scenario], k) => {
      const sorted = latencies[k]!.sort((a, b) => a - b);
      return { scenario, p50Ms: percentile(sorted, 50), p99Ms: percentile(sorted, 99) };
    });
    console.log(`\n| scenario (c=1, ${REQUESTS} GETs) | median ms | p99 ms |\n| --- | ---: | ---: |`);
    for (const r of rows) console.log(`| ${r.scenario} | ${r.p50Ms.toFixed(3)} | ${r.p99Ms.toFixed(3)} |`);
    const result = { requests: REQUESTS, concurrency: 1, rows, extraHopMedianMs: rows[1]!.p50Ms - rows[0]!.p50Ms, node: process.version };
    console.log(`gateway hop adds ${result.extraHopMedianMs.toFixed(3)} ms at the median`);
    await mkdir(RESULTS_DIR, { recursive: true });
    const file = join(RESULTS_DIR, `region-${new Date().toISOString().replaceAll(":", "-")}.json`);
    await writeFile(file, `${JSON.stringify(result, null, 2)}\n`);
    console.log(`saved ${file}`);
    for (const s of sidecars) await s.drain();
    await control.stop();
    await controlNc.close();
  } finally {
    app.close();
    app.closeAllConnections();
    await sc.stop();
  }
}

await main();
