import { resolve } from "node:path";
import { MAX_NODES, UP_DEFAULTS, checkUpOptions, type UpOptions } from "../../local/up-plan.ts";
import { demoServices } from "../../services/manifest.ts";
import { UsageError, stringValue, type Parsed } from "../args.ts";
import type { Command } from "../command.ts";

async function runUp(p: Parsed): Promise<number> {
  const clusters = Number(stringValue(p, "clusters") ?? UP_DEFAULTS.clusters);
  const opts: UpOptions = {
    // A supercluster's clusters have one node each unless --nodes says otherwise.
    nodes: Number(stringValue(p, "nodes") ?? (clusters > 1 ? 1 : UP_DEFAULTS.nodes)),
    demo: p.values["no-demo"] !== true,
    dataDir: resolve(stringValue(p, "data") ?? UP_DEFAULTS.dataDir),
    basePort: Number(stringValue(p, "base-port") ?? UP_DEFAULTS.basePort),
    secure: p.values.secure === true,
    clusters,
    reset: p.values.reset === true,
  };
  const problem = checkUpOptions(opts, demoServices.length);
  if (problem) throw new UsageError(problem);
  // Loaded on use, as every heavy command is (docs/cli.md "Latency").
  const { up } = await import("../../local/index.ts");
  return up(opts);
}

export const UP_COMMAND: Command = {
  synopsis: `up [--nodes ${UP_DEFAULTS.nodes}] [--clusters 1] [--no-demo] [--data DIR] [--reset] [--base-port ${UP_DEFAULTS.basePort}] [--secure]`,
  summary: "the local mesh: NATS cluster, control, demo apps and sidecars; Ctrl-C stops it",
  details: [
    "Default ports: ingress 8080, demo apps 8081-8089, sidecar admin 8090-8099, control admin 8100,",
    "sidecar outbound 8101-8109, NATS clients 4222-4224, routes 6222-6224, monitoring 8222-8224.",
    "State stays in --data between runs: the example policies are applied only to an empty mesh;",
    "--reset wipes the data dir first (docs/run.md).",
  ].join("\n"),
  args: {
    flags: {
      nodes: { type: "string", env: "MESH_NODES", value: "N", help: `NATS nodes in the cluster, 1-${MAX_NODES}` },
      clusters: { type: "string", env: "MESH_CLUSTERS", value: "N", help: "2 or 3: a supercluster joined by gateways, --nodes each, the demo spread over it (docs/multi-region.md)" },
      "no-demo": { type: "boolean", env: "MESH_NO_DEMO", help: "only NATS, control and the ingress sidecar: no demo apps" },
      data: { type: "string", env: "MESH_DATA", value: "DIR", help: `JetStream stores (policy, history, access records), logs and pids.json, kept between runs (default ./${UP_DEFAULTS.dataDir})` },
      reset: { type: "boolean", help: "wipe --data first: start from the example policies again" },
      "base-port": { type: "string", env: "MESH_BASE_PORT", value: "N", help: "the ingress port; every other port moves with it" },
      secure: { type: "boolean", env: "MESH_SECURE", help: "NATS refuses clients without a key; each process gets its own (mesh creds into DIR/creds)" },
    },
  },
  run: runUp,
};
