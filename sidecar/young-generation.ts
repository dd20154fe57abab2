import { PerformanceObserver } from "node:perf_hooks";
import { getHeapSpaceStatistics, setFlagsFromString } from "node:v8";

/**
 * The semi-space size (MiB) up to which a `mesh sidecar` lets V8 grow its
 * young generation (two semi-spaces), instead of V8's 16 MiB: under load at
 * c=32 this took a caller's peak RSS from ~104 to ~82 MiB at no measurable
 * CPU per request (docs/architecture.md §16).
 */
export const SIDECAR_MAX_SEMI_SPACE_MIB = 4;

const MIB = 1024 * 1024;
/** V8's default --semi-space-growth-factor: each growth doubles the new space. */
const V8_GROWTH_FACTOR = 2;

/**
 * Holds V8's new space at `maxSemiSpaceMiB` per semi-space from now on;
 * returns what stops it. `--max-semi-space-size` works on node's command
 * line only (V8 sizes the heap before any code runs), but V8 reads
 * `--semi-space-growth-factor` each time it grows the new space, to
 * min(max, factor × current): after every GC (V8 may grow the new space at
 * a full GC as well as at a scavenge) the factor is set to 1 once the new
 * space reached the cap and back to 2 below it, as V8 shrinks the new space
 * when allocation slows down (docs/architecture.md §16).
 *
 * The bound: V8 grows by doubling from a power of two, so a power-of-two
 * cap is met exactly; another is passed by less than one doubling. The check
 * runs after the GC, on a later turn of the event loop, so one more growth
 * can happen before the factor flips, but V8 grows only once what survived
 * since the last growth exceeds the new space's capacity, so that is rare.
 */
export function capYoungGeneration(maxSemiSpaceMiB: number): () => void {
  const capBytes = 2 * maxSemiSpaceMiB * MIB; // space_size counts both semi-spaces
  let factor = V8_GROWTH_FACTOR;
  const check = (): void => {
    const wanted = newSpaceSize() >= capBytes ? 1 : V8_GROWTH_FACTOR;
    if (wanted === factor) return;
    factor = wanted;
    setFlagsFromString(`--semi-space-growth-factor=${factor}`);
  };
  // One check per batch of GC entries: the entries themselves are not read.
  const observer = new PerformanceObserver(check);
  observer.observe({ entryTypes: ["gc"] });
  check();
  return () => {
    observer.disconnect();
    if (factor !== V8_GROWTH_FACTOR) setFlagsFromString(`--semi-space-growth-factor=${V8_GROWTH_FACTOR}`);
    factor = V8_GROWTH_FACTOR;
  };
}

/** Both semi-spaces of V8's new space, in bytes. */
function newSpaceSize(): number {
  for (const space of getHeapSpaceStatistics()) {
    if (space.space_name === "new_space") return space.space_size;
  }
  return 0;
}
