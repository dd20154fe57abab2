// Processes a test leaves running, found by a mark in their environment.
//
// A test file's `after` hooks stop what it started, but they never run when
// the runner kills the file's process (a file that outlives --test-timeout):
// nats-servers (their own process groups), `mesh up` and its children, and
// sidecars spawned as processes would then hold ports and CPU for the rest of
// the run. So every process a test file starts carries OWNER_ENV=<mark> in
// its environment (children inherit it), and a reaper outside the file's
// process (test/helpers/reaper.ts) kills whatever still carries the mark once
// the file's process is gone. `npm test` (scripts/test-suite.ts) marks the
// whole run with RUN_ENV the same way, as a last sweep.
import { readdir, readFile } from "node:fs/promises";

/** Marks every process a test file starts (value: unique per file process). */
export const OWNER_ENV = "NATSMESH_TEST_OWNER";
/** Marks every process of one `npm test` run (value: the run's directory). */
export const RUN_ENV = "NATSMESH_TEST_RUN";
/** Marks the reapers of one `npm test` run (value: the run's directory), which carry no other mark. */
export const REAPER_ENV = "NATSMESH_TEST_REAPER";

export interface MarkedProcess {
  pid: number;
  /** its command line, for the report */
  command: string;
}

/** Live processes whose environment holds `name=value` (Linux /proc; none where there is no /proc). */
export async function markedProcesses(name: string, value: string): Promise<MarkedProcess[]> {
  const needle = `${name}=${value}`;
  const pids = await readdir("/proc").catch(() => [] as string[]);
  const found: MarkedProcess[] = [];
  for (const entry of pids) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      // A zombie's environment reads empty: a process that has exited is not found.
      const env = (await readFile(`/proc/${entry}/environ`, "latin1")).split("\0");
      if (!env.includes(needle)) continue;
      const command = (await readFile(`/proc/${entry}/cmdline`, "utf8")).split("\0").join(" ").trim();
      found.push({ pid: Number(entry), command: command.slice(0, 300) });
    } catch {
      // gone meanwhile, or another user's
    }
  }
  return found;
}

/**
 * SIGKILLs every process marked `name=value`, and looks again until a look
 * finds none it has not killed already (a supervisor may start a child while
 * it dies); at most `passes` looks. Returns what it killed.
 */
export async function killMarked(name: string, value: string, passes = 10): Promise<MarkedProcess[]> {
  const killed = new Map<number, MarkedProcess>();
  for (let pass = 0; pass < passes; pass++) {
    const found = await markedProcesses(name, value);
    const fresh = found.filter((p) => !killed.has(p.pid));
    for (const p of found) {
      try {
        process.kill(p.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    for (const p of fresh) killed.set(p.pid, p);
    if (fresh.length === 0) break;
  }
  return [...killed.values()];
}
