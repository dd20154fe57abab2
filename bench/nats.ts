// One nats-server for the bench. Prefers the repo's launcher
// (control/nats-cluster.ts, the same one `mesh up` and the tests use); when
// that is missing or fails, spawns `nats-server` directly. Either way the
// server is stopped by procs.cleanup().
import { execFile } from "node:child_process";
import { connect } from "node:net";
import { promisify } from "node:util";
import { freePort, makeTempDir, onCleanup, startChild, waitFor } from "./procs.ts";

export interface BenchNats {
  url: string;
  pid: number | undefined;
  version: string;
  /** which way it was started, for the results file */
  launcher: "control/nats-cluster.ts" | "bench/nats.ts";
}

function natsBin(): string {
  return process.env.NATS_SERVER_BIN || "nats-server";
}

/** `nats-server: v2.9.10` -> `2.9.10` */
async function natsVersion(bin: string): Promise<string> {
  const { stdout } = await promisify(execFile)(bin, ["--version"]);
  return /v?(\d+\.\d+\.\d+\S*)/.exec(stdout)?.[1] ?? stdout.trim();
}

export async function startBenchNats(say: (line: string) => void): Promise<BenchNats> {
  const bin = natsBin();
  const version = await natsVersion(bin);
  try {
    // Imported lazily: control/ is developed alongside, and a broken launcher should not stop the bench.
    const { startNatsCluster } = await import("../local/nats-cluster.ts");
    const cluster = await startNatsCluster({ nodes: 1, bin });
    onCleanup(() => cluster.stop());
    return { url: cluster.urls[0]!, pid: cluster.servers[0]?.process.pid, version, launcher: "control/nats-cluster.ts" };
  } catch (err) {
    say(`control/nats-cluster.ts could not start a server (${(err as Error).message.split("\n")[0]}); starting nats-server directly`);
    return spawnOwn(bin, version);
  }
}

/** JetStream on, in a temp store dir, so sidecars that watch KV policy work here too. */
async function spawnOwn(bin: string, version: string): Promise<BenchNats> {
  const port = await freePort();
  const storeDir = await makeTempDir("natsmesh-bench-nats-");
  const child = startChild("nats-server", bin, ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", storeDir]);
  await waitFor(child, "accept connections", () => tcpOpen(port));
  return { url: `nats://127.0.0.1:${port}`, pid: child.pid, version, launcher: "bench/nats.ts" };
}

function tcpOpen(port: number): Promise<true | undefined> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(undefined));
  });
}
