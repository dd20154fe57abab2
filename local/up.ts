// `mesh up`: the whole mesh on one machine. A NATS cluster from nats.conf,
// the control service, every demo app with a sidecar beside it, and an
// ingress sidecar where a newcomer sends requests. Ctrl-C (or SIGTERM) stops
// sidecars, then control and apps, then NATS, and leaves nothing running,
// even when it comes mid-startup.
import type { ChildProcess } from "node:child_process";
import { setMaxListeners } from "node:events";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Defaults, formatProblem, inboxPrefixFor, parsePolicyText } from "../schemas/index.ts";
import { demoEntry, demoServices, examplePolicies, startDemoApp } from "../services/manifest.ts";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { requestControl } from "../control/index.ts";
import { JETSTREAM_SETTLE_LIMIT_MS, authenticatorFromFile, packageFile } from "../runtime/index.ts";
import { type CredsResult, seedFile, writeCreds } from "./creds.ts";
import { ADMIN_IDENTITY, CONTROL_IDENTITY } from "./creds-permissions.ts";
import { ensureNatsServer, NatsServerError } from "./nats-binary.ts";
import { type NatsCluster, startNatsCluster, stopAll } from "./nats-cluster.ts";
import { startSupercluster } from "./nats-supercluster.ts";
import { type ManagedProcess, ProcessSet } from "./processes.ts";
import { displayPath, readyReport } from "./up-report.ts";
import { assertPortsFree, httpGet } from "./up-probe.ts";
import { NotADataDirError, policyDocuments, resetDataDir } from "./up-state.ts";
import {
  type AppPlan,
  credsDirOf,
  HOST,
  meshIdentities,
  natsUrlsFor,
  planUp,
  plannedPorts,
  type SidecarPlan,
  type UpOptions,
  type UpPlan,
} from "./up-plan.ts";


const MESH_BIN = packageFile("bin/mesh.js");
const APP_READY_TIMEOUT_MS = 60_000;
/** Generous: on a loaded machine starting node processes is slow; a process that exits ends the wait at once. */
const SIDECAR_READY_TIMEOUT_MS = 60_000;
/** Control retries its JetStream setup while a restarted cluster settles (up to JETSTREAM_SETTLE_LIMIT_MS); wait that long. */
const CONTROL_READY_TIMEOUT_MS = JETSTREAM_SETTLE_LIMIT_MS;
/** Subscription interest needs a moment to cross the routes to every node. */
const THROUGH_MESH_TIMEOUT_MS = 20_000;
const POLL_MS = 100;
/** A signal this soon after the first is the same request delivered twice. */
const REPEATED_SIGNAL_MS = 1_000;
const APP_STOP_GRACE_MS = 5_000;
/** How long sidecars may go on draining once every NATS node has exited. */
const NO_NATS_GRACE_MS = 2_000;
/** A sidecar drains in-flight requests first, for up to drainTimeoutMs. */
const SIDECAR_STOP_GRACE_MS = Defaults.drainTimeoutMs + 5_000;
/** Settings a user's environment must not inject into the mesh's own sidecars and control. */
const CHILD_ENV_DROPPED = [
  ...["MESH_SERVICE", "MESH_VERSION", "MESH_APP", "MESH_LISTEN", "MESH_ADMIN", "MESH_INSTANCE"],
  ...["MESH_CONTROL_ADMIN", "NATS_URL", "NATS_CREDS"],
];

/** A startup failure whose message is the whole story (no stack needed). */
class UpError extends Error {}

const say = (line: string) => process.stderr.write(`mesh up: ${line}\n`);

/** `mesh up`: runs the local mesh until Ctrl-C; returns the exit code. `opts` are checked (checkUpOptions). */
export async function up(opts: UpOptions): Promise<number> {
  return new UpSession(opts, planUp(opts, demoServices)).run();
}

class UpSession {
  private readonly procs = new ProcessSet();
  /** Aborted when startup fails or a signal asks us to stop: every wait ends. */
  private readonly halt = new AbortController();
  private stopRequested = false;
  private cluster: NatsCluster | undefined;
  private sidecars: ManagedProcess[] = [];
  private apps: ManagedProcess[] = [];
  private control: ManagedProcess | undefined;
  /** control replicas of clusters 2 and 3 (--clusters) */
  private extraControls: ManagedProcess[] = [];
  private firstSignalAt: number | undefined;
  private wrotePids = false;
  private readonly logsDir: string;
  /** secure mode: the identities made (or kept) in <data>/creds */
  private creds: CredsResult | undefined;
  /** what happened to policy at start, for the banner: examples applied, or the last run's kept */
  private policyNote: string | undefined;

  constructor(
    private readonly opts: UpOptions,
    private readonly plan: UpPlan,
  ) {
    this.logsDir = join(opts.dataDir, "logs");
    // Every wait listens for the halt: one per process to start, more with --clusters.
    setMaxListeners(64, this.halt.signal);
  }

  async run(): Promise<number> {
    const startedAt = Date.now();
    const onSignal = (signal: NodeJS.Signals) => this.onSignal(signal);
    process.on("SIGINT", onSignal).on("SIGTERM", onSignal);
    let code = 0;
    try {
      await this.start();
      this.checkHalted();
      process.stdout.write(readyReport(this.plan, this.opts, this.cluster!, Date.now() - startedAt, this.policyNote));
      await new Promise((resolve) => this.halt.signal.addEventListener("abort", resolve, { once: true }));
    } catch (err) {
      if (!this.stopRequested) code = this.report(err);
    } finally {
      this.halt.abort();
      await this.shutdown();
      process.off("SIGINT", onSignal).off("SIGTERM", onSignal);
    }
    console.log("stopped");
    return code;
  }

  /**
   * First signal: stop in order. A later one kills everything now, unless it
   * is the same Ctrl-C arriving twice (`timeout` and terminals signal both
   * the process and its group).
   */
  private onSignal(signal: NodeJS.Signals): void {
    if (this.firstSignalAt === undefined) {
      this.firstSignalAt = Date.now();
      say(`${signal}: stopping sidecars, then control and apps, then NATS (${signal} again to kill them at once)`);
      this.stopRequested = true;
      this.halt.abort();
      return;
    }
    if (Date.now() - this.firstSignalAt < REPEATED_SIGNAL_MS) return;
    say(`${signal} again: killing every process now`);
    this.procs.killSync("SIGKILL");
    for (const server of this.cluster?.servers ?? []) void server.kill("SIGKILL");
  }

  private report(err: unknown): number {
    const message = err instanceof UpError || err instanceof NatsServerError || err instanceof NotADataDirError ? err.message : String((err as Error)?.stack ?? err);
    console.error(`mesh up: startup failed: ${message}`);
    if (this.cluster) console.error(`mesh up: logs are in ${displayPath(this.logsDir)}`);
    return err instanceof NatsServerError ? 3 : 1;
  }

  private async start(): Promise<void> {
    const busy = await assertPortsFree(plannedPorts(this.plan));
    if (busy) throw new UpError(`${busy}: is another mesh up running? Stop it, or pass --base-port`);
    if (this.opts.reset) {
      await resetDataDir(this.opts.dataDir);
      say(`--reset: wiped ${displayPath(this.opts.dataDir)} (policy, history, access records, logs)`);
    }
    await mkdir(this.logsDir, { recursive: true });
    const bin = await ensureNatsServer(say);
    this.checkHalted();
    if (this.opts.secure) {
      this.creds = await writeCreds(credsDirOf(this.opts), meshIdentities(this.plan));
      say(`secure mode: ${this.creds.identities.length} identities in ${displayPath(this.creds.dir)}, NATS includes ${displayPath(this.creds.authConf)}`);
    }
    this.cluster = this.plan.clusters > 1 ? await this.startSupercluster(bin) : await this.startCluster(bin);
    await this.writePids();
    this.checkHalted();
    this.startChildren(this.cluster.urls);
    await this.writePids();
    await this.waitUntilReady();
  }

  /** --clusters N: clusters joined by gateways (docs/multi-region.md), seen as one set of servers. */
  private async startSupercluster(bin: string): Promise<NatsCluster> {
    const { clusters, nodesPerCluster } = this.plan;
    say(`starting ${clusters} NATS clusters of ${nodesPerCluster} node(s), joined by gateways`);
    const sc = await startSupercluster({
      clusters,
      nodes: nodesPerCluster,
      dataDir: join(this.opts.dataDir, "nats"),
      wellKnown: true,
      clientPorts: this.plan.natsClientPorts,
      ...(this.creds ? { include: [this.creds.authConf] } : {}),
      bin,
      log: say,
    });
    const servers = sc.servers;
    return { servers, urls: servers.map((s) => s.url), maxPayload: sc.maxPayload, dataDir: join(this.opts.dataDir, "nats"), stop: () => sc.stop() };
  }

  private async startCluster(bin: string): Promise<NatsCluster> {
    say(`starting ${this.opts.nodes} NATS node(s) from nats.conf`);
    return startNatsCluster({
      nodes: this.opts.nodes,
      dataDir: join(this.opts.dataDir, "nats"),
      config: "repo",
      clientPorts: this.plan.natsClientPorts,
      ...(this.creds ? { include: [this.creds.authConf] } : {}),
      bin,
      log: say,
    });
  }

  /** `--creds FILE` for an identity in secure mode, nothing otherwise. */
  private credsArgs(identity: string): string[] {
    return this.creds ? ["--creds", seedFile(this.creds.dir, identity)] : [];
  }

  private checkHalted(): void {
    if (this.halt.signal.aborted) throw new UpError("interrupted");
  }

  private startChildren(natsUrls: string[]): void {
    const what = `control, ${this.plan.apps.length} demo app(s) and ${this.plan.apps.length + 1} sidecar(s)`;
    say(`starting ${what}; logs in ${displayPath(this.logsDir)}`);
    const controlUrls = natsUrlsFor(this.plan.ingress, natsUrls, this.plan.nodesPerCluster);
    const controlArgs = [MESH_BIN, "control", "--nats", controlUrls.join(","), "--admin", `${HOST}:${this.plan.controlAdminPort}`];
    controlArgs.push(...this.credsArgs(CONTROL_IDENTITY));
    this.control = this.procs.spawn("control", this.logFile("control"), process.execPath, controlArgs, childEnv());
    // A control replica per region makes that region's policy mirrors (docs/multi-region.md).
    this.extraControls = this.plan.extraControlAdminPorts.map((port, i) => {
      const urls = natsUrlsFor({ ...this.plan.ingress, cluster: i + 1 }, natsUrls, this.plan.nodesPerCluster);
      const args = [MESH_BIN, "control", "--nats", urls.join(","), "--admin", `${HOST}:${port}`, ...this.credsArgs(CONTROL_IDENTITY)];
      return this.procs.spawn(`control-${i + 2}`, this.logFile(`control-${i + 2}`), process.execPath, args, childEnv());
    });
    for (const app of this.plan.apps) this.apps.push(this.startApp(app));
    for (const sidecar of [this.plan.ingress, ...this.plan.apps.map((a) => a.sidecar)]) {
      this.sidecars.push(this.startSidecar(sidecar, natsUrls));
    }
  }

  private startApp(app: AppPlan): ManagedProcess {
    const outbound = `http://${HOST}:${app.sidecar.listenPort}`;
    return this.procs.start(app.name, this.logFile(app.name), (log) =>
      startDemoApp(app.svc, { port: app.port, outbound, stdio: log }),
    );
  }

  private startSidecar(s: SidecarPlan, natsUrls: string[]): ManagedProcess {
    const args = [MESH_BIN, "sidecar", "--service", s.service, "--version", s.version];
    if (s.appPort !== undefined) args.push("--app", `http://${HOST}:${s.appPort}`);
    args.push("--listen", `${HOST}:${s.listenPort}`, "--admin", `${HOST}:${s.adminPort}`);
    args.push("--nats", natsUrlsFor(s, natsUrls, this.plan.nodesPerCluster).join(","), "--log-level", "info", ...this.credsArgs(s.service));
    return this.procs.spawn(s.name, this.logFile(s.name), process.execPath, args, childEnv());
  }

  private async waitUntilReady(): Promise<void> {
    say("waiting for control, apps and sidecars to be ready");
    const controlReady = `http://${HOST}:${this.plan.controlAdminPort}/readyz`;
    await Promise.all([
      this.waitFor("control", CONTROL_READY_TIMEOUT_MS, [this.control!], () => this.probe(controlReady)),
      ...this.extraControls.map((p, i) =>
        this.waitFor(p.name, CONTROL_READY_TIMEOUT_MS, [p], () => this.probe(`http://${HOST}:${this.plan.extraControlAdminPorts[i]}/readyz`)),
      ),
      ...this.plan.apps.map((app, i) =>
        this.waitFor(`app ${app.name}`, APP_READY_TIMEOUT_MS, [this.apps[i]!], () =>
          this.probe(`http://${HOST}:${app.port}${app.svc.healthPath}`),
        ),
      ),
      ...[this.plan.ingress, ...this.plan.apps.map((a) => a.sidecar)].map((s, i) =>
        this.waitFor(`sidecar ${s.name}`, SIDECAR_READY_TIMEOUT_MS, [this.sidecars[i]!], () =>
          this.probe(`http://${HOST}:${s.adminPort}/readyz`),
        ),
      ),
    ]);
    if (this.plan.apps.length === 0) return;
    await this.examplesIntoEmptyMesh();
    const providers = this.plan.apps.length;
    await this.waitFor(`${providers} demo instances in the registry`, SIDECAR_READY_TIMEOUT_MS, this.sidecars, () => this.registered(providers));
    say(`sending GET ${demoEntry.path} to ${demoEntry.service} through the ingress`);
    const url = `http://${HOST}:${this.plan.ingress.listenPort}${demoEntry.path}`;
    const host = `${demoEntry.service}.localhost`;
    const all = [...this.sidecars, ...this.apps];
    await this.waitFor(`GET ${demoEntry.path} on ${demoEntry.service} through the mesh`, THROUGH_MESH_TIMEOUT_MS, all, () =>
      this.probe(url, host),
    );
  }

  /**
   * The demo's Route, Authz and Quota documents, through control like `mesh
   * apply` does, but only into an empty mesh: a restart keeps what the user
   * applied (docs/run.md "State").
   */
  private async examplesIntoEmptyMesh(): Promise<void> {
    const kept = await this.withControl(policyDocuments);
    if (kept > 0) {
      this.policyNote = `kept ${kept} policy document(s) from the last run in ${displayPath(this.opts.dataDir)} (mesh up --reset restores the examples)`;
      say(this.policyNote);
      return;
    }
    const parsed = parsePolicyText(await readFile(examplePolicies, "utf8"));
    if (!parsed.ok) throw new UpError(`${displayPath(examplePolicies)}: ${parsed.problems.map(formatProblem).join("; ")}`);
    const { applied } = await this.withControl((nc) => requestControl(nc, "apply", { documents: parsed.documents }));
    const why = this.opts.reset ? "after --reset" : "to an empty mesh";
    this.policyNote = `applied ${applied.length} example policies from ${displayPath(examplePolicies)} ${why}`;
    say(this.policyNote);
  }

  /** true once control lists `n` ready instances, so `mesh services` shows the whole demo when the banner says ready. */
  private async registered(n: number): Promise<true | string> {
    const { services } = await this.withControl((nc) => requestControl(nc, "services", {}));
    const ready = services.reduce((sum, s) => sum + s.ready, 0);
    return ready >= n ? true : `${ready} of ${n} registered`;
  }

  /** A request to control as the CLI makes it (in secure mode with the admin key). */
  private async withControl<T>(work: (nc: NatsConnection) => Promise<T>): Promise<T> {
    const creds = this.creds && seedFile(this.creds.dir, ADMIN_IDENTITY);
    const nc = await connect({
      servers: this.cluster!.urls,
      name: "mesh-up",
      noAsyncTraces: true,
      inboxPrefix: inboxPrefixFor(ADMIN_IDENTITY),
      ...(creds ? { authenticator: await authenticatorFromFile(creds) } : {}),
    });
    try {
      return await work(nc);
    } finally {
      await nc.close();
    }
  }

  /** true when GET `url` answers 200, else what it answered. */
  private async probe(url: string, host?: string): Promise<true | string> {
    const res = await httpGet(url, { host, timeoutMs: 2_000, signal: this.halt.signal });
    return res.status === 200 ? true : `status ${res.status}: ${res.body.slice(0, 200)}`;
  }

  /** Polls `probe` until true; fails at the deadline, as soon as one of `procs` ends, or when interrupted. */
  private async waitFor(what: string, timeoutMs: number, procs: ManagedProcess[], probe: () => Promise<true | string>) {
    const deadline = Date.now() + timeoutMs;
    let last = "no answer";
    for (;;) {
      this.checkHalted();
      const ended = procs.find((p) => !p.running);
      if (ended) throw new UpError(`waiting for ${what}: ${await ended.describeEnd()}`);
      const outcome = await probe().catch((err: NodeJS.ErrnoException) => err.code ?? err.message);
      if (outcome === true) return;
      last = outcome;
      if (Date.now() > deadline) throw new UpError(`${what} not ready after ${timeoutMs} ms (${last})`);
      await sleep(POLL_MS, undefined, { signal: this.halt.signal }).catch(() => undefined);
    }
  }

  /** Sidecars first (they drain in-flight calls), then control and the apps behind them, then NATS. */
  private async shutdown(): Promise<void> {
    await this.stopSidecars();
    await this.procs.stop([...(this.control ? [this.control] : []), ...this.extraControls, ...this.apps], APP_STOP_GRACE_MS);
    await stopAll();
    this.procs.dispose();
    if (this.wrotePids) await rm(this.pidsFile, { force: true });
  }

  /**
   * A sidecar cannot drain through a NATS that is gone: when Ctrl-C reached
   * the whole process group, the nodes exit at once, so cut the grace short.
   */
  private async stopSidecars(): Promise<void> {
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    void natsExited(this.cluster).then(() => {
      if (!stopped) timer = setTimeout(() => this.procs.kill(this.sidecars, "SIGKILL"), NO_NATS_GRACE_MS);
    });
    await this.procs.stop(this.sidecars, SIDECAR_STOP_GRACE_MS);
    stopped = true;
    clearTimeout(timer);
  }

  private get pidsFile(): string {
    return join(this.opts.dataDir, "pids.json");
  }

  /** `<data>/pids.json`: what is running now, for tools and tests that check nothing outlives us. */
  private async writePids(): Promise<void> {
    const processes: Record<string, number> = {};
    for (const s of this.cluster?.servers ?? []) if (s.process.pid) processes[`nats-${s.name}`] = s.process.pid;
    for (const p of this.procs.all) if (p.pid) processes[p.name] = p.pid;
    const tmp = `${this.pidsFile}.tmp`;
    await writeFile(tmp, `${JSON.stringify({ pid: process.pid, processes }, null, 2)}\n`);
    await rename(tmp, this.pidsFile);
    this.wrotePids = true;
  }

  private logFile(name: string): string {
    return join(this.logsDir, `${name}.log`);
  }
}

/** Resolves once every node of the cluster has exited; never when there is none. */
function natsExited(cluster: NatsCluster | undefined): Promise<void> {
  if (!cluster?.servers.length) return new Promise(() => {});
  const exited = (child: ChildProcess) =>
    child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise<void>((r) => child.once("exit", () => r()));
  return Promise.all(cluster.servers.map((s) => exited(s.process))).then(() => undefined);
}

function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of CHILD_ENV_DROPPED) delete env[name];
  return env;
}
