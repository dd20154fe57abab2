import { setFlagsFromString } from "node:v8";

/**
 * V8 settings of a `mesh sidecar` process, set as it starts; a sidecar
 * started in-process (tests, an embedder) leaves its host's V8 alone, and a
 * setting given on node's command line wins (docs/architecture.md §16).
 */
const SIDECAR_V8_FLAGS = [
  // undici parses the app's answers with llhttp compiled to WebAssembly; TurboFan compiling that
  // module at the first request to the app took ~36 MiB of malloc, ~10 MiB of which often stayed
  // resident. Liftoff takes ~2 MiB, and CPU per request did not change beyond noise.
  "--liftoff-only",
  // After a full GC the old generation may grow by 50% before the next one, instead of up to 4x:
  // under load a caller sidecar's peak RSS went from ~134 to ~104 MiB, CPU per request unchanged.
  "--heap-growing-percent=50",
] as const;

export function setSidecarV8Flags(execArgv: readonly string[] = process.execArgv): void {
  for (const flag of SIDECAR_V8_FLAGS) {
    const name = flag.split("=")[0]!;
    if (!execArgv.some((a) => a === name || a.startsWith(`${name}=`))) setFlagsFromString(flag);
  }
}
