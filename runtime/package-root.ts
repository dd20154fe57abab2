import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * Where the package lives, whether this module runs compiled (from
 * `dist/runtime/`) or from source (`runtime/`, under tsx in tests and
 * benches). Files that are not code (nats.conf, the demo's Python apps and
 * policies) are always read from the package's source tree; compiled code
 * from `dist/` (docs/architecture.md §16).
 */
const here = dirname(fileURLToPath(import.meta.url));
export const COMPILED = basename(dirname(here)) === "dist";
export const PACKAGE_ROOT = COMPILED ? dirname(dirname(here)) : dirname(here);

/** A file of the package by its path from the package root, e.g. `nats.conf`. */
export const packageFile = (path: string): string => join(PACKAGE_ROOT, path);

/**
 * How to run one of the package's TypeScript programs (by its source path
 * from the root): compiled, plain node on its `dist/` file; from source,
 * node with tsx's loader.
 */
export function nodeProgram(sourcePath: string): string[] {
  if (COMPILED) return [packageFile(join("dist", sourcePath.replace(/\.ts$/, ".js")))];
  return ["--import", import.meta.resolve("tsx"), packageFile(sourcePath)];
}
