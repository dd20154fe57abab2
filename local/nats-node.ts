// One nats-server process of a cluster started by nats-cluster.ts: its
// config (generated, or the repo's nats.conf with per-node environment),
// its ports (learned from the ports file), start, kill and restart.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, open, readdir, readFile, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { packageFile } from "../runtime/package-root.ts";
import { NatsServerError } from "./nats-binary.ts";
import type { NatsNode } from "./nats-cluster.ts";

export const HOST = "127.0.0.1";
export const CLUSTER_NAME = "natsmesh";
export const DEFAULT_MAX_PAYLOAD = 8 * 1024 * 1024; // "8MB" in nats.conf means MiB
export const DEFAULT_READY_TIMEOUT_MS = 20_000;
const KILL_GRACE_MS = 10_000;
const POLL_MS = 50;
const LOG_TAIL_LINES = 10;
const REPO_CONFIG = packageFile("nats.conf");
/** mesh up's well-known ports: client 4222+i, route 6222+i, monitor 8222+i. */
export const REPO_CLIENT_BASE = 4222;

export interface Plan {
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
  /** every node of the JetStream meta group (the whole supercluster), to find the meta leader among them */
  members: ServerNode[];
  /** the cluster block's name */
  clusterName: string;
  /** the JetStream domain (superclusters, so a leaf node can reach their JetStream) */
  jetstreamDomain?: string;
  /** a gateway block (superclusters, docs/multi-region.md): this cluster's gateway ports by node, every cluster's gateway URLs */
  gateway?: { ports: number[]; clusters: { name: string; urls: string[] }[] };
  /** leafnode listen ports by node (hub side) */
  leafListenPorts?: number[];
  /** leafnode remote URLs (leaf side) */
  leafRemotes?: string[];
  /** the local account the leaf remote binds */
  leafRemoteAccount?: string;
  /** node index within its cluster, for the per-node ports above */
  indexOf(node: ServerNode): number;
}

export class ServerNode implements NatsNode {
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
  const domain = plan.jetstreamDomain ? `, domain: ${plan.jetstreamDomain}` : "";
  if (plan.jetstream) lines.push(`jetstream { store_dir: ${JSON.stringify(node.storeDir)}${domain} }`);
  if (plan.clustered) {
    const routes = plan.routes.join(", ");
    const extra = plan.clusterConfig ? `, ${plan.clusterConfig}` : "";
    lines.push(`cluster { name: ${plan.clusterName}, host: ${HOST}, port: ${node.clusterPort}, routes: [${routes}]${extra} }`);
  }
  lines.push(...regionLines(node, plan));
  lines.push(...includeLines(node.dir, plan.include));
  return `${lines.join("\n")}\n${plan.extraConfig}\n`;
}

/** Gateway and leafnode blocks of a supercluster node or a leaf (docs/multi-region.md). */
function regionLines(node: ServerNode, plan: Plan): string[] {
  const i = plan.indexOf(node);
  const lines: string[] = [];
  if (plan.gateway) {
    const peers = plan.gateway.clusters.map((c) => `{ name: ${c.name}, urls: [${c.urls.join(", ")}] }`);
    lines.push(`gateway { name: ${plan.clusterName}, host: ${HOST}, port: ${plan.gateway.ports[i]}, gateways: [${peers.join(", ")}] }`);
  }
  if (plan.leafListenPorts) lines.push(`leafnodes { host: ${HOST}, port: ${plan.leafListenPorts[i]} }`);
  if (plan.leafRemotes?.length) {
    const urls = plan.leafRemotes.map((u) => JSON.stringify(u)).join(", ");
    const account = plan.leafRemoteAccount ? `, account: ${plan.leafRemoteAccount}` : "";
    lines.push(`leafnodes { remotes: [ { urls: [${urls}]${account} } ] }`);
  }
  return lines;
}

/** `include` lines for a config written in `dir`. */
function includeLines(dir: string, files: readonly string[]): string[] {
  return files.map((file) => `include ${JSON.stringify(relative(dir, file))}`);
}

function portOf(url: string | undefined): number | undefined {
  const port = url ? Number(new URL(url).port) : NaN;
  return port > 0 ? port : undefined;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function monitor<T>(node: ServerNode, path: string): Promise<T> {
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
export async function waitForMetaLeader(nodes: ServerNode[], members: ServerNode[]): Promise<void> {
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

