// What the bench compares. A scenario is a small object: a name, a setup that
// starts whatever sits between the load generator and the shared echo app,
// and the request the load generator sends. To add a row (say "mesh with a
// 3-rule route"), write a setup that starts sidecars via startSidecar(),
// applies its policy, and returns the caller's origin; then list it in SCENARIOS.
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { request } from "undici";
import { connectCli, controlRequest } from "../control/client.ts";
import { type Child, freePort, startChild, waitFor } from "./procs.ts";

/** What every scenario may use; the app and NATS are started once per run and shared. */
export interface BenchEnv {
  /** the echo app, e.g. http://127.0.0.1:40123 */
  appOrigin: string;
  natsUrl: string;
  /** set when BENCH_PROFILE=1: sidecars run under --cpu-prof and write here */
  profileDir: string | undefined;
}

/** The processes a scenario started, and where the load goes in. */
export interface Deployment {
  /** where the load generator connects */
  origin: string;
  /** sidecar processes, whose RSS is reported; output() is what they logged (warn and up) */
  sidecars: Array<{ role: string; pid: number; output(): string }>;
  stop(): Promise<void>;
}

export interface Scenario {
  name: string;
  setup(env: BenchEnv): Promise<Deployment>;
  /** the request the load generator repeats; `host` names the mesh service */
  target: { path: string; host?: string; headers?: Record<string, string> };
}

const MESH_BIN = fileURLToPath(new URL("../bin/mesh.js", import.meta.url));
/** the service the echo app plays in the mesh, and the name of the calling side */
const PROVIDER_SERVICE = "bench";
const CALLER_SERVICE = "loadgen";

export interface SidecarSpec {
  /** label in the report and in the profile dir name */
  role: string;
  service: string;
  /** the local app; absent = caller-only sidecar */
  app?: string;
}

export interface RunningSidecar {
  child: Child;
  listen: string;
  admin: string;
}

/** Starts `node bin/mesh.js sidecar ...` on free ports; resolves once /readyz answers 200. */
export async function startSidecar(env: BenchEnv, spec: SidecarSpec): Promise<RunningSidecar> {
  const listen = `127.0.0.1:${await freePort()}`;
  const admin = `127.0.0.1:${await freePort()}`;
  const nodeFlags: string[] = [];
  if (env.profileDir) {
    // One dir per sidecar: node names profiles by pid and thread, and tsx's loader thread writes one too.
    const dir = join(env.profileDir, spec.role.replaceAll(" ", "-"));
    await mkdir(dir, { recursive: true });
    nodeFlags.push("--cpu-prof", "--cpu-prof-dir", dir);
  }
  const args = [...nodeFlags, MESH_BIN, "sidecar", "--service", spec.service, "--listen", listen, "--admin", admin, "--nats", env.natsUrl, "--log-level", "warn"];
  if (spec.app) args.push("--app", spec.app);
  const child = startChild(spec.role, process.execPath, args);
  await waitFor(child, "report ready on /readyz", async () => {
    const res = await fetch(`http://${admin}/readyz`, { signal: AbortSignal.timeout(1_000) });
    await res.body?.cancel();
    return res.status === 200 ? true : undefined;
  });
  return { child, listen, admin };
}

/** One request through the deployment before timing starts, so a broken setup fails loudly. */
async function smokeTest(origin: string, target: Scenario["target"]): Promise<void> {
  const headers = { ...target.headers, ...(target.host ? { host: target.host } : {}) };
  // fetch() refuses to set Host; undici's request() allows it.
  const res = await request(new URL(target.path, origin), { headers });
  const body = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`smoke request to ${origin}${target.path} got ${res.statusCode}: ${body}`);
}

const direct: Scenario = {
  name: "direct",
  target: { path: "/echo" },
  async setup(env) {
    await smokeTest(env.appOrigin, this.target);
    return { origin: env.appOrigin, sidecars: [], stop: async () => {} };
  },
};

/** caller sidecar -> NATS -> provider sidecar -> app */
const mesh: Scenario = {
  name: "mesh",
  target: { path: "/echo", host: PROVIDER_SERVICE },
  async setup(env) {
    const [provider, caller] = await Promise.all([
      startSidecar(env, { role: "provider sidecar", service: PROVIDER_SERVICE, app: env.appOrigin }),
      startSidecar(env, { role: "caller sidecar", service: CALLER_SERVICE }),
    ]);
    const origin = `http://${caller.listen}`;
    await smokeTest(origin, this.target);
    return {
      origin,
      sidecars: [
        { role: "caller sidecar", pid: caller.child.pid, output: caller.child.output },
        { role: "provider sidecar", pid: provider.child.pid, output: provider.child.output },
      ],
      // Caller first, so nothing is in flight when the provider drains.
      stop: async () => {
        await caller.child.stop();
        await provider.child.stop();
      },
    };
  },
};

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

/** Starts `mesh control` and publishes the route; the sidecars started afterwards read it before they are ready. */
async function startControlWithRoute(env: BenchEnv): Promise<Child> {
  const admin = `127.0.0.1:${await freePort()}`;
  const control = startChild("control", process.execPath, [MESH_BIN, "control", "--nats", env.natsUrl, "--admin", admin, "--log-level", "warn"]);
  await waitFor(control, "report ready on /readyz", async () => {
    const res = await fetch(`http://${admin}/readyz`, { signal: AbortSignal.timeout(1_000) }).catch(() => undefined);
    await res?.body?.cancel();
    return res?.status === 200 ? true : undefined;
  });
  const nc = await connectCli({ nats: env.natsUrl });
  try {
    await controlRequest(nc, "apply", { documents: [THREE_RULE_ROUTE] });
  } finally {
    await nc.close();
  }
  return control;
}

/** `mesh` again, with the caller evaluating THREE_RULE_ROUTE for every request. */
const meshWithRoute: Scenario = {
  name: "mesh + 3-rule route",
  target: mesh.target,
  async setup(env) {
    const control = await startControlWithRoute(env);
    const deployment = await mesh.setup.call(this, env);
    return {
      ...deployment,
      stop: async () => {
        await deployment.stop();
        // Whatever runs next starts without the route.
        const nc = await connectCli({ nats: env.natsUrl });
        await controlRequest(nc, "delete", { kind: "Route", service: PROVIDER_SERVICE }).finally(() => nc.close());
        await control.stop();
      },
    };
  },
};

/** Run in this order; the first is the baseline of the mesh/direct ratios. */
export const SCENARIOS: readonly Scenario[] = [direct, mesh, meshWithRoute];
