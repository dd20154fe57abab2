import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { describe, test } from "node:test";
import { promisify } from "node:util";
import { SIDECAR_MAX_SEMI_SPACE_MIB } from "../sidecar/young-generation.ts";

const MIB = 1024 * 1024;

/** How the child starts: no cap, capYoungGeneration(MiB), or what `mesh sidecar` does. */
type Start = { cap: number } | "none" | "sidecar";

/**
 * Allocates with survivors in a node process of its own (the cap changes its
 * process's V8), the last 2000-4000 objects kept alive, which grows V8's new
 * space to 2 × 16 MiB; prints the largest new-space size seen before and
 * after it stops the cap at allocation `stopAfter` of 3 million. The loop
 * yields now and then, as a sidecar's event loop does, so GC observers run.
 */
const ALLOCATE = `
import { getHeapSpaceStatistics } from "node:v8";
import { capYoungGeneration } from ${JSON.stringify(new URL("../sidecar/young-generation.ts", import.meta.url).href)};
import { setSidecarV8Flags } from ${JSON.stringify(new URL("../sidecar/v8-flags.ts", import.meta.url).href)};
const [start, stopAfter] = JSON.parse(process.argv[1]);
const stop = start === "sidecar" ? setSidecarV8Flags() : start === "none" ? () => undefined : capYoungGeneration(start.cap);
const newSpace = () => getHeapSpaceStatistics().find((s) => s.space_name === "new_space").space_size;
const largest = [newSpace(), 0];
const kept = [];
for (let i = 0; i < 3_000_000; i++) {
  kept.push({ i, name: "item " + i, tags: [i] });
  if (kept.length > 4000) kept.splice(0, 2000);
  if (i === stopAfter) stop();
  if (i % 10_000 === 0) {
    const at = i < stopAfter ? 0 : 1;
    largest[at] = Math.max(largest[at], newSpace());
    await new Promise((resolve) => setImmediate(resolve));
  }
}
console.log(JSON.stringify({ before: largest[0], after: largest[1] }));
`;

/** The largest new space (both semi-spaces, bytes) before and after the cap is stopped (never, by default). */
async function largestNewSpace(start: Start, options: { stopAfter?: number; nodeOptions?: string } = {}): Promise<{ before: number; after: number }> {
  const args = ["--import", "tsx", "--input-type=module", "-e", ALLOCATE, JSON.stringify([start, options.stopAfter ?? Number.MAX_SAFE_INTEGER])];
  const env = { ...process.env, NODE_OPTIONS: [process.env.NODE_OPTIONS, options.nodeOptions].filter(Boolean).join(" ") };
  // The child exits by itself: the GC observer does not hold its event loop.
  const { stdout } = await promisify(execFile)(process.execPath, args, { env, timeout: 30_000 });
  return JSON.parse(stdout) as { before: number; after: number };
}

describe("young-generation cap", () => {
  test("without it, V8 grows the new space past 2 × 4 MiB under this load", async () => {
    const { before } = await largestNewSpace("none");
    assert.ok(before > 8 * MIB, `new space ${before / MIB} MiB`);
  });

  test("a cap of 2 MiB holds the new space at 2 × 2 MiB, one growth step past it at most", async () => {
    const { before } = await largestNewSpace({ cap: 2 });
    assert.ok(before <= 8 * MIB, `new space ${before / MIB} MiB`);
  });

  test("once stopped, V8 grows the new space again", async () => {
    const { before, after } = await largestNewSpace({ cap: 2 }, { stopAfter: 1_000_000 });
    assert.ok(before <= 8 * MIB, `new space while capped ${before / MIB} MiB`);
    assert.ok(after > 8 * MIB, `new space once stopped ${after / MIB} MiB`);
  });

  test("a `mesh sidecar` caps it at SIDECAR_MAX_SEMI_SPACE_MIB, unless NODE_OPTIONS sizes it", async () => {
    const capped = await largestNewSpace("sidecar");
    assert.ok(capped.before <= 2 * 2 * SIDECAR_MAX_SEMI_SPACE_MIB * MIB, `new space ${capped.before / MIB} MiB`);
    const chosen = await largestNewSpace("sidecar", { nodeOptions: "--max-semi-space-size=16" });
    assert.ok(chosen.before > 2 * 2 * SIDECAR_MAX_SEMI_SPACE_MIB * MIB, `new space with the operator's size ${chosen.before / MIB} MiB`);
  });
});
