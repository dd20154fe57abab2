// The demo shop as data, so `mesh up` (and tests) can start every app.
// Each app is a plain HTTP server: it listens on 127.0.0.1:$PORT and, when it
// calls other services, does so through the sidecar at $MESH_OUTBOUND.
import { spawn, type ChildProcess } from "node:child_process";
import type { Writable } from "node:stream";
import { nodeProgram, packageFile } from "../runtime/package-root.ts";

export type DemoLanguage = "typescript" | "python";

export interface DemoService {
  service: string;
  version: string;
  language: DemoLanguage;
  /** executable and arguments; paths are absolute, so any cwd works */
  command: string;
  args: string[];
  /** GET path answering 200 once the app is ready */
  healthPath: string;
  /** services it calls through $MESH_OUTBOUND; empty = it never calls out */
  calls: string[];
}

/** Environment variables every demo app reads. */
export const DEMO_ENV = {
  /** port to listen on, on 127.0.0.1 */
  port: "PORT",
  /** base URL of the local sidecar's outbound listener, e.g. http://127.0.0.1:15001 */
  outbound: "MESH_OUTBOUND",
} as const;

// Paths are from the package root: compiled apps run from dist/, the rest from the source tree.
function typescript(service: string, version: string, path: string, calls: string[] = []): DemoService {
  return { service, version, language: "typescript", command: process.execPath, args: nodeProgram(path), healthPath: "/healthz", calls };
}

function python(service: string, version: string, path: string, calls: string[] = []): DemoService {
  return { service, version, language: "python", command: "python3", args: [packageFile(path)], healthPath: "/healthz", calls };
}

export const demoServices: readonly DemoService[] = Object.freeze([
  python("catalog", "v1", "services/catalog/server.py"),
  typescript("pricing", "v1", "services/pricing/v1.ts"),
  python("pricing", "v2", "services/pricing/v2.py"),
  typescript("frontend", "v1", "services/frontend/server.ts", ["catalog", "pricing"]),
]);

/** The demo's policies (Route, Authz, Quota), applied by `mesh up`. */
export const examplePolicies = packageFile("services/policies.yaml");

/** Where users send requests once the demo is up: this service, this path. */
export const demoEntry = { service: "frontend", path: "/products" } as const;

/** A streamed endpoint of the demo: live price ticks as server-sent events, relayed by frontend from pricing. */
export const demoStream = { service: "frontend", path: "/ticks" } as const;

export interface StartDemoAppOptions {
  port: number;
  /** sidecar outbound listener; omit for apps that never call out */
  outbound?: string;
  /** where stdout and stderr go; a stream receives both (default "ignore") */
  stdio?: "ignore" | "pipe" | "inherit" | Writable;
  env?: NodeJS.ProcessEnv;
}

/** Spawns one demo app. Spawn errors (e.g. no python3) are written to `stdio` and end `waitForHttp`. */
export function startDemoApp(svc: DemoService, opts: StartDemoAppOptions): ChildProcess {
  const sink = typeof opts.stdio === "object" ? opts.stdio : null;
  const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env, [DEMO_ENV.port]: String(opts.port) };
  if (opts.outbound !== undefined) env[DEMO_ENV.outbound] = opts.outbound;
  const child = spawn(svc.command, svc.args, {
    env,
    stdio: ["ignore", sink ? "pipe" : (opts.stdio ?? "ignore"), sink ? "pipe" : (opts.stdio ?? "ignore")],
  });
  if (sink) {
    child.stdout?.pipe(sink, { end: false });
    child.stderr?.pipe(sink, { end: false });
  }
  child.on("error", (err) => sink?.write(`${svc.service} ${svc.version}: cannot start ${svc.command}: ${err.message}\n`));
  return child;
}

/**
 * Resolves once GET `url` answers 2xx; rejects after `timeoutMs`, or as soon as
 * `child` (when given) exits or fails to spawn.
 */
export async function waitForHttp(url: string, timeoutMs: number, child?: ChildProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited: string | null = null;
  const onExit = (code: number | null, signal: string | null) => (exited = `exited (${signal ?? code})`);
  const onError = (err: Error) => (exited = `failed to start: ${err.message}`);
  child?.once("exit", onExit).once("error", onError);
  if (child && child.exitCode !== null) exited = `exited (${child.exitCode})`;
  try {
    let last = "no answer";
    while (Date.now() < deadline) {
      if (exited) throw new Error(`waiting for ${url}: process ${exited}`);
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(Math.max(1, Math.min(1000, deadline - Date.now()))) });
        await res.arrayBuffer();
        if (res.ok) return;
        last = `status ${res.status}`;
      } catch (err) {
        last = (err as { cause?: { code?: string } }).cause?.code ?? String(err);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`${url} not ready after ${timeoutMs} ms (${last})`);
  } finally {
    child?.off("exit", onExit).off("error", onError);
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the process has exited. */
export function stopDemoApp(child: ChildProcess, graceMs = 3000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill("SIGTERM");
  });
}
