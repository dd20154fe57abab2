// What the bench compares. A scenario is a small object: a name, a setup that
// starts whatever sits between the load generator and the shared echo app,
// and the request the load generator sends. Each scenario names the process
// on its caller side (the one the load generator talks to) and on its
// provider side (the one that answers over NATS), so every row of the report
// has the same columns:
//
//   scenario             caller side        provider side      app on the path
//   direct               -                  -                  yes
//   floor                floor caller       floor provider     yes
//   mesh                 caller sidecar     provider sidecar   yes
//   mesh [<launch>]      caller sidecar     provider sidecar   yes   (BENCH_MESH_VARIANTS)
//   mesh + 3-rule route  caller sidecar     provider sidecar   yes
//   moleculer            moleculer gateway  moleculer service  no (answers itself)
//
// To add a row, write a setup that starts its processes (startNodePeer() or
// startSidecar()) and returns the caller's origin; then list it in SCENARIOS.
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { request } from "undici";
import { connectCli, controlRequest } from "../cli/client.ts";
import type { ControlRequests } from "../schemas/index.ts";
import { type Child, freePort, startChild, waitFor } from "./procs.ts";

/** What every scenario may use; the app, NATS and mesh control are started once per run and shared. */
export interface BenchEnv {
  /** the echo app, e.g. http://127.0.0.1:40123 */
  appOrigin: string;
  natsUrl: string;
  /** set when BENCH_PROFILE=1: sidecars and peers run under --cpu-prof and write here */
  profileDir: string | undefined;
}

/** A process on one side of a deployment. */
export interface Proc {
  /** e.g. "caller sidecar", "floor provider" */
  name: string;
  pid: number;
  /** what it logged (warn and up for the sidecars) */
  output(): string;
}

/** The processes a scenario started, and where the load goes in. */
export interface Deployment {
  /** where the load generator connects */
  origin: string;
  /** the process the load generator talks to; absent for `direct` */
  caller?: Proc;
  /** the process that answers the caller over NATS; absent for `direct` */
  provider?: Proc;
  /** whether requests reach the shared echo app (its CPU is counted only then) */
  usesApp: boolean;
  stop(): Promise<void>;
}

export interface Scenario {
  name: string;
  /** a variant runs whenever BENCH_SCENARIOS selects the scenario it varies */
  variantOf?: string;
  /** mesh control must be running (run.ts starts one for the whole run) */
  needsControl?: boolean;
  setup(env: BenchEnv): Promise<Deployment>;
  /** the request the load generator repeats; `host` names the mesh service */
  target: { path: string; host?: string; headers?: Record<string, string> };
}

const MESH_BIN = fileURLToPath(new URL("../bin/mesh.js", import.meta.url));
const PEERS_DIR = fileURLToPath(new URL("./peers/", import.meta.url));
/** the service the echo app plays in the mesh, and the name of the calling side */
const PROVIDER_SERVICE = "bench";
const CALLER_SERVICE = "loadgen";
/** how long a smoke request answered 503 is tried again before the setup fails (ms) */
const SMOKE_RETRY_MS = 3_000;

/** `--cpu-prof` flags when profiling: one dir per process (node names profiles by pid and thread; tsx's loader thread writes one too). */
async function profileFlags(env: BenchEnv, role: string): Promise<string[]> {
  if (!env.profileDir) return [];
  const dir = join(env.profileDir, role.replaceAll(" ", "-"));
  await mkdir(dir, { recursive: true });
  return ["--cpu-prof", "--cpu-prof-dir", dir];
}

/** Polls http://<admin>/readyz until it answers 200. */
export function readyzProbe(admin: string): () => Promise<true | undefined> {
  return async () => {
    const res = await fetch(`http://${admin}/readyz`, { signal: AbortSignal.timeout(1_000) });
    await res.body?.cancel();
    return res.status === 200 ? true : undefined;
  };
}

export interface SidecarSpec {
  /** label in the report and in the profile dir name */
  role: string;
  service: string;
  /** the local app; absent = caller-only sidecar */
  app?: string;
  /** more `mesh sidecar` flags */
  flags?: string[];
  /** node flags and environment of this sidecar, after BENCH_SIDECAR_NODE_FLAGS */
  launch?: Launch;
}

/** How a sidecar's process is started besides its `mesh sidecar` flags (e.g. V8 heap sizes, MALLOC_ARENA_MAX). */
export interface Launch {
  /** the words as given, e.g. `--max-semi-space-size=2 MALLOC_ARENA_MAX=2` */
  label: string;
  nodeFlags: string[];
  env: Record<string, string>;
}

/** Space-separated words: `NAME=value` sets an environment variable, anything else is a node flag. */
export function parseLaunch(words: string): Launch {
  const nodeFlags: string[] = [];
  const env: Record<string, string> = {};
  for (const w of words.split(" ").filter(Boolean)) {
    const assign = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(w);
    if (assign) env[assign[1]!] = assign[2]!;
    else nodeFlags.push(w);
  }
  return { label: words.trim().split(/\s+/).join(" "), nodeFlags, env };
}

/** BENCH_SIDECAR_NODE_FLAGS: node flags (and NAME=value environment) for every sidecar the bench starts. */
const SIDECAR_LAUNCH = parseLaunch(process.env.BENCH_SIDECAR_NODE_FLAGS ?? "");

/**
 * BENCH_MESH_VARIANTS: `;`-separated launches (parseLaunch); each adds a
 * `mesh [<launch>]` row after `mesh` and a row to the start-up table, so
 * settings are compared within one run (e.g. `--max-semi-space-size=1;--max-semi-space-size=2`).
 */
export const MESH_VARIANTS: readonly Launch[] = (process.env.BENCH_MESH_VARIANTS ?? "").split(";").filter((v) => v.trim()).map(parseLaunch);

export interface RunningSidecar {
  child: Child;
  listen: string;
  admin: string;
}

/** The echo app every bench puts behind its paths (bench/echo-app.ts), once it listens. */
export async function startEchoApp(): Promise<{ origin: string; pid: number; bodyBytes: number }> {
  let out = "";
  const child = startChild("echo app", process.execPath, ["--import", "tsx", fileURLToPath(new URL("./echo-app.ts", import.meta.url))], { onStdout: (chunk) => (out += chunk) });
  const hello = await waitFor(child, "listen", async () => (out.includes("\n") ? (JSON.parse(out.split("\n")[0]!) as { port: number; bodyBytes: number }) : undefined));
  return { origin: `http://127.0.0.1:${hello.port}`, pid: child.pid, bodyBytes: hello.bodyBytes };
}

/** Starts `node bin/mesh.js sidecar ...` on free ports; resolves once /readyz answers 200. */
export async function startSidecar(env: BenchEnv, spec: SidecarSpec): Promise<RunningSidecar> {
  const listen = `127.0.0.1:${await freePort()}`;
  const admin = `127.0.0.1:${await freePort()}`;
  const nodeFlags = [...SIDECAR_LAUNCH.nodeFlags, ...(spec.launch?.nodeFlags ?? [])];
  const args = [...nodeFlags, ...(await profileFlags(env, spec.role)), MESH_BIN, "sidecar", "--service", spec.service, "--listen", listen, "--admin", admin, "--nats", env.natsUrl, "--log-level", "warn"];
  if (spec.app) args.push("--app", spec.app);
  if (spec.flags) args.push(...spec.flags);
  const child = startChild(spec.role, process.execPath, args, { env: { ...SIDECAR_LAUNCH.env, ...spec.launch?.env } });
  await waitFor(child, "report ready on /readyz", readyzProbe(admin));
  return { child, listen, admin };
}

/** A process of bench/peers/ run by plain `node` (no TypeScript loader), with what it printed once ready. */
interface NodePeer<T> {
  proc: Proc;
  child: Child;
  hello: T;
}

/** Starts `node bench/peers/<script> ...args`; resolves with the first JSON line it prints on stdout. */
async function startNodePeer<T>(env: BenchEnv, role: string, script: string, args: string[]): Promise<NodePeer<T>> {
  let stdout = "";
  const child = startChild(role, process.execPath, [...(await profileFlags(env, role)), join(PEERS_DIR, script), ...args], {
    cwd: PEERS_DIR,
    onStdout: (chunk) => (stdout = (stdout + chunk).slice(-4_000)),
  });
  const hello = await waitFor(child, "say it is ready", async () => {
    const line = stdout.split("\n").find((l) => l.startsWith("{"));
    return line === undefined ? undefined : (JSON.parse(line) as T);
  });
  const output = () => `${stdout.split("\n").filter((l) => !l.startsWith("{")).join("\n")}${child.output()}`;
  return { proc: { name: role, pid: child.pid, output }, child, hello };
}

/** One request through the deployment before timing starts, so a broken setup fails loudly. */
async function smokeTest(origin: string, target: Scenario["target"]): Promise<void> {
  const headers = { ...target.headers, ...(target.host ? { host: target.host } : {}) };
  const deadline = Date.now() + SMOKE_RETRY_MS;
  for (;;) {
    // fetch() refuses to set Host; undici's request() allows it.
    const res = await request(new URL(target.path, origin), { headers });
    const body = await res.body.text();
    if (res.statusCode === 200) return;
    // A caller ready a moment before it can reach a provider that is ready too: said, and tried again.
    if (res.statusCode !== 503 || Date.now() > deadline) throw new Error(`smoke request to ${origin}${target.path} got ${res.statusCode}: ${body}`);
    process.stderr.write(`bench: smoke request to ${origin}${target.path} got 503 (${body}); trying again\n`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const direct: Scenario = {
  name: "direct",
  target: { path: "/echo" },
  async setup(env) {
    await smokeTest(env.appOrigin, this.target);
    return { origin: env.appOrigin, usesApp: true, stop: async () => {} };
  },
};

/** The least a NATS bridge can do: bench/peers/floor/caller.js -> NATS -> bench/peers/floor/provider.js -> app. */
const floor: Scenario = {
  name: "floor",
  target: { path: "/echo" },
  async setup(env) {
    const subject = `floor.rpc.${PROVIDER_SERVICE}`;
    const provider = await startNodePeer<{ ready: true }>(env, "floor provider", "floor/provider.js", [env.natsUrl, subject, env.appOrigin]);
    const caller = await startNodePeer<{ port: number }>(env, "floor caller", "floor/caller.js", [env.natsUrl, subject]);
    const origin = `http://127.0.0.1:${caller.hello.port}`;
    await smokeTest(origin, this.target);
    return {
      origin,
      caller: caller.proc,
      provider: provider.proc,
      usesApp: true,
      stop: async () => {
        await caller.child.stop();
        await provider.child.stop();
      },
    };
  },
};

/** caller sidecar -> NATS -> provider sidecar -> app; with a launch, both sidecars start with its flags and environment. */
function meshScenario(launch?: Launch): Scenario {
  return {
    name: launch ? `mesh [${launch.label}]` : "mesh",
    ...(launch ? { variantOf: "mesh" } : {}),
    needsControl: true,
    target: { path: "/echo", host: PROVIDER_SERVICE },
    async setup(env) {
      const [provider, caller] = await Promise.all([
        startSidecar(env, { role: "provider sidecar", service: PROVIDER_SERVICE, app: env.appOrigin, ...(launch ? { launch } : {}) }),
        startSidecar(env, { role: "caller sidecar", service: CALLER_SERVICE, ...(launch ? { launch } : {}) }),
      ]);
      const origin = `http://${caller.listen}`;
      await smokeTest(origin, this.target);
      const proc = (s: RunningSidecar): Proc => ({ name: s.child.name, pid: s.child.pid, output: s.child.output });
      return {
        origin,
        caller: proc(caller),
        provider: proc(provider),
        usesApp: true,
        // Caller first, so nothing is in flight when the provider drains.
        stop: async () => {
          await caller.child.stop();
          await provider.child.stop();
        },
      };
    },
  };
}
const mesh = meshScenario();

/**
 * Three rules, evaluated on every request: the first two never match the
 * bench's request, the third chooses a version by weight. What it costs over
 * `mesh` is the price of rule evaluation.
 */
const THREE_RULE_ROUTE = {
  kind: "Route",
  service: PROVIDER_SERVICE,
  timeoutMs: 10_000,
  rules: [
    { match: { headers: { "x-canary": "true" } }, backends: [{ version: "v2" }] },
    { match: { pathPrefix: "/admin", methods: ["POST"] }, fault: { abort: { status: 503, percent: 100 } } },
    { backends: [{ version: "v1", weight: 100 }, { version: "v2", weight: 0 }] },
  ],
};

/** Starts `mesh control` (the buckets, the MESH_ACCESS stream, telemetry); resolves once its /readyz answers 200. */
export async function startControl(env: Pick<BenchEnv, "natsUrl">): Promise<Child> {
  const admin = `127.0.0.1:${await freePort()}`;
  const control = startChild("control", process.execPath, [MESH_BIN, "control", "--nats", env.natsUrl, "--admin", admin, "--log-level", "warn"]);
  await waitFor(control, "report ready on /readyz", readyzProbe(admin));
  return control;
}

async function controlCall<V extends "apply" | "delete">(env: BenchEnv, verb: V, body: ControlRequests[V]): Promise<void> {
  const nc = await connectCli({ nats: env.natsUrl });
  try {
    await controlRequest(nc, verb, body);
  } finally {
    await nc.close();
  }
}

/** `mesh` again, with the caller evaluating THREE_RULE_ROUTE for every request. */
const meshWithRoute: Scenario = {
  name: "mesh + 3-rule route",
  needsControl: true,
  target: mesh.target,
  async setup(env) {
    // Published first: the sidecars started next read it before they are ready.
    await controlCall(env, "apply", { documents: [THREE_RULE_ROUTE] });
    const deployment = await mesh.setup.call(this, env).catch(async (err: unknown) => {
      await controlCall(env, "delete", { kind: "Route", service: PROVIDER_SERVICE });
      throw err;
    });
    return {
      ...deployment,
      stop: async () => {
        await deployment.stop();
        // Whatever runs next starts without the route.
        await controlCall(env, "delete", { kind: "Route", service: PROVIDER_SERVICE });
      },
    };
  },
};

/**
 * bench/peers/ has its own package.json and lock (Moleculer 0.14 needs the
 * legacy `nats` v2 client, which natsmesh itself never depends on); it is
 * installed with `npm ci` the first time a scenario needs it.
 */
async function ensurePeersInstalled(): Promise<void> {
  const need = ["moleculer", "moleculer-web", "nats"];
  if (need.every((p) => existsSync(join(PEERS_DIR, "node_modules", p, "package.json")))) return;
  process.stderr.write("bench: installing the bench's peers (npm ci --prefix bench/peers)...\n");
  const npm = process.platform === "win32" ? "npm.cmd" : "npm";
  const child = startChild("npm ci (bench/peers)", npm, ["ci", "--prefix", PEERS_DIR, "--no-audit", "--no-fund"], { cwd: PEERS_DIR });
  await child.exited;
  if (child.process.exitCode !== 0) throw new Error(`npm ci in ${PEERS_DIR} failed (exit ${child.process.exitCode}):\n${child.output()}`);
}

/**
 * The peer: moleculer-web gateway -> NATS transporter -> a Moleculer service
 * that answers the echo app's JSON itself (one HTTP hop fewer than the others).
 */
const moleculer: Scenario = {
  name: "moleculer",
  target: { path: "/echo" },
  async setup(env) {
    await ensurePeersInstalled();
    const service = await startNodePeer<{ ready: true }>(env, "moleculer service", "moleculer/service.js", [env.natsUrl]);
    const gateway = await startNodePeer<{ port: number }>(env, "moleculer gateway", "moleculer/gateway.js", [env.natsUrl]);
    const origin = `http://127.0.0.1:${gateway.hello.port}`;
    await smokeTest(origin, this.target);
    return {
      origin,
      caller: gateway.proc,
      provider: service.proc,
      usesApp: false,
      stop: async () => {
        await gateway.child.stop();
        await service.child.stop();
      },
    };
  },
};

/** Run in this order; `floor` is the baseline of every ratio. */
export const SCENARIOS: readonly Scenario[] = [direct, floor, mesh, ...MESH_VARIANTS.map(meshScenario), meshWithRoute, moleculer];
export const BASELINE = floor.name;
