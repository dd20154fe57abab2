// Starts real nats-server processes: the 3-node cluster of `mesh up` (from the
// repo's nats.conf) and the throwaway servers of the test suite (generated
// configs in a temp dir). Every process started here is killed when this
// process exits, however it exits.
import type { ChildProcess } from "node:child_process";
import { rmSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { type AddressInfo, createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { ensureNatsServer } from "./nats-binary.ts";
import {
  DEFAULT_MAX_PAYLOAD,
  DEFAULT_READY_TIMEOUT_MS,
  CLUSTER_NAME,
  HOST,
  REPO_CLIENT_BASE,
  ServerNode,
  monitor,
  waitForMetaLeader,
  type Plan,
} from "./nats-node.ts";

/** A function taking a line, or a pino-like logger. */
export type NatsLaunchLog = ((line: string) => void) | { info(msg: string): void };

export interface StartNatsClusterOptions {
  /** 1 = a single server (no cluster block); 2+ = JetStream cluster `natsmesh`. */
  nodes: number;
  /** Parent of the per-node dirs (store, log, config). Absent: a temp dir removed by stop(). */
  dataDir?: string;
  /** nats-server binary. Absent: ensureNatsServer(). */
  bin?: string;
  /** 'repo': the repo's nats.conf with per-node env vars (`mesh up`); 'generated' (default): tests. */
  config?: "repo" | "generated";
  log?: NatsLaunchLog;
  /** Appended to each node's config; later keys win, so it may override anything above. */
  extraConfig?: string;
  /**
   * Config files each node includes (e.g. the auth.conf of `mesh creds`).
   * nats-server 2.9 resolves an include relative to the including file, even
   * an absolute path, so each is written relative to the node's config.
   */
  include?: string[];
  /** Added inside each node's `cluster {}` block of generated configs, e.g. `tls { ... }` for routes. */
  clusterConfig?: string;
  /** Fixed client ports. Absent: 4222.. in repo mode, server-chosen (-1) when generated. */
  clientPorts?: number[];
  /** Enable JetStream. Default true. */
  jetstream?: boolean;
  /** max_payload in bytes for generated configs. Default 8 MiB, like nats.conf. */
  maxPayload?: number;
  /** How long each node (and the JetStream meta leader election) may take. Default 20000. */
  readyTimeoutMs?: number;
  /** The cluster's name; giving one makes even a single node clustered (a route to itself). Default `natsmesh`. */
  clusterName?: string;
  /** Joins a supercluster (docs/multi-region.md): this cluster's gateway port per node and every cluster's gateway URLs. */
  gateway?: { ports: number[]; clusters: { name: string; urls: string[] }[] };
  /** Accept leaf node connections on these ports, one per node. */
  leafListenPorts?: number[];
  /** The JetStream domain of a supercluster (docs/multi-region.md: what lets a leaf node use it). */
  jetstreamDomain?: string;
  /** Be a leaf node of these hub URLs (`nats-leaf://...`). */
  leafRemotes?: string[];
  /** The local account the leaf connection binds (secure mode: the sidecars'); absent: the global account. */
  leafRemoteAccount?: string;
  /**
   * The JetStream meta group's members, when it spans more than this cluster
   * (a supercluster fills the array once every cluster started). Set: start()
   * does not wait for a meta leader; the supercluster does.
   */
  metaMembers?: NatsNode[];
}

export interface NatsNode {
  readonly name: string;
  /** nats://127.0.0.1:PORT */
  readonly url: string;
  readonly clientPort: number;
  /** Route port; undefined for a single unclustered server. */
  readonly clusterPort: number | undefined;
  readonly monitorPort: number;
  /** The current process; replaced by restart(). */
  readonly process: ChildProcess;
  readonly storeDir: string;
  /** The node's stdout and stderr, appended across restarts. */
  readonly logFile: string;
  /** Signals the node (default SIGTERM) and waits for it to exit; SIGKILL after 10 s. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Kills the node if running, starts it again on the same ports and store, waits until it is back. */
  restart(): Promise<void>;
}

export interface NatsCluster {
  readonly urls: string[];
  readonly servers: NatsNode[];
  /** max_payload in bytes, as reported by the server. */
  readonly maxPayload: number;
  readonly dataDir: string;
  /** Kills every node and waits; removes dataDir if it was a temp dir made here. */
  stop(): Promise<void>;
}

/** Clusters whose processes must not outlive this process. */
const live = new Set<Cluster>();

class Cluster implements NatsCluster {
  maxPayload = 0;
  constructor(
    readonly servers: ServerNode[],
    readonly dataDir: string,
    private readonly ownsDir: boolean,
  ) {}

  get urls(): string[] {
    return this.servers.map((s) => s.url);
  }

  async stop(): Promise<void> {
    await Promise.all(this.servers.map((s) => s.kill()));
    if (this.ownsDir) await rm(this.dataDir, { recursive: true, force: true, maxRetries: 5 });
    live.delete(this);
  }

  /**
   * For process 'exit', where nothing asynchronous runs any more. Temp data
   * is worthless, so SIGKILL and delete; a user's data dir (mesh up) gets
   * SIGTERM so each server still shuts down cleanly after we are gone.
   */
  stopSync(): void {
    for (const s of this.servers) s.signalSync(this.ownsDir ? "SIGKILL" : "SIGTERM");
    try {
      if (this.ownsDir) rmSync(this.dataDir, { recursive: true, force: true, maxRetries: 5 });
    } catch {
      // a dying server may still be writing; a stray temp dir is no reason to fail exit
    }
  }
}

/** Stops every cluster started by this process. */
export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((c) => c.stop()));
}

let hooksInstalled = false;

/**
 * Child processes survive their parent unless killed, so kill them on 'exit'.
 * A signal without a listener ends Node without 'exit'; when nobody else
 * handles it, kill the children and re-raise it for the default behaviour.
 * When somebody else handles it (mesh up's Ctrl-C), they exit and 'exit' fires.
 */
function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.once("exit", () => live.forEach((c) => c.stopSync()));
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    const onSignal = (): void => {
      if (process.listenerCount(signal) > 1) return;
      live.forEach((c) => c.stopSync());
      process.removeListener(signal, onSignal);
      process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}

/**
 * Starts `nodes` nats-servers and resolves once every one accepts clients
 * and, with JetStream in a cluster, the meta group has a leader that counts
 * every node current. On failure every process started is killed first.
 */
export async function startNatsCluster(opts: StartNatsClusterOptions): Promise<NatsCluster> {
  if (!Number.isInteger(opts.nodes) || opts.nodes < 1) {
    throw new RangeError(`nodes must be a positive integer, got ${opts.nodes}`);
  }
  if (opts.clientPorts && opts.clientPorts.length !== opts.nodes) {
    throw new RangeError(`clientPorts has ${opts.clientPorts.length} ports for ${opts.nodes} nodes`);
  }
  const say = toLineLogger(opts.log);
  const bin = opts.bin ?? (await ensureNatsServer(say));
  const dataDir = opts.dataDir ?? (await mkdtemp(join(tmpdir(), "natsmesh-nats-")));
  await mkdir(dataDir, { recursive: true });
  const cluster = new Cluster([], dataDir, !opts.dataDir);
  live.add(cluster);
  installExitHooks();
  try {
    await launchWithRetry(cluster, bin, opts, say);
    return cluster;
  } catch (err) {
    await cluster.stop();
    throw err;
  }
}

type Say = (line: string) => void;

/** Pre-picked route ports may be taken before the server binds them; then pick again. */
async function launchWithRetry(cluster: Cluster, bin: string, opts: StartNatsClusterOptions, say: Say): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await launch(cluster, bin, opts, say);
    } catch (err) {
      await Promise.all(cluster.servers.map((s) => s.kill()));
      const clash = err instanceof Error && err.message.includes("address already in use");
      if (!clash || attempt === 3 || opts.config === "repo" || opts.clientPorts) throw err;
      say("nats-server port taken by another process, retrying with new ports");
      await Promise.all(cluster.servers.map((s) => rm(s.dir, { recursive: true, force: true })));
      cluster.servers.length = 0;
    }
  }
}

async function launch(cluster: Cluster, bin: string, opts: StartNatsClusterOptions, say: Say): Promise<void> {
  const count = opts.nodes;
  const clustered = count > 1 || opts.clusterName !== undefined;
  // mesh up uses well-known ports; tests let the server pick (-1), except for
  // routes, which every node must know before any starts (2.9 refuses a
  // clustered JetStream node without routes).
  const wellKnown = opts.config === "repo";
  const clientPorts = opts.clientPorts ?? range(count).map((i) => (wellKnown ? REPO_CLIENT_BASE + i : -1));
  const clusterPorts = !clustered ? [] : wellKnown ? clientPorts.map((p) => p + 2000) : await freePorts(count);
  if (wellKnown && !clustered) say("nats.conf describes a cluster; running the single node from a generated config");
  const plan: Plan = {
    bin,
    // nats.conf describes one cluster; superclusters and leaves get generated configs.
    mode: opts.config === "repo" && clustered && !opts.clusterName ? "repo" : "generated",
    jetstream: opts.jetstream ?? true,
    clustered,
    maxPayload: opts.maxPayload ?? DEFAULT_MAX_PAYLOAD,
    extraConfig: opts.extraConfig ?? "",
    include: (opts.include ?? []).map((f) => resolve(f)),
    clusterConfig: opts.clusterConfig ?? "",
    readyTimeoutMs: opts.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS,
    routes: clusterPorts.map((p) => `nats://${HOST}:${p}`),
    members: (opts.metaMembers as ServerNode[] | undefined) ?? cluster.servers,
    clusterName: opts.clusterName ?? CLUSTER_NAME,
    ...(opts.gateway ? { gateway: opts.gateway } : {}),
    ...(opts.leafListenPorts ? { leafListenPorts: opts.leafListenPorts } : {}),
    ...(opts.leafRemotes ? { leafRemotes: opts.leafRemotes } : {}),
    ...(opts.leafRemoteAccount ? { leafRemoteAccount: opts.leafRemoteAccount } : {}),
    ...(opts.jetstreamDomain ? { jetstreamDomain: opts.jetstreamDomain } : {}),
    indexOf: (node) => cluster.servers.indexOf(node),
  };
  for (const i of range(count)) {
    // Server names are unique across a supercluster (JetStream requires it).
    const name = opts.clusterName ? `${opts.clusterName}-n${i + 1}` : `n${i + 1}`;
    const client = clientPorts[i]!;
    const monitor = wellKnown ? client + 4000 : -1;
    cluster.servers.push(new ServerNode(plan, name, join(cluster.dataDir, name), client, monitor, clusterPorts[i]));
  }
  await settleAll(cluster.servers.map((s) => s.start()));
  if (plan.jetstream && clustered && !opts.metaMembers) await waitForMetaLeader(cluster.servers, cluster.servers);
  cluster.maxPayload = (await monitor<{ max_payload: number }>(cluster.servers[0]!, "/varz")).max_payload;
  for (const s of cluster.servers) {
    say(`nats-server ${s.name} ready on ${s.url} (monitor :${s.monitorPort}, log ${s.logFile})`);
  }
}

/** Like Promise.all, but waits for every promise so no start is left running unobserved. */
async function settleAll(promises: Promise<void>[]): Promise<void> {
  const failed = (await Promise.allSettled(promises)).find((r) => r.status === "rejected");
  if (failed) throw failed.reason;
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/** Distinct free ports: all are held open together so none is handed out twice. */
export async function freePorts(count: number): Promise<number[]> {
  const servers = range(count).map(() => createServer());
  try {
    const listen = (s: Server) =>
      new Promise<void>((resolve, reject) => s.once("error", reject).listen(0, HOST, resolve));
    await Promise.all(servers.map(listen));
    return servers.map((s) => (s.address() as AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((resolve) => (s.listening ? s.close(resolve) : resolve(null)))));
  }
}

function toLineLogger(log: NatsLaunchLog | undefined): (line: string) => void {
  if (!log) return () => {};
  return typeof log === "function" ? log : (line) => log.info(line);
}
