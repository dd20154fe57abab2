// The reaper of one test file's process: started by test/helpers/cleanup.ts
// with its standard input a pipe from that process, in a session of its own
// (so neither the runner's kill nor a Ctrl-C reaches it). The pipe ends when
// the file's process ends, however it ends; then the reaper kills every
// process still carrying the file's mark and removes the file's temp dir.
//
//   node --import tsx reaper.ts MARK TMPDIR FILE [REPORT]
//
// REPORT, when given, is a file that gets one JSON line per file that left
// processes running, for `npm test` to print at the end.
import { appendFile, rm } from "node:fs/promises";
import { OWNER_ENV, killMarked } from "./orphans.ts";

const [mark, tmp, file, report] = process.argv.slice(2);

async function reap(): Promise<void> {
  const killed = await killMarked(OWNER_ENV, mark!);
  if (killed.length > 0 && report) {
    await appendFile(report, `${JSON.stringify({ file, killed })}\n`).catch(() => undefined);
  }
  await rm(tmp!, { recursive: true, force: true, maxRetries: 5 }).catch(() => undefined);
}

process.stdin.on("error", () => undefined);
process.stdin.once("close", () => void reap().finally(() => process.exit(0)));
process.stdin.resume();
