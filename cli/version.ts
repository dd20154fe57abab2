import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { packageFile } from "../runtime/index.ts";

/**
 * What `mesh version` and `mesh --version` print: natsmesh's own version,
 * the nats.js client it runs on, and Node (docs/cli.md).
 */
export interface Versions {
  mesh: string;
  natsJs: string;
  node: string;
}

export function versions(): Versions {
  const own = JSON.parse(readFileSync(packageFile("package.json"), "utf8")) as { version: string };
  const natsJs = createRequire(import.meta.url)("@nats-io/transport-node/package.json") as { version: string };
  return { mesh: own.version, natsJs: natsJs.version, node: process.versions.node };
}

export function formatVersions(v: Versions): string {
  return `mesh ${v.mesh} (nats.js ${v.natsJs}, node ${v.node})`;
}
