// `mesh up` as its own process tree for tests: started on a free base port in
// a temp data dir, ready when it prints its banner, and killed (process group
// and every pid in pids.json) when the test file ends, however it ends.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { planUp, UP_DEFAULTS, type UpPlan } from "../../local/up-plan.ts";
import { demoServices } from "../../services/manifest.ts";
import { onFileEnd } from "./cleanup.ts";
import { freeBasePort } from "./mesh.ts";

const MESH_BIN = fileURLToPath(new URL("../../bin/mesh.js", import.meta.url));

export interface RunningMeshUp {
  child: ChildProcess;
  basePort: number;
  plan: UpPlan;
  natsUrls: string[];
  /** stdout and stderr lines so far */
  lines: string[];
}

/** Kills mesh up's process group and every process pids.json names (NATS nodes run in groups of their own). */
async function kill(child: ChildProcess, dataDir: string): Promise<void> {
  const exited = child.exitCode === null && child.signalCode === null ? new Promise((r) => child.once("exit", r)) : undefined;
  try {
    process.kill(-child.pid!, "SIGKILL");
  } catch {
    // gone already
  }
  const pids = await readFile(join(dataDir, "pids.json"), "utf8").then((t) => Object.values((JSON.parse(t) as { processes: Record<string, number> }).processes), () => []);
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone already
    }
  }
  await exited;
}

/** Starts `mesh up` (default nodes, the demo) and resolves once it is ready; rejects with its output if it exits first or is not ready within `readyTimeoutMs`. */
export async function startMeshUp(opts: { nodes?: number; readyTimeoutMs?: number } = {}): Promise<RunningMeshUp> {
  const nodes = opts.nodes ?? UP_DEFAULTS.nodes;
  const basePort = await freeBasePort(nodes);
  const root = await mkdtemp(join(tmpdir(), "natsmesh-up-"));
  const dataDir = join(root, "data");
  // Its own process group, so cleanup can kill the whole tree at once.
  const child = spawn(process.execPath, [MESH_BIN, "up", "--nodes", String(nodes), "--base-port", String(basePort), "--data", dataDir], {
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  onFileEnd(async () => {
    await kill(child, dataDir);
    await rm(root, { recursive: true, force: true, maxRetries: 5 });
  });
  const lines: string[] = [];
  await new Promise<void>((resolve, reject) => {
    // A bound on a wait for a banner that must come, to fail with mesh up's output instead of at the file's timeout.
    const timer = setTimeout(() => reject(new Error(`mesh up not ready within ${opts.readyTimeoutMs ?? 90_000} ms\n${lines.join("\n")}`)), opts.readyTimeoutMs ?? 90_000); // why: see above
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on("line", (line) => {
        lines.push(line);
        if (/natsmesh is ready/.test(line)) clearTimeout(timer), resolve();
      });
    }
    child.once("exit", (code) => (clearTimeout(timer), reject(new Error(`mesh up exited (${code}) before it was ready\n${lines.join("\n")}`))));
  });
  const plan = planUp({ nodes, demo: true, dataDir, basePort }, demoServices);
  return { child, basePort, plan, natsUrls: plan.natsClientPorts.map((p) => `nats://127.0.0.1:${p}`), lines };
}
