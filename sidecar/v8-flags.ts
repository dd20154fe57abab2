import { setFlagsFromString } from "node:v8";

/**
 * V8 settings of a `mesh sidecar` process, set as it starts; a sidecar
 * started in-process (tests, an embedder) leaves its host's V8 alone, and a
 * setting given on node's command line wins (docs/architecture.md §16).
 */
export const SIDECAR_V8_FLAGS = [
  // undici parses the app's answers with llhttp compiled to WebAssembly; TurboFan compiling that
  // module at the first request to the app took ~36 MiB of malloc, ~10 MiB of which often stayed
  // resident. Liftoff takes ~2 MiB, and CPU per request did not change beyond noise.
  "--liftoff-only",
  // After a full GC the old generation may grow by 50% before the next one, instead of up to 4x:
  // under load a caller sidecar's peak RSS went from ~134 to ~104 MiB, CPU per request unchanged.
  "--heap-growing-percent=50",
] as const;

/** The flags of SIDECAR_V8_FLAGS that node's command line (`execArgv`) does not set already. */
export function sidecarV8Flags(execArgv: readonly string[]): string[] {
  return SIDECAR_V8_FLAGS.filter((flag) => {
    const name = flag.split("=")[0]!;
    return !execArgv.some((a) => a === name || a.startsWith(`${name}=`) || a === `--no-${name.slice(2)}`);
  });
}

export function setSidecarV8Flags(): void {
  for (const flag of sidecarV8Flags(process.execArgv)) setFlagsFromString(flag);
}
