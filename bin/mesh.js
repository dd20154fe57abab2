#!/usr/bin/env node
// The `mesh` command. It runs the compiled JavaScript in dist/ (built by
// `npm run build`, which `npm ci` runs through `prepare`); no TypeScript
// loader at run time. MESH_FROM_SOURCE=1 runs the TypeScript sources through
// tsx instead, for development without a rebuild (docs/architecture.md §16).
import { existsSync } from "node:fs";

const compiled = new URL("../dist/cli/main.js", import.meta.url);
let main;
if (process.env.MESH_FROM_SOURCE === "1") {
  const { register } = await import("tsx/esm/api");
  register();
  ({ main } = await import(new URL("../cli/main.ts", import.meta.url).href));
} else if (existsSync(compiled)) {
  ({ main } = await import(compiled.href));
} else {
  process.stderr.write("mesh: natsmesh is not built: run `npm run build` (npm ci does it), or set MESH_FROM_SOURCE=1\n");
  process.exit(1);
}
process.exitCode = await main(process.argv.slice(2));
