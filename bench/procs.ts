// Child processes and temp dirs of one bench run. Everything started here is
// registered, so a failure, Ctrl-C or SIGTERM still leaves nothing behind:
// cleanup() stops children gracefully (so --cpu-prof can write its profile)
// and a synchronous 'exit' hook SIGKILLs whatever is still alive.
import { type ChildProcess, execFile, spawn, type SpawnOptions } from "node:child_process";
import { rmSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { LoadResult, LoadSpec } from "./load.ts";

/** How long a child may take to exit after SIGTERM before it gets SIGKILL. */
const STOP_GRACE_MS = 10_000;
const OUTPUT_TAIL_CHARS = 4_000;
const POLL_MS = 50;

export interface Child {
  readonly name: string;
  readonly process: ChildProcess;
  readonly pid: number;
  /** the last few KiB of stdout+stderr, for error messages and the end-of-run report */
  output(): string;
  /** resolves when the process has exited */
  readonly exited: Promise<void>;
  /** SIGTERM, then SIGKILL after STOP_GRACE_MS; resolves once it has exited */
  stop(): Promise<void>;
}

const children = new Set<Child>();
const tempDirs = new Set<string>();
const cleanups: Array<() => Promise<void>> = [];

function alive(cp: ChildProcess): boolean {
  return cp.exitCode === null && cp.signalCode === null;
}

/** Spawns a registered child; stdout/stderr are kept in a small tail buffer unless `onStdout` takes stdout. `env` adds to the bench's environment. */
export function startChild(name: string, cmd: string, args: string[], opts: { cwd?: string; env?: Record<string, string>; onStdout?: (chunk: string) => void } = {}): Child {
  const { onStdout, cwd, env } = opts;
  const spawnOpts: SpawnOptions = { stdio: ["ignore", "pipe", "pipe"], ...(cwd ? { cwd } : {}), ...(env ? { env: { ...process.env, ...env } } : {}) };
  const cp = spawn(cmd, args, spawnOpts);
  if (cp.pid === undefined) throw new Error(`could not start ${name} (${cmd})`);
  let tail = "";
  const keep = (chunk: Buffer) => {
    tail = (tail + chunk.toString("utf8")).slice(-OUTPUT_TAIL_CHARS);
  };
  cp.stdout!.on("data", onStdout ? (c: Buffer) => onStdout(c.toString("utf8")) : keep);
  cp.stderr!.on("data", keep);
  const exited = new Promise<void>((resolve) => cp.once("close", () => resolve()));
  const child: Child = {
    name,
    process: cp,
    pid: cp.pid,
    output: () => tail,
    exited,
    async stop() {
      if (alive(cp)) {
        cp.kill("SIGTERM");
        const timer = setTimeout(() => alive(cp) && cp.kill("SIGKILL"), STOP_GRACE_MS);
        await exited;
        clearTimeout(timer);
      }
      children.delete(child);
    },
  };
  children.add(child);
  void exited.then(() => children.delete(child));
  return child;
}

export async function makeTempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

/** Registers extra teardown work (e.g. a NATS launcher's stop()); run in reverse order by cleanup(). */
export function onCleanup(fn: () => Promise<void>): void {
  cleanups.push(fn);
}

/** Stops every child (in parallel), runs registered teardowns, removes temp dirs. Safe to call twice. */
export async function cleanup(): Promise<void> {
  await Promise.all([...children].map((c) => c.stop()));
  for (const fn of cleanups.splice(0).reverse()) await fn().catch((err: Error) => console.error(`cleanup: ${err.message}`));
  await Promise.all([...tempDirs].map((d) => rm(d, { recursive: true, force: true })));
  tempDirs.clear();
}

let interrupted = false;
/** True once Ctrl-C or SIGTERM arrived: failures after that are the shutdown, not news. */
export function wasInterrupted(): boolean {
  return interrupted;
}

/** Ctrl-C / SIGTERM: clean up, then exit 130. A second signal kills at once (the 'exit' hook below). */
export function installSignalHandlers(): void {
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) process.exit(130);
    interrupted = true;
    console.error(`\nbench: ${signal}, stopping every process it started...`);
    void cleanup().finally(() => process.exit(130));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  // Last resort when the orchestrator exits without cleanup(): nothing async runs here.
  process.on("exit", () => {
    for (const c of children) if (alive(c.process)) c.process.kill("SIGKILL");
    for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  });
}

/** A port free right now; the OS could hand it out again before use, which is acceptable for a bench. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** Polls `probe` until it yields a value; fails early with the child's output if it dies. */
export async function waitFor<T>(child: Child, what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!alive(child.process)) throw new Error(`${child.name} exited before it would ${what}:\n${child.output()}`);
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${child.name} did not ${what} within ${timeoutMs} ms:\n${child.output()}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** Resident set size in MiB from /proc/<pid>/status (VmRSS is in kB); undefined once the process is gone. */
export async function rssMiB(pid: number): Promise<number | undefined> {
  try {
    const status = await readFile(`/proc/${pid}/status`, "utf8");
    const kb = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1];
    return kb === undefined ? undefined : Number(kb) / 1024;
  } catch {
    return undefined;
  }
}

let clockTicksPerSecond: number | undefined;
/** CPU time (user + system, s) a process has used so far; undefined once it is gone. */
export async function cpuSeconds(pid: number): Promise<number | undefined> {
  clockTicksPerSecond ??= await new Promise<number>((resolve) =>
    execFile("getconf", ["CLK_TCK"], (err, out) => resolve(err ? 100 : Number(out.trim()) || 100)),
  );
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    // The command name may contain spaces; fields after its closing paren start at field 3 (state).
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / clockTicksPerSecond; // utime, stime
  } catch {
    return undefined;
  }
}

/**
 * Runs bench/load.ts with `spec` to its end and returns its result.
 * `window` hears when its measured window opens ("start") and closes
 * ("end"): the generator announces both on stdout, one JSON object a line.
 */
export async function runLoadGenerator(name: string, spec: LoadSpec, window: (edge: "start" | "end") => void): Promise<{ child: Child; result: LoadResult }> {
  let pending = "";
  let result: LoadResult | undefined;
  const child = startChild(name, process.execPath, ["--import", "tsx", fileURLToPath(new URL("./load.ts", import.meta.url)), JSON.stringify(spec)], {
    cwd: fileURLToPath(new URL("..", import.meta.url)),
    onStdout: (chunk) => {
      pending += chunk;
      for (let i = pending.indexOf("\n"); i !== -1; i = pending.indexOf("\n")) {
        const msg = JSON.parse(pending.slice(0, i)) as { phase?: string } & LoadResult;
        pending = pending.slice(i + 1);
        if (msg.phase === "measure") window("start");
        else {
          window("end");
          result = msg;
        }
      }
    },
  });
  await child.exited;
  if (!result) throw new Error(`${name} gave no result (exit ${child.process.exitCode}):\n${child.output()}`);
  return { child, result };
}
