// `npm test`'s runner step: `tsx scripts/test-suite.ts COMMAND ARGS...` runs
// the test runner with every process of the run marked (RUN_ENV), then
// kills whatever is still marked and removes the run's temp dir, and exits
// with the runner's code. Each test file's reaper (test/helpers/reaper.ts)
// cleans up after its own file as soon as the file's process ends; this is
// the last sweep, and the one place that tells which files left processes
// behind.
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REAPER_ENV, RUN_ENV, killMarked, markedProcesses, type MarkedProcess } from "../test/helpers/orphans.ts";

/** How long the reapers of the last files get to finish before the sweep; they need a few ms. */
const REAPERS_GRACE_MS = 30_000;
const POLL_MS = 50;

const [command, ...args] = process.argv.slice(2);
if (!command) {
  console.error("usage: tsx scripts/test-suite.ts COMMAND [ARGS...]");
  process.exit(2);
}

const run = await mkdtemp(join(tmpdir(), "natsmesh-test-run-"));
const child = spawn(command, args, { stdio: "inherit", env: { ...process.env, [RUN_ENV]: run } });
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => child.kill(signal));
const code = await new Promise<number>((resolve) => {
  child.once("error", (err) => (console.error(`cannot run ${command}: ${err.message}`), resolve(1)));
  child.once("exit", (exitCode) => resolve(exitCode ?? 1));
});

// The last file's reaper may still be at work: let it finish and report.
const until = Date.now() + REAPERS_GRACE_MS;
while ((await markedProcesses(REAPER_ENV, run)).length > 0 && Date.now() < until) {
  await new Promise((resolve) => setTimeout(resolve, POLL_MS)); // why: a reaper is not our child; there is no exit to wait on
}
const reaped = await readFile(join(run, "reaped.jsonl"), "utf8").then(
  (text) => text.split("\n").filter(Boolean).map((line) => JSON.parse(line) as { file: string; killed: MarkedProcess[] }),
  () => [],
);
const left = await killMarked(RUN_ENV, run);
const list = (ps: MarkedProcess[]) => ps.map((p) => `\n  ${p.pid} ${p.command}`).join("");
for (const { file, killed } of reaped) console.error(`natsmesh test: ${file} left ${killed.length} process(es) running when it ended; killed:${list(killed)}`);
if (left.length > 0) console.error(`natsmesh test: ${left.length} process(es) of the run left running after the suite; killed:${list(left)}`);
await rm(run, { recursive: true, force: true, maxRetries: 5 });
process.exit(code);
