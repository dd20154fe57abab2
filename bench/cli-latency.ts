// npm run bench:cli — what a CLI call that talks to control costs, and where
// (docs/cli.md "Latency"). Starts one nats-server and one control, then:
//   - `mesh services` end to end, as a user runs it (wall time of the process);
//   - the same call timed by phase inside the process (bench/cli-phases.ts):
//     Node ready, the CLI's modules loaded, connected, control's first and a
//     second answer, closed;
//   - `mesh services` with NATS up but no control: the no-responders grace.
// Env: CLI_RUNS (10). MESH_BIN: another bin to time end to end (e.g. a build).
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import pino from "pino";
import { connect } from "@nats-io/transport-node";
import { startNatsCluster } from "../local/nats-cluster.ts";
import { ensureNatsServer } from "../local/nats-binary.ts";
import { startControl } from "../control/service.ts";

const RUNS = Number(process.env.CLI_RUNS ?? 10);
const MESH_BIN = process.env.MESH_BIN ?? fileURLToPath(new URL("../bin/mesh.js", import.meta.url));
const PHASES = fileURLToPath(new URL("./cli-phases.ts", import.meta.url));

function run(args: string[]): Promise<{ ms: number; stdout: string; code: number | null }> {
  const start = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
    let stdout = "";
    child.stdout.on("data", (c) => (stdout += c));
    child.on("error", reject);
    child.on("close", (code) => resolve({ ms: performance.now() - start, stdout, code }));
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (ms: number) => `${Math.round(ms)} ms`;

const cluster = await startNatsCluster({ nodes: 1, bin: await ensureNatsServer(), config: "generated" });
const nc = await connect({ servers: cluster.urls, noAsyncTraces: true });
const control = await startControl(nc, pino({ level: "silent" }));
try {
  const url = cluster.urls[0]!;
  const walls: number[] = [];
  for (let i = 0; i < RUNS; i++) walls.push((await run([MESH_BIN, "services", "--nats", url])).ms);
  const phases: Array<Record<string, number>> = [];
  for (let i = 0; i < RUNS; i++) phases.push(JSON.parse((await run(["--import", "tsx", PHASES, url])).stdout));
  const step = (from: string, to: string) => median(phases.map((p) => p[to]! - p[from]!));
  console.log(`mesh services, ${RUNS} runs, median (${MESH_BIN}):`);
  console.log(`  end to end (process start to exit)   ${fmt(median(walls))}   [min ${fmt(Math.min(...walls))}, max ${fmt(Math.max(...walls))}]`);
  console.log(`  node ready                           ${fmt(median(phases.map((p) => p.nodeReady!)))}`);
  console.log(`  loader + CLI modules loaded          ${fmt(step("nodeReady", "cliLoaded"))}`);
  console.log(`  connect to NATS                      ${fmt(step("cliLoaded", "connected"))}`);
  console.log(`  first control reply                  ${fmt(step("connected", "firstReply"))}`);
  console.log(`  second control reply                 ${fmt(step("firstReply", "secondReply"))}`);
  console.log(`  close                                ${fmt(step("secondReply", "closed"))}`);
  await control.stop();
  const down = await run([MESH_BIN, "services", "--nats", url]);
  console.log(`  no control running: exit ${down.code} after ${fmt(down.ms)} (the no-responders grace, control/client.ts)`);
} finally {
  await nc.close().catch(() => undefined);
  await cluster.stop();
}
