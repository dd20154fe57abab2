// What `mesh up` starts and on which ports, as plain data: a pure function of
// the options, so the layout is documented in one place and testable without
// starting anything.
//
// Default layout (--base-port 8080); --base-port N moves every port by N-8080:
//
//   8080        ingress sidecar, outbound listener: where you send requests
//   8081-8089   demo apps, in manifest order (catalog, pricing v1, pricing v2, frontend)
//   8090        ingress sidecar admin (/metrics, /readyz, /healthz)
//   8091-8099   admin listeners of the demo apps' sidecars
//   8100        control service admin (/metrics, /readyz)
//   8101-8109   outbound listeners of the demo apps' sidecars ($MESH_OUTBOUND of each app)
//   4222-4224   NATS client ports (one per node)
//   6222-6224   NATS routes        (client + 2000, fixed by control/nats-cluster.ts)
//   8222-8224   NATS monitoring    (client + 4000, fixed by control/nats-cluster.ts)
//
// With --clusters N (docs/multi-region.md) the N*nodes NATS servers take the
// client ports in order, cluster by cluster, gateways at client + 3000
// (7222..), each cluster gets a control replica (8100, then 8111, 8112), and
// the demo's sidecars are spread over the clusters, each connected to its own.
import { join } from "node:path";
import type { DemoService } from "../services/manifest.ts";
import { GATEWAY_DISTANCE as NATS_GATEWAY_DISTANCE, MAX_CLUSTERS } from "./nats-supercluster.ts";

export const UP_DEFAULTS = {
  nodes: 3,
  /** relative to the working directory; gitignored in this repo */
  dataDir: ".mesh",
  /** the ingress port; every other port keeps its distance from it */
  basePort: 8080,
  /** 1: one cluster; 2 or 3: a supercluster joined by gateways */
  clusters: 1,
} as const;

/** Offsets from the base port. */
const APP_OFFSET = 1;
const INGRESS_ADMIN_OFFSET = 10;
const SIDECAR_ADMIN_OFFSET = 11;
const CONTROL_ADMIN_OFFSET = 20;
const SIDECAR_LISTEN_OFFSET = 21;
/** control replicas of the second and third cluster */
const EXTRA_CONTROL_OFFSET = 30;
const NATS_CLIENT_OFFSET = 4222 - UP_DEFAULTS.basePort;
const NATS_ROUTE_DISTANCE = 2000;
const NATS_MONITOR_DISTANCE = 4000;
/** Apps and sidecar admins each have a block of 9 ports. */
export const MAX_DEMO_APPS = 9;
export const MAX_NODES = 9;

export const HOST = "127.0.0.1";
export const INGRESS_SERVICE = "ingress";

export interface UpOptions {
  nodes: number;
  demo: boolean;
  dataDir: string;
  basePort: number;
  /** secure mode: `mesh creds` into `<dataDir>/creds`, NATS with its auth.conf, every process with its own key */
  secure?: boolean;
  /** clusters joined by gateways, `nodes` each; absent or 1: one cluster */
  clusters?: number;
  /** wipe dataDir first (policy, history, access records, logs, keys), so the example policies apply again */
  reset?: boolean;
}

export interface SidecarPlan {
  /** log and pid name, e.g. "catalog-v1.sidecar" */
  name: string;
  service: string;
  version: string;
  /** the app's port; undefined for the ingress, which only calls out */
  appPort: number | undefined;
  listenPort: number;
  adminPort: number;
  /** index of the NATS node listed first, so sidecars spread over the nodes */
  firstNode: number;
  /** the cluster it connects to (its region), with --clusters */
  cluster: number;
}

export interface AppPlan {
  /** log and pid name, e.g. "catalog-v1" */
  name: string;
  svc: DemoService;
  port: number;
  sidecar: SidecarPlan;
}

export interface UpPlan {
  /** the control service's admin listener */
  controlAdminPort: number;
  /** admin listeners of the control replicas of clusters 2 and 3 (--clusters) */
  extraControlAdminPorts: number[];
  clusters: number;
  /** NATS nodes per cluster */
  nodesPerCluster: number;
  natsGatewayPorts: number[];
  natsClientPorts: number[];
  natsRoutePorts: number[];
  natsMonitorPorts: number[];
  ingress: SidecarPlan;
  apps: AppPlan[];
}

export function planUp(opts: UpOptions, services: readonly DemoService[]): UpPlan {
  const base = opts.basePort;
  const clusters = opts.clusters ?? 1;
  const servers = opts.nodes * clusters;
  const natsClientPorts = Array.from({ length: servers }, (_, i) => base + NATS_CLIENT_OFFSET + i);
  const ingress: SidecarPlan = {
    name: `${INGRESS_SERVICE}.sidecar`,
    service: INGRESS_SERVICE,
    version: "v1",
    appPort: undefined,
    listenPort: base,
    adminPort: base + INGRESS_ADMIN_OFFSET,
    firstNode: 0,
    cluster: 0,
  };
  const apps = (opts.demo ? services : []).map((svc, i): AppPlan => {
    const name = `${svc.service}-${svc.version}`;
    const port = base + APP_OFFSET + i;
    const sidecar: SidecarPlan = {
      name: `${name}.sidecar`,
      service: svc.service,
      version: svc.version,
      appPort: port,
      listenPort: base + SIDECAR_LISTEN_OFFSET + i,
      adminPort: base + SIDECAR_ADMIN_OFFSET + i,
      firstNode: (i + 1) % opts.nodes,
      // Instances spread over the clusters: with 2, catalog and pricing v2 in the second.
      cluster: (i + 1) % clusters,
    };
    return { name, svc, port, sidecar };
  });
  return {
    controlAdminPort: base + CONTROL_ADMIN_OFFSET,
    extraControlAdminPorts: Array.from({ length: clusters - 1 }, (_, c) => base + EXTRA_CONTROL_OFFSET + c + 1),
    clusters,
    nodesPerCluster: opts.nodes,
    natsGatewayPorts: clusters > 1 ? natsClientPorts.map((p) => p + NATS_GATEWAY_DISTANCE) : [],
    natsClientPorts,
    natsRoutePorts: opts.nodes > 1 || clusters > 1 ? natsClientPorts.map((p) => p + NATS_ROUTE_DISTANCE) : [],
    natsMonitorPorts: natsClientPorts.map((p) => p + NATS_MONITOR_DISTANCE),
    ingress,
    apps,
  };
}

/** Every port the plan binds, with what binds it, for a clash check before anything starts. */
export function plannedPorts(plan: UpPlan): Array<{ port: number; what: string }> {
  const sidecars = [plan.ingress, ...plan.apps.map((a) => a.sidecar)];
  return [
    ...plan.natsClientPorts.map((port, i) => ({ port, what: `NATS n${i + 1} clients` })),
    ...plan.natsRoutePorts.map((port, i) => ({ port, what: `NATS n${i + 1} routes` })),
    ...plan.natsMonitorPorts.map((port, i) => ({ port, what: `NATS n${i + 1} monitoring` })),
    ...plan.natsGatewayPorts.map((port, i) => ({ port, what: `NATS n${i + 1} gateway` })),
    { port: plan.controlAdminPort, what: "control admin" },
    ...plan.extraControlAdminPorts.map((port, c) => ({ port, what: `control admin of cluster ${c + 2}` })),
    ...plan.apps.map((a) => ({ port: a.port, what: `app ${a.name}` })),
    ...sidecars.map((s) => ({ port: s.listenPort, what: `sidecar ${s.name} outbound` })),
    ...sidecars.map((s) => ({ port: s.adminPort, what: `sidecar ${s.name} admin` })),
  ];
}

/** Where `mesh up --secure` keeps the identities of the mesh (`mesh creds --out`). */
export function credsDirOf(opts: Pick<UpOptions, "dataDir">): string {
  return join(opts.dataDir, "creds");
}

/** Every service that needs an identity in secure mode: the ingress and each demo service. */
export function meshIdentities(plan: UpPlan): string[] {
  return [...new Set([plan.ingress.service, ...plan.apps.map((a) => a.sidecar.service)])];
}

/**
 * The NATS URLs a sidecar is given, starting at its own node so sidecars
 * spread over the cluster; with --clusters, only its own cluster's (`nodes`
 * per cluster), so that its region stays put across reconnects.
 */
export function natsUrlsFor(sidecar: SidecarPlan, allUrls: readonly string[], nodes = allUrls.length): string[] {
  const urls = allUrls.slice(sidecar.cluster * nodes, sidecar.cluster * nodes + nodes);
  const first = sidecar.firstNode % urls.length;
  return [...urls.slice(first), ...urls.slice(0, first)];
}

/** The option checks parseArgs cannot do; returns a one-line problem or undefined. */
export function checkUpOptions(opts: UpOptions, demoApps: number): string | undefined {
  if (!Number.isInteger(opts.nodes) || opts.nodes < 1 || opts.nodes > MAX_NODES) {
    return `--nodes must be an integer from 1 to ${MAX_NODES}, got '${opts.nodes}'`;
  }
  const clusters = opts.clusters ?? 1;
  if (!Number.isInteger(clusters) || clusters < 1 || clusters > MAX_CLUSTERS) {
    return `--clusters must be 1, 2 or 3, got '${opts.clusters}'`;
  }
  if (clusters > 1 && opts.nodes * clusters > MAX_NODES) {
    return `--clusters ${clusters} with --nodes ${opts.nodes} makes ${opts.nodes * clusters} NATS servers; at most ${MAX_NODES}`;
  }
  const lowest = opts.basePort + NATS_CLIENT_OFFSET;
  const highest = opts.basePort + NATS_CLIENT_OFFSET + NATS_MONITOR_DISTANCE + opts.nodes * clusters - 1;
  if (!Number.isInteger(opts.basePort) || lowest < 1 || highest > 65535) {
    const min = 1 - NATS_CLIENT_OFFSET;
    const max = 65535 - NATS_CLIENT_OFFSET - NATS_MONITOR_DISTANCE - opts.nodes * clusters + 1;
    return `--base-port must be an integer from ${min} to ${max}, got '${opts.basePort}'`;
  }
  if (opts.demo && demoApps > MAX_DEMO_APPS) return `mesh up lays out at most ${MAX_DEMO_APPS} demo apps, the manifest has ${demoApps}`;
  return undefined;
}
