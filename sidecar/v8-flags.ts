import { setFlagsFromString } from "node:v8";
import { capYoungGeneration, SIDECAR_MAX_SEMI_SPACE_MIB } from "./young-generation.ts";

/**
 * V8 settings of a `mesh sidecar` process, set as it starts; a sidecar
 * started in-process (tests, an embedder) leaves its host's V8 alone, and a
 * setting given on node's command line (or NODE_OPTIONS) wins
 * (docs/architecture.md §16).
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

/** Flags that size the young generation: given any, the operator chose its size and the sidecar does not cap it. */
const YOUNG_GENERATION_FLAGS = ["--max-semi-space-size", "--min-semi-space-size", "--semi-space-growth-factor"] as const;

/** The flags of SIDECAR_V8_FLAGS that node's command line (`nodeArgs`) does not set already. */
export function sidecarV8Flags(nodeArgs: readonly string[]): string[] {
  return SIDECAR_V8_FLAGS.filter((flag) => !setsFlag(nodeArgs, flag.split("=")[0]!));
}

/** Whether the sidecar caps the young generation: unless node's command line (`nodeArgs`) sizes it. */
export function capsYoungGeneration(nodeArgs: readonly string[]): boolean {
  return !YOUNG_GENERATION_FLAGS.some((name) => setsFlag(nodeArgs, name));
}

/** Sets the flags and starts the young-generation cap, each unless node's command line has a say; returns what stops the cap. */
export function setSidecarV8Flags(): () => void {
  const nodeArgs = nodeCommandLine();
  for (const flag of sidecarV8Flags(nodeArgs)) setFlagsFromString(flag);
  return capsYoungGeneration(nodeArgs) ? capYoungGeneration(SIDECAR_MAX_SEMI_SPACE_MIB) : () => undefined;
}

/** node's options: `process.execArgv` does not hold those of NODE_OPTIONS. */
function nodeCommandLine(): string[] {
  return [...process.execArgv, ...(process.env.NODE_OPTIONS ?? "").split(/\s+/).filter(Boolean)];
}

/** Whether `name` (`--a-flag`) is among `nodeArgs` in any form V8 takes: `--a_flag`, `--a-flag=v`, `--no-a-flag`. */
function setsFlag(nodeArgs: readonly string[], name: string): boolean {
  return nodeArgs.some((arg) => {
    const given = arg.split("=")[0]!.replaceAll("_", "-");
    return given === name || given === `--no-${name.slice(2)}`;
  });
}
