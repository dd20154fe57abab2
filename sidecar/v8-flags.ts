import { setFlagsFromString } from "node:v8";

/**
 * V8 settings of a `mesh sidecar` process, set as it starts; a sidecar
 * started in-process (tests, an embedder) leaves its host's V8 alone.
 *
 * WebAssembly is compiled by Liftoff only. undici parses the app's answers
 * with llhttp compiled to WebAssembly, and TurboFan compiling that module at
 * the first request to the app took ~36 MiB of malloc, of which ~10 MiB
 * often stayed resident; with Liftoff it takes ~2 MiB, and CPU per request
 * did not change beyond noise (docs/architecture.md §16).
 */
export function setSidecarV8Flags(): void {
  setFlagsFromString("--liftoff-only");
}
