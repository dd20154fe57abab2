// Part of `npm run build`, after tsc: bundles the compiled CLI (dist/cli/main.js
// and everything it imports, packages included) into dist/bundle/ with
// esbuild, split at the CLI's dynamic imports so a command loads only what it
// needs. One file per part instead of ~400 modules to resolve and read cuts
// a process's start-up by about half (docs/architecture.md §16). pino-pretty
// stays outside (pino starts it in a worker thread by file name; pino is told
// where that worker's file is, runtime/lifecycle.ts), and so does yaml
// (loaded with require on first use).
//
// The files are then made Latin-1: V8 keeps a module's source in memory for
// as long as the process runs, one byte per character when every character
// is Latin-1 and two bytes otherwise, and the packages' comments carry a few
// typographic quotes and dashes (docs/architecture.md §16).
import { build, transform } from "esbuild";
import { readFile, rm, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../", import.meta.url));
const outdir = `${root}dist/bundle`;
await rm(outdir, { recursive: true, force: true });
const result = await build({
  entryPoints: [`${root}dist/cli/main.js`],
  outdir,
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  outExtension: { ".js": ".mjs" },
  external: ["pino-pretty", "yaml"],
  // CommonJS packages inside an ES module bundle still call require() for Node's built-ins.
  banner: { js: "import { createRequire as __meshRequire } from 'node:module'; const require = __meshRequire(import.meta.url);" },
  logLevel: "warning",
  // Output paths in the metafile are relative to this.
  absWorkingDir: root,
  metafile: true,
});

/** Characters beyond Latin-1, which make V8 hold a whole source two bytes per character. */
const WIDE = /[\u0100-\uffff]/g;
/** The code without comments or layout: equal for two texts that differ only in comments. */
const codeOf = async (js) => (await transform(js, { minifyWhitespace: true, legalComments: "none", format: "esm", target: "node20" })).code;

for (const file of Object.keys(result.metafile.outputs)) {
  const js = await readFile(`${root}${file}`, "utf8");
  const latin1 = js.replace(WIDE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
  if (latin1 === js) continue;
  // esbuild already escapes strings, identifiers and regular expressions; what is left should be comments.
  if ((await codeOf(js)) !== (await codeOf(latin1))) throw new Error(`${file}: characters beyond Latin-1 outside comments; escaping them would change the code`);
  await writeFile(`${root}${file}`, latin1);
}
