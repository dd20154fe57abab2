// A long-running `mesh ...` process (sidecar, control, run) as a user starts
// it: its JSON log lines parsed as they come, its other output kept, and a
// wait for a log message that is a barrier, not a sleep. Killed when the
// test file ends.
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { onFileEnd } from "./cleanup.ts";

const MESH_BIN = fileURLToPath(new URL("../../bin/mesh.js", import.meta.url));

/** True while a process with this pid exists (signal 0 checks without sending anything). */
export function isAlive(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export interface MeshProcess {
  process: ChildProcess;
  /** every JSON log line so far (stdout) */
  logs: Array<Record<string, any>>;
  /** every line of stdout and stderr so far, as printed */
  lines: string[];
  /** resolves with the exit code (128+n for a signal, as a shell reports it) */
  exited: Promise<number>;
  /** the first log entry (past or future) for which `match` is true; rejects if the process exits first */
  logged(match: (entry: Record<string, any>) => boolean): Promise<Record<string, any>>;
  /** the first line of output (past or future) matching; rejects if the process exits first */
  printed(match: RegExp): Promise<string>;
}

const SIGNAL_NUMBERS: Record<string, number> = { SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };

export function spawnMesh(args: string[], opts: { env?: NodeJS.ProcessEnv; detached?: boolean } = {}): MeshProcess {
  const child = spawn(process.execPath, [MESH_BIN, ...args], {
    env: { ...process.env, ...opts.env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: opts.detached ?? false,
  });
  const logs: Array<Record<string, any>> = [];
  const lines: string[] = [];
  const waiters = new Set<() => void>();
  let closed = false;
  const exited = new Promise<number>((resolve) =>
    // "close": exited, and every line it printed has been read.
    child.once("close", (code, signal) => {
      closed = true;
      resolve(code ?? 128 + (SIGNAL_NUMBERS[signal ?? ""] ?? 0));
      for (const w of waiters) w();
    }),
  );
  const onLine = (line: string) => {
    lines.push(line);
    try {
      const entry = JSON.parse(line);
      if (entry && typeof entry === "object") logs.push(entry);
    } catch {
      /* not a log line */
    }
    for (const w of waiters) w();
  };
  createInterface({ input: child.stdout! }).on("line", onLine);
  createInterface({ input: child.stderr! }).on("line", onLine);
  onFileEnd(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGKILL");
    await exited;
  });
  const waitFor = <T>(find: () => T | undefined, what: string) =>
    new Promise<T>((resolve, reject) => {
      const check = () => {
        const found = find();
        if (found !== undefined) return waiters.delete(check), resolve(found);
        if (closed) {
          waiters.delete(check);
          reject(new Error(`mesh ${args[0]} exited before ${what}:\n${lines.join("\n")}`));
        }
      };
      waiters.add(check);
      check();
    });
  const logged = (match: (entry: Record<string, any>) => boolean) => waitFor(() => logs.find(match), "the awaited log line");
  const printed = (match: RegExp) => waitFor(() => lines.find((l) => match.test(l)), `a line matching ${match}`);
  return { process: child, logs, lines, exited, logged, printed };
}
