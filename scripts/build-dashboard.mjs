// `npm run build:dashboard`: bundles the web dashboard (dashboard/src, with
// uPlot, Cytoscape.js and diff from node_modules) into dashboard/dist, the
// static files control serves under /dashboard/ (docs/dashboard.md). No CDN:
// everything the page loads comes from control.
import { build } from "esbuild";
import { copyFile, mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const root = fileURLToPath(new URL("../dashboard/", import.meta.url));
const dist = `${root}dist/`;
await mkdir(dist, { recursive: true });
await build({
  entryPoints: [`${root}src/main.ts`],
  bundle: true,
  minify: true,
  format: "esm",
  target: "es2022",
  outfile: `${dist}app.js`,
  legalComments: "linked",
  logLevel: "warning",
});
const uplotCss = await readFile(fileURLToPath(import.meta.resolve("uplot/dist/uPlot.min.css")), "utf8");
await writeFile(`${dist}app.css`, `${uplotCss}\n${await readFile(`${root}style.css`, "utf8")}`);
await copyFile(`${root}index.html`, `${dist}index.html`);

let raw = 0;
let gzip = 0;
for (const name of ["index.html", "app.js", "app.css"]) {
  const body = await readFile(`${dist}${name}`);
  raw += (await stat(`${dist}${name}`)).size;
  gzip += gzipSync(body).length;
}
console.log(`dashboard built in ${dist}: ${(raw / 1024).toFixed(1)} KiB, ${(gzip / 1024).toFixed(1)} KiB gzipped`);
