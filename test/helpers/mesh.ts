import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { request as httpRequest } from "node:http";
import { createInterface } from "node:readline";
import { onFileEnd } from "./cleanup.ts";
import { fileURLToPath } from "node:url";
import pino, { type Logger } from "pino";
import { Registry } from "prom-client";
import { request, type Dispatcher } from "undici";
import { randomBytes } from "node:crypto";
import type { Msg, MsgHdrs, NatsConnection } from "@nats-io/transport-node";
import { inboxPrefixFor, parseRpcSubject, parseSidecarConfig, type SidecarConfig } from "../../schemas/index.ts";
import { startSidecar, type Sidecar } from "../../sidecar/index.ts";
import { planUp, plannedPorts } from "../../local/up-plan.ts";
import { demoServices } from "../../services/manifest.ts";

export type SidecarOptions = Partial<SidecarConfig> & { service: string; nats: string[] };

/** A real sidecar in this process on free ports, drained when the test file ends. */
export async function startTestSidecar(opts: SidecarOptions, logger?: Logger): Promise<Sidecar & { registry: Registry }> {
  const config = parseSidecarConfig({ listen: "127.0.0.1:0", admin: "127.0.0.1:0", logLevel: "silent", ...opts });
  const registry = new Registry();
  const sidecar = await startSidecar(config, { logger: logger ?? pino({ level: "silent" }), registry });
  onFileEnd(() => sidecar.drain());
  return Object.assign(sidecar, { registry });
}

export interface ChildSidecar {
  process: ChildProcess;
  outboundPort: number;
  adminPort: number;
  /** every JSON log line printed so far */
  logs: Array<Record<string, unknown>>;
  exited: Promise<number | null>;
}

const MESH_BIN = fileURLToPath(new URL("../../bin/mesh.js", import.meta.url));

/** A sidecar as its own process (`mesh sidecar ...`), for signal and drain tests. */
export async function spawnSidecar(args: string[]): Promise<ChildSidecar> {
  const child = spawn(process.execPath, [MESH_BIN, "sidecar", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", ...args], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  onFileEnd(() => {
    if (child.exitCode === null) child.kill("SIGKILL");
  });
  const logs: Array<Record<string, unknown>> = [];
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const started = new Promise<Record<string, any>>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on("line", (line) => {
      try {
        const entry = JSON.parse(line);
        logs.push(entry);
        if (entry.msg === "sidecar started") resolve(entry);
      } catch {
        /* not a log line */
      }
    });
    void exited.then((code) => reject(new Error(`sidecar exited with ${code} before it started`)));
  });
  const entry = await started;
  return { process: child, outboundPort: entry.outbound.port, adminPort: entry.admin.port, logs, exited };
}

/** Calls `service` through a sidecar's outbound listener, addressed by Host header. */
export function call(
  outboundPort: number,
  service: string,
  path = "/",
  opts: { method?: Dispatcher.HttpMethod; headers?: Record<string, string | string[]>; body?: Buffer | string } = {},
) {
  return request(`http://127.0.0.1:${outboundPort}${path}`, {
    method: opts.method ?? "GET",
    headers: { host: service, ...opts.headers },
    body: opts.body,
  });
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/**
 * A request through node:http, which sends the target and headers exactly as
 * given: no URL normalisation, `Connection` allowed, absolute-form possible.
 */
export function rawCall(
  outboundPort: number,
  target: string,
  opts: { method?: string; headers?: Record<string, string> | string[]; body?: Buffer } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: "127.0.0.1", port: outboundPort, path: target, method: opts.method ?? "GET", headers: opts.headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      },
    );
    req.on("error", reject);
    req.end(opts.body);
  });
}

/**
 * Waits `ms`. Never the thing a verdict rests on: a test proves absence with
 * a barrier (a later legitimate event on the same path), and every call of
 * this says on its line (`// why:`) why it cannot be one.
 */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Repeats `fn` until it returns true (interest crossing a cluster takes a
 * moment). `timeoutMs` only bounds a wait for something that must happen; a
 * verdict never rests on it.
 */
export async function eventually(fn: () => Promise<boolean>, timeoutMs = 10_000, stepMs = 50): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (await fn().catch(() => false)) return;
    if (Date.now() > until) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(stepMs); // why: polling step; what is polled has no event to wait on from here
  }
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `mesh ARGS...` as a user would, optionally with text on stdin. */
export function runMesh(args: string[], opts: { env?: NodeJS.ProcessEnv; stdin?: string } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MESH_BIN, ...args], { env: { ...process.env, ...opts.env }, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c) => (stdout += c));
    child.stderr.on("data", (c) => (stderr += c));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(opts.stdin ?? "");
  });
}

/** A port nothing listens on right now (bound, then released): for apps to start on, or to be refused. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * A `--base-port` for `mesh up` with `nodes` NATS nodes whose every planned
 * port is free right now, below Linux's ephemeral range (32768+) where the
 * other suites' servers get theirs. Chosen at random, not fixed: another run
 * of the suite on the same machine (a colleague's) would hold a fixed one.
 */
export async function freeBasePort(nodes: number): Promise<number> {
  const free = (port: number) =>
    new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once("error", () => resolve(false));
      server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
    });
  for (let attempt = 0; attempt < 100; attempt++) {
    // 10000-31990: the plan spans base-3858 to base+144.
    const base = 10_000 + 10 * Math.floor(Math.random() * 2_200);
    const ports = plannedPorts(planUp({ nodes, demo: true, dataDir: "", basePort: base }, demoServices)).map((p) => p.port);
    if ((await Promise.all(ports.map(free))).every(Boolean)) return base;
  }
  throw new Error("no base port with every mesh up port free");
}

/**
 * A request as the caller sidecar of `caller` sends it, with nats.js alone:
 * the reply subject is in the caller's private inbox (`_INBOX.<caller>.<token>`)
 * and the answer comes back on `<reply>.<service>` (schemas/subjects.ts).
 */
export async function meshRequest(
  nc: NatsConnection,
  subject: string,
  opts: { headers?: MsgHdrs; body?: Uint8Array | string; timeoutMs?: number } = {},
): Promise<Msg> {
  const address = parseRpcSubject(subject);
  if (!address) throw new Error(`'${subject}' is not a request subject`);
  const reply = `${inboxPrefixFor(address.caller)}.${randomBytes(16).toString("base64url")}`;
  const sub = nc.subscribe(`${reply}.${address.service}`, { max: 1, timeout: opts.timeoutMs ?? 2_000 });
  nc.publish(subject, opts.body ?? new Uint8Array(), { reply, ...(opts.headers ? { headers: opts.headers } : {}) });
  for await (const msg of sub) return msg;
  throw new Error(`no answer to ${subject}`);
}
