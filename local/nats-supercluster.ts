// A local supercluster: N NATS clusters joined by gateways, JetStream in
// every one, and optionally one leaf node (an edge site) connected to the
// first cluster. The configurations are the ones docs/multi-region.md
// documents; tests and `mesh up --clusters N` both start it from here.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureNatsServer } from "./nats-binary.ts";
import { freePorts, type NatsCluster, type NatsLaunchLog, type NatsNode, startNatsCluster, type StartNatsClusterOptions } from "./nats-cluster.ts";
import { HOST, monitor, type ServerNode, waitForMetaLeader } from "./nats-node.ts";
import { LEAF_IDENTITY, MESH_ACCOUNT, SYSTEM_ACCOUNT } from "./creds-permissions.ts";

export const MAX_CLUSTERS = 3;
/** Cluster names, in order: the region a sidecar reports is its server's cluster name. */
export const CLUSTER_NAMES = ["east", "west", "north"] as const;
export const LEAF_NAME = "edge";

export interface StartSuperclusterOptions {
  /** 2 or 3 */
  clusters: number;
  /** nodes per cluster; default 1 */
  nodes?: number;
  /** also start a leaf node connected to the first cluster */
  leaf?: boolean;
  /** parent of every node's dir; absent: a temp dir removed by stop() */
  dataDir?: string;
  bin?: string;
  log?: NatsLaunchLog;
  /** config files every server of the clusters includes (secure mode: the same accounts everywhere) */
  include?: string[];
  /**
   * Secure mode's leaf node (required with `leaf` and `include`): what it
   * includes instead (`leaf-auth.conf`) and the leaf link's password
   * (`leaf.secret`); it connects as user `leaf`, bound to the sidecars' account.
   */
  leafAuth?: { include: string[]; password: string };
  /** Appended to every server's config */
  extraConfig?: string;
  /** fixed client ports, cluster by cluster, node by node (then the leaf's); absent: server-chosen */
  clientPorts?: number[];
  /** well-known ports (mesh up): routes at client+2000, monitoring at client+4000, gateways at client+3000, leafnodes at client+3100 */
  wellKnown?: boolean;
  readyTimeoutMs?: number;
}

export interface RegionCluster extends NatsCluster {
  /** the cluster's name: its region */
  readonly name: string;
}

export interface Supercluster {
  readonly clusters: RegionCluster[];
  readonly leaf: RegionCluster | undefined;
  /** where the first cluster accepts leaf connections (`nats-leaf://host:port`, one per node), with `leaf` */
  readonly leafHubUrls: string[];
  /** every server, clusters first, then the leaf */
  readonly servers: NatsNode[];
  /** max_payload in bytes */
  readonly maxPayload: number;
  stop(): Promise<void>;
}

/**
 * nats-server refuses gateways together with leaf nodes without a system
 * account. One with no users changes nothing for clients (no auth is turned
 * on). Secure mode's auth.conf declares its own (local/creds-permissions.ts).
 */
export const SYSTEM_ACCOUNT_CONFIG = `accounts { ${SYSTEM_ACCOUNT}: {} }\nsystem_account: ${SYSTEM_ACCOUNT}`;

/**
 * The supercluster's JetStream domain. nats-server denies `$JS.API.>` across
 * a leaf connection unless told where it goes: the leaf maps its accounts'
 * JetStream API to this domain (`default_js_domain`), the hub maps
 * `$JS.natsmesh.API.>` back to its own. Not `mesh`: `$JS.mesh.API` is secure
 * mode's import of control's read API.
 */
export const JETSTREAM_DOMAIN = "natsmesh";
const LEAF_JETSTREAM_CONFIG = `default_js_domain: { $G: ${JETSTREAM_DOMAIN} }`;

export const GATEWAY_DISTANCE = 3000;
export const LEAF_DISTANCE = 3100;

/**
 * Starts the clusters together (a gateway only connects to a cluster that
 * listens) and resolves once the supercluster's JetStream meta group has a
 * leader that counts every server current, and the leaf is connected.
 */
export async function startSupercluster(opts: StartSuperclusterOptions): Promise<Supercluster> {
  if (!Number.isInteger(opts.clusters) || opts.clusters < 2 || opts.clusters > MAX_CLUSTERS) {
    throw new RangeError(`clusters must be 2 or 3, got ${opts.clusters}`);
  }
  const secure = Boolean(opts.include?.length);
  if (opts.leaf && secure && !opts.leafAuth) throw new RangeError("a leaf node in secure mode needs leafAuth: leaf-auth.conf and the leaf link's password (docs/multi-region.md)");
  const nodes = opts.nodes ?? 1;
  const total = opts.clusters * nodes;
  const bin = opts.bin ?? (await ensureNatsServer());
  const dataDir = opts.dataDir ?? (await mkdtemp(join(tmpdir(), "natsmesh-super-")));
  const clientPorts = opts.clientPorts ?? Array.from({ length: total + 1 }, () => -1);
  const wellKnown = (i: number, distance: number) => clientPorts[i]! + distance;
  const ids = Array.from({ length: total }, (_, i) => i);
  const gatewayPorts = opts.wellKnown ? ids.map((i) => wellKnown(i, GATEWAY_DISTANCE)) : await freePorts(total);
  const leafPorts = opts.wellKnown ? ids.slice(0, nodes).map((i) => wellKnown(i, LEAF_DISTANCE)) : await freePorts(nodes);
  const names = CLUSTER_NAMES.slice(0, opts.clusters);
  const perCluster = (c: number) => ids.slice(c * nodes, (c + 1) * nodes);
  const gateways = names.map((name, c) => ({ name, urls: perCluster(c).map((i) => `nats://${HOST}:${gatewayPorts[i]}`) }));
  const members: NatsNode[] = [];
  const common: Partial<StartNatsClusterOptions> = {
    bin,
    config: opts.wellKnown ? "repo" : "generated",
    ...(opts.log ? { log: opts.log } : {}),
    ...(opts.include ? { include: opts.include } : {}),
    // Only with a leaf, and not in secure mode: an `accounts` block here would replace the one of auth.conf.
    extraConfig: [opts.leaf && !secure ? SYSTEM_ACCOUNT_CONFIG : "", opts.extraConfig ?? ""].join("\n"),
    ...(opts.readyTimeoutMs ? { readyTimeoutMs: opts.readyTimeoutMs } : {}),
  };
  const started: RegionCluster[] = [];
  const stop = async () => {
    await Promise.all(started.map((c) => c.stop()));
    if (!opts.dataDir) await rm(dataDir, { recursive: true, force: true, maxRetries: 5 });
  };
  try {
    const results = await Promise.allSettled(
      names.map(async (name, c) => {
        const cluster = await startNatsCluster({
          ...common,
          nodes,
          clusterName: name,
          dataDir: join(dataDir, name),
          clientPorts: perCluster(c).map((i) => clientPorts[i]!),
          gateway: { ports: perCluster(c).map((i) => gatewayPorts[i]!), clusters: gateways },
          ...(c === 0 && opts.leaf ? { leafListenPorts: leafPorts } : {}),
          metaMembers: members,
          jetstreamDomain: JETSTREAM_DOMAIN,
        });
        const region = Object.assign(cluster, { name });
        started.push(region);
        return region;
      }),
    );
    const failed = results.find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
    const clusters = results.map((r) => (r as PromiseFulfilledResult<RegionCluster>).value);
    members.push(...clusters.flatMap((c) => c.servers));
    await waitForMetaLeader(members as ServerNode[], members as ServerNode[]);
    let leaf: RegionCluster | undefined;
    if (opts.leaf) {
      // Secure mode: the leaf holds the sidecars' users itself and binds their account to the hub's.
      const link = opts.leafAuth ? `${LEAF_IDENTITY}:${encodeURIComponent(opts.leafAuth.password)}@` : "";
      const cluster = await startNatsCluster({
        ...common,
        ...(opts.leafAuth ? { include: opts.leafAuth.include, leafRemoteAccount: MESH_ACCOUNT } : {}),
        nodes: 1,
        clusterName: LEAF_NAME,
        dataDir: join(dataDir, LEAF_NAME),
        jetstream: false,
        extraConfig: [common.extraConfig, LEAF_JETSTREAM_CONFIG].join("\n"),
        clientPorts: [clientPorts[total]!],
        leafRemotes: leafPorts.map((p) => `nats-leaf://${link}${HOST}:${p}`),
      });
      leaf = Object.assign(cluster, { name: LEAF_NAME });
      started.push(leaf);
      await waitForLeafConnection(clusters[0]!.servers[0] as ServerNode, leaf.servers[0] as ServerNode);
    }
    return {
      clusters,
      leaf,
      leafHubUrls: opts.leaf ? leafPorts.map((p) => `nats-leaf://${HOST}:${p}`) : [],
      servers: [...members, ...(leaf ? leaf.servers : [])],
      maxPayload: clusters[0]!.maxPayload,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** The leaf counts as connected once the hub lists it in /leafz. */
async function waitForLeafConnection(hub: ServerNode, leaf: ServerNode): Promise<void> {
  await leaf.poll("connect to its hub", async () => {
    const leafz = await monitor<{ leafnodes?: number }>(hub, "/leafz");
    return (leafz.leafnodes ?? 0) > 0 ? true : undefined;
  });
}
