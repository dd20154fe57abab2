// Starts real nats-server processes: the 3-node cluster of `mesh up` (from the
// repo's nats.conf) and the throwaway servers of the test suite (generated
// configs in a temp dir). Every process started here is killed when this
// process exits, however it exits.
import { type ChildProcess, spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { mkdir, mkdtemp, open, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { type AddressInfo, createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ensureNatsServer, NatsServerError } from "./nats-binary.ts";

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

const HOST = "127.0.0.1";
const CLUSTER_NAME = "natsmesh";
const DEFAULT_MAX_PAYLOAD = 8 * 1024 * 1024; // "8MB" in nats.conf means MiB
const DEFAULT_READY_TIMEOUT_MS = 20_000;
const KILL_GRACE_MS = 10_000;
const POLL_MS = 50;
const LOG_TAIL_LINES = 10;
const REPO_CONFIG = fileURLToPath(new URL("../nats.conf", import.meta.url));
/** mesh up's well-known ports: client 4222+i, route 6222+i, monitor 8222+i. */
const REPO_CLIENT_BASE = 4222;

interface Plan {
  bin: string;
  mode: "repo" | "generated";
  jetstream: boolean;
  clustered: boolean;
  maxPayload: number;
  extraConfig: string;
  /** absolute paths */
  include: string[];
  clusterConfig: string;
  readyTimeoutMs: number;
  routes: string[];
  /** every node of the cluster, to find the meta leader among them */
  members: ServerNode[];
}

class ServerNode implements NatsNode {
  process!: ChildProcess;
  readonly storeDir: string;
  readonly logFile: string;
  private exited: Promise<void> = Promise.resolve();
  private spawnError: Error | undefined;

  /** Ports of -1 are chosen by the server on first start, then kept for restarts. */
  constructor(
    private readonly plan: Plan,
    readonly name: string,
    readonly dir: string,
    public clientPort: number,
    public monitorPort: number,
    readonly clusterPort: number | undefined,
  ) {
    this.storeDir = join(dir, "store");
    this.logFile = join(dir, "nats.log");
  }

  get url(): string {
    return `nats://${HOST}:${this.clientPort}`;
  }
  get running(): boolean {
    return this.process !== undefined && this.process.exitCode === null && this.process.signalCode === null;
  }

  /** Spawns the server and waits until it listens; learns server-chosen (-1) ports from its ports file. */
  async start(): Promise<void> {
    await mkdir(this.storeDir, { recursive: true });
    const { args, env } = await this.launchSpec();
    const out = await open(this.logFile, "a");
    let child: ChildProcess;
    try {
      this.spawnError = undefined;
      // Its own process group: a Ctrl-C meant for `mesh up` must not kill NATS before the sidecars drain.
      child = spawn(this.plan.bin, [...args, "--ports_file_dir", this.dir], { env, stdio: ["ignore", out.fd, out.fd], detached: true });
      this.process = child;
      // 'error' (e.g. ENOENT) must have a listener before the next tick or it crashes us.
      this.exited = new Promise((resolve) => {
        child.once("error", (err) => ((this.spawnError = err), resolve()));
        child.once("close", () => resolve());
      });
    } finally {
      await out.close(); // the child holds its own copy of the descriptor
    }
    const ports = await this.poll("accept client connections", () => this.readPortsFile(child.pid));
    this.clientPort = ports.client;
    this.monitorPort = ports.monitor;
  }

  async kill(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    if (!this.running) return this.exited;
    this.process.kill(signal);
    const timer = setTimeout(() => this.process.kill("SIGKILL"), KILL_GRACE_MS);
    await this.exited;
    clearTimeout(timer);
  }

  signalSync(signal: NodeJS.Signals): void {
    if (this.running) this.process.kill(signal);
  }

  async restart(): Promise<void> {
    await this.kill();
    await this.start();
    if (this.plan.jetstream && this.plan.clustered) await waitForMetaLeader([this], this.plan.members);
  }

  /** Repo mode: nats.conf plus env vars. Generated: a config file with the ports known so far. */
  private async launchSpec(): Promise<{ args: string[]; env: NodeJS.ProcessEnv }> {
    if (this.plan.mode === "generated") {
      return { args: ["-c", await this.writeConfig(renderConfig(this, this.plan))], env: process.env };
    }
    const extra = [this.plan.extraConfig, ...includeLines(this.dir, this.plan.include)].filter(Boolean).join("\n");
    const conf = extra ? await this.writeConfig(`${await readFile(REPO_CONFIG, "utf8")}\n${extra}\n`) : REPO_CONFIG;
    return { args: ["-c", conf], env: { ...process.env, ...this.repoEnv() } };
  }

  /** The variables nats.conf references. */
  private repoEnv(): Record<string, string> {
    return {
      NATS_SERVER_NAME: this.name,
      NATS_HOST: HOST,
      NATS_CLIENT_PORT: String(this.clientPort),
      NATS_MONITOR_PORT: String(this.monitorPort),
      NATS_CLUSTER_PORT: String(this.clusterPort),
      // Env values are parsed as config values: quote the path, bracket the list.
      NATS_STORE_DIR: JSON.stringify(this.storeDir),
      NATS_ROUTES: `[${this.plan.routes.join(", ")}]`,
    };
  }

  private async writeConfig(text: string): Promise<string> {
    const file = join(this.dir, "nats.conf");
    await writeFile(file, text);
    return file;
  }

  /** nats-server writes `<exe>_<pid>.ports` once every listener is up; absent until then. */
  private async readPortsFile(pid: number | undefined): Promise<{ client: number; monitor: number } | undefined> {
    const file = (await readdir(this.dir)).find((f) => f.endsWith(`_${pid}.ports`));
    if (!file) return undefined;
    try {
      const ports = JSON.parse(await readFile(join(this.dir, file), "utf8")) as Record<string, string[]>;
      const client = portOf(ports.nats?.[0]);
      const monitor = portOf(ports.monitoring?.[0]);
      return client && monitor ? { client, monitor } : undefined;
    } catch {
      return undefined; // caught mid-write; the next poll reads it whole
    }
  }

  /** Polls until probe yields a value; fails early with the log tail if the process dies. */
  async poll<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
    const deadline = Date.now() + this.plan.readyTimeoutMs;
    for (;;) {
      if (this.spawnError) throw await this.failure(`could not run ${this.plan.bin}: ${this.spawnError.message}`);
      if (!this.running) throw await this.failure(`exited (${this.process.exitCode ?? this.process.signalCode})`);
      const value = await probe().catch(() => undefined);
      if (value !== undefined) return value;
      if (Date.now() > deadline) throw await this.failure(`did not ${what} within ${this.plan.readyTimeoutMs} ms`);
      await sleep(POLL_MS);
    }
  }

  /** The error names the cause (the server's fatal line, if any) first, then the log tail. */
  async failure(what: string): Promise<NatsServerError> {
    const log = await readFile(this.logFile, "utf8").catch(() => "");
    const lines = log.trimEnd().split("\n");
    const fatal = lines.filter((l) => l.includes("[FTL]")).at(-1)?.replace(/^.*\[FTL\] /, "");
    const tail = log ? `\nlast lines of ${this.logFile}:\n${lines.slice(-LOG_TAIL_LINES).join("\n")}` : "";
    const message = `nats-server ${this.name} ${what}${fatal ? `: ${fatal}` : ""}${tail}`;
    return new NatsServerError("nats_server_start_failed", message);
  }
}

function renderConfig(node: ServerNode, plan: Plan): string {
  const lines = [
    "# generated by natsmesh control/nats-cluster.ts; see nats.conf for what each setting is for",
    `server_name: ${node.name}`,
    `host: ${HOST}`,
    `port: ${node.clientPort}`,
    `http_port: ${node.monitorPort}`,
    `max_payload: ${plan.maxPayload}`,
  ];
  if (plan.jetstream) lines.push(`jetstream { store_dir: ${JSON.stringify(node.storeDir)} }`);
  if (plan.clustered) {
    const routes = plan.routes.join(", ");
    const extra = plan.clusterConfig ? `, ${plan.clusterConfig}` : "";
    lines.push(`cluster { name: ${CLUSTER_NAME}, host: ${HOST}, port: ${node.clusterPort}, routes: [${routes}]${extra} }`);
  }
  lines.push(...includeLines(node.dir, plan.include));
  return `${lines.join("\n")}\n${plan.extraConfig}\n`;
}

/** `include` lines for a config written in `dir`. */
function includeLines(dir: string, files: readonly string[]): string[] {
  return files.map((file) => `include ${JSON.stringify(relative(dir, file))}`);
}

function portOf(url: string | undefined): number | undefined {
  const port = url ? Number(new URL(url).port) : NaN;
  return port > 0 ? port : undefined;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function monitor<T>(node: ServerNode, path: string): Promise<T> {
  const res = await fetch(`http://${HOST}:${node.monitorPort}${path}`, { signal: AbortSignal.timeout(2_000) });
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
  return (await res.json()) as T;
}

interface Jsz {
  meta_cluster?: { leader?: string; replicas?: { name: string; current: boolean }[] };
}

/**
 * JetStream answers API calls only once the meta group has a leader, and R3
 * assets can only be placed once that leader counts every peer as current.
 * Waits until each of `nodes` sees a leader that sees it current.
 */
async function waitForMetaLeader(nodes: ServerNode[], members: ServerNode[]): Promise<void> {
  const isCurrent = async (node: ServerNode): Promise<true | undefined> => {
    const leaderName = (await monitor<Jsz>(node, "/jsz")).meta_cluster?.leader;
    if (!leaderName) return undefined;
    if (leaderName === node.name) return true;
    const leader = members.find((m) => m.name === leaderName);
    const replicas = leader ? ((await monitor<Jsz>(leader, "/jsz")).meta_cluster?.replicas ?? []) : [];
    return replicas.some((r) => r.name === node.name && r.current) ? true : undefined;
  };
  await Promise.all(nodes.map((node) => node.poll("join a JetStream meta group with a leader", () => isCurrent(node))));
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
  const clustered = count > 1;
  // mesh up uses well-known ports; tests let the server pick (-1), except for
  // routes, which every node must know before any starts (2.9 refuses a
  // clustered JetStream node without routes).
  const wellKnown = opts.config === "repo";
  const clientPorts = opts.clientPorts ?? range(count).map((i) => (wellKnown ? REPO_CLIENT_BASE + i : -1));
  const clusterPorts = !clustered ? [] : wellKnown ? clientPorts.map((p) => p + 2000) : await freePorts(count);
  if (wellKnown && !clustered) say("nats.conf describes a cluster; running the single node from a generated config");
  const plan: Plan = {
    bin,
    mode: opts.config === "repo" && clustered ? "repo" : "generated",
    jetstream: opts.jetstream ?? true,
    clustered,
    maxPayload: opts.maxPayload ?? DEFAULT_MAX_PAYLOAD,
    extraConfig: opts.extraConfig ?? "",
    include: (opts.include ?? []).map((f) => resolve(f)),
    clusterConfig: opts.clusterConfig ?? "",
    readyTimeoutMs: opts.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS,
    routes: clusterPorts.map((p) => `nats://${HOST}:${p}`),
    members: cluster.servers,
  };
  for (const i of range(count)) {
    const name = `n${i + 1}`;
    const client = clientPorts[i]!;
    const monitor = wellKnown ? client + 4000 : -1;
    cluster.servers.push(new ServerNode(plan, name, join(cluster.dataDir, name), client, monitor, clusterPorts[i]));
  }
  await settleAll(cluster.servers.map((s) => s.start()));
  if (plan.jetstream && clustered) await waitForMetaLeader(cluster.servers, cluster.servers);
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
async function freePorts(count: number): Promise<number[]> {
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
