import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * What `mesh version` and `mesh --version` print: natsmesh's own version,
 * the nats.js client it runs on, and Node (docs/cli.md).
 */
export interface Versions {
  mesh: string;
  natsJs: string;
  node: string;
}

/** The nearest package.json named `name` at or above this file (sources run from cli/, a build from dist/cli/). */
function ownPackage(name: string): { version: string } {
  let dir = dirname(fileURLToPath(import.meta.url));
  // A bound: the file system root is never more than a few dozen levels up.
  for (let depth = 0; depth < 64; depth++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { name?: string; version?: string };
      if (pkg.name === name && typeof pkg.version === "string") return { version: pkg.version };
    } catch {
      // no package.json here
    }
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return { version: "unknown" };
}

export function versions(): Versions {
  const natsJs = createRequire(import.meta.url)("@nats-io/transport-node/package.json") as { version: string };
  return { mesh: ownPackage("natsmesh").version, natsJs: natsJs.version, node: process.versions.node };
}

export function formatVersions(v: Versions): string {
  return `mesh ${v.mesh} (nats.js ${v.natsJs}, node ${v.node})`;
}
