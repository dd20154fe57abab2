// Part of `npm run build`, after tsc: bundles the compiled CLI (dist/cli/main.js
// and everything it imports, packages included) into dist/bundle/ with
// esbuild, split at the CLI's dynamic imports so a command loads only what it
// needs. One file per part instead of ~400 modules to resolve and read cuts
// a process's start-up by about half (docs/architecture.md §16). pino and
// pino-pretty stay outside (pino starts pino-pretty in a worker by file
// name), and so does yaml (loaded with require on first use).
import { build } from "esbuild";
import { rm } from "node:fs/promises";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../", import.meta.url));
const outdir = `${root}dist/bundle`;
await rm(outdir, { recursive: true, force: true });
await build({
  entryPoints: [`${root}dist/cli/main.js`],
  outdir,
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  outExtension: { ".js": ".mjs" },
  external: ["pino", "pino-pretty", "yaml"],
  // CommonJS packages inside an ES module bundle still call require() for Node's built-ins.
  banner: { js: "import { createRequire as __meshRequire } from 'node:module'; const require = __meshRequire(import.meta.url);" },
  logLevel: "warning",
});
