import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { after } from "node:test";
import { OWNER_ENV, REAPER_ENV, RUN_ENV } from "./orphans.ts";

/**
 * What the hooks below miss, because the runner killed this process: every
 * process this file starts carries this process's mark (OWNER_ENV) and its
 * temp files go to a dir of its own (TMPDIR), and a reaper outside this
 * process (./reaper.ts) kills what still carries the mark and removes the
 * dir once this process has ended, however it ended.
 */
function startReaper(): void {
  const run = process.env[RUN_ENV];
  const dir = mkdtempSync(run ? join(run, "file-") : join(tmpdir(), "natsmesh-test-"));
  const mark = `${process.pid}.${randomBytes(6).toString("hex")}`;
  const env: NodeJS.ProcessEnv = { ...process.env, [REAPER_ENV]: run ?? "" };
  delete env[OWNER_ENV];
  delete env[RUN_ENV];
  const reaper = spawn(
    process.execPath,
    ["--import", import.meta.resolve("tsx"), fileURLToPath(new URL("./reaper.ts", import.meta.url)), mark, dir, process.argv[1] ?? "", ...(run ? [join(run, "reaped.jsonl")] : [])],
    // Its own session: neither the runner's kill of this process nor a Ctrl-C reaches it. Its stdin is
    // the pipe whose end tells it this process has ended; nothing is ever written to it.
    { detached: true, stdio: ["pipe", "ignore", "ignore"], env },
  );
  reaper.on("error", (err) => console.error("the test reaper did not start:", err));
  reaper.unref();
  (reaper.stdin as unknown as { unref(): void }).unref();
  process.env[OWNER_ENV] = mark;
  process.env.TMPDIR = dir;
}

startReaper();

/**
 * Cleanup that runs when the test file ends, in reverse order of
 * registration (callers before providers before servers).
 *
 * The `after` hook is registered while this module loads, so it hangs off the
 * file's root test: an `after` called later from inside a `before` hook would
 * belong to that hook and run as soon as the hook returned.
 */
const tasks: Array<() => unknown> = [];

after(async () => {
  for (const task of tasks.reverse()) {
    try {
      await task();
    } catch (err) {
      console.error("cleanup failed:", err);
    }
  }
});

export function onFileEnd(task: () => unknown): void {
  tasks.push(task);
}

/** A new directory under the temp dir, removed when the test file ends. */
export async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  onFileEnd(() => rm(dir, { recursive: true, force: true }));
  return dir;
}
