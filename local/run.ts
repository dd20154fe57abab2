// `mesh run`: one service instance, app and sidecar together, like `dapr run`
// (docs/run.md). Picks free ports, gives the app PORT, http_proxy and
// MESH_OUTBOUND, streams both outputs with a prefix, forwards signals to the
// app, and when the app exits drains the sidecar and exits with the app's code.
import { type ChildProcess, spawn } from "node:child_process";
import { createConnection } from "node:net";
import { constants } from "node:os";
import type { Readable, Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { packageFile } from "../runtime/package-root.ts";
import { freePorts } from "./nats-cluster.ts";

const MESH_BIN = packageFile("bin/mesh.js");
const HOST = "127.0.0.1";
/** Polling step while waiting for the app's port and the sidecar's readiness. */
const POLL_MS = 100;
/** A sidecar that has not drained this long after the app ended is killed. */
const SIDECAR_STOP_GRACE_MS = 45_000;
/** What a shell answers for a command it cannot start. */
export const EXIT_CANNOT_START = 127;

export interface RunOptions {
  service: string;
  version: string;
  /** the app's port (its PORT); chosen free when absent */
  appPort?: number;
  /** host:port of the sidecar's outbound and admin listeners; free ports when absent */
  listen?: string;
  admin?: string;
  /** more `mesh sidecar` arguments (flags the user gave: --nats, --creds, ...) */
  sidecarArgs: string[];
  /** the app's command and its arguments */
  command: string[];
}

const say = (line: string) => process.stderr.write(`mesh run: ${line}\n`);

/** The environment of the app: its port and the sidecar as HTTP proxy, in every spelling tools read. */
export function appEnv(base: NodeJS.ProcessEnv, appPort: number, outbound: string): NodeJS.ProcessEnv {
  const proxy = `http://${outbound}`;
  const noProxy = "localhost,127.0.0.1";
  return { ...base, PORT: String(appPort), MESH_OUTBOUND: proxy, http_proxy: proxy, HTTP_PROXY: proxy, no_proxy: noProxy, NO_PROXY: noProxy };
}

/** Runs until the app exits; returns its exit code (128+n when a signal ended it). */
export async function run(opts: RunOptions): Promise<number> {
  // Held together while chosen, so the three are distinct.
  const [freeApp, freeListen, freeAdmin] = await freePorts(3);
  const appPort = opts.appPort ?? freeApp!;
  const listen = opts.listen ?? `${HOST}:${freeListen}`;
  const admin = opts.admin ?? `${HOST}:${freeAdmin}`;
  const sidecarArgv = ["sidecar", "--service", opts.service, "--version", opts.version, "--app", `http://${HOST}:${appPort}`, "--listen", listen, "--admin", admin, ...opts.sidecarArgs];
  // Both in process groups of their own: a Ctrl-C reaches mesh run only, which stops the app first, then drains the sidecar.
  const sidecar = spawn(process.execPath, [MESH_BIN, ...sidecarArgv], { stdio: ["ignore", "pipe", "pipe"], detached: true });
  prefix(sidecar, "[sidecar] ");
  say(`sidecar of ${opts.service} ${opts.version} (pid ${sidecar.pid}): outbound http://${listen}, admin http://${admin}`);
  const app = spawn(opts.command[0]!, opts.command.slice(1), { stdio: ["ignore", "pipe", "pipe"], detached: true, env: appEnv(process.env, appPort, listen) });
  prefix(app, "[app] ");
  const killAll = () => [app, sidecar].forEach((c) => signal(c, "SIGKILL"));
  process.once("exit", killAll);
  const appEnded = ended(app);
  const sidecarEnded = ended(sidecar);
  const forward = (sig: NodeJS.Signals) => {
    say(`${sig}: stopping the app, then the sidecar`);
    signal(app, sig);
  };
  process.on("SIGINT", forward).on("SIGTERM", forward);
  try {
    if (app.pid !== undefined) say(`app '${opts.command.join(" ")}' (pid ${app.pid}) with PORT=${appPort} http_proxy=http://${listen}`);
    void announceReady(opts.service, appPort, admin, Promise.race([appEnded, sidecarEnded]));
    const first = await Promise.race([appEnded.then((r) => ({ who: "app" as const, ...r })), sidecarEnded.then((r) => ({ who: "sidecar" as const, ...r }))]);
    if (first.who === "sidecar") {
      say(`the sidecar ended (${first.describe}); stopping the app`);
      signal(app, "SIGTERM");
      await appEnded;
      return first.code === 0 ? 1 : first.code;
    }
    say(first.startError ? `cannot start '${opts.command[0]}': ${first.startError}` : `the app ended (${first.describe}); draining the sidecar`);
    await stopSidecar(sidecar, sidecarEnded);
    return first.code;
  } finally {
    process.off("SIGINT", forward).off("SIGTERM", forward).off("exit", killAll);
  }
}

interface Ending {
  /** the exit code as a shell reports it: 128+n for signal n, 127 for a command that did not start */
  code: number;
  describe: string;
  startError?: string;
}

function ended(child: ChildProcess): Promise<Ending> {
  return new Promise((resolve) => {
    child.once("error", (err) => {
      if (child.pid === undefined) resolve({ code: EXIT_CANNOT_START, describe: "did not start", startError: err.message });
    });
    // 'close': the process has exited and its last output has been printed.
    child.once("close", (code, sig) => {
      if (child.pid === undefined) return;
      const n = sig ? 128 + (constants.signals[sig] ?? 0) : (code ?? 1);
      resolve({ code: n, describe: sig ? `signal ${sig}, exit ${n}` : `exit ${n}` });
    });
  });
}

async function stopSidecar(sidecar: ChildProcess, exited: Promise<Ending>): Promise<void> {
  signal(sidecar, "SIGTERM");
  const timer = setTimeout(() => signal(sidecar, "SIGKILL"), SIDECAR_STOP_GRACE_MS);
  const { describe } = await exited;
  clearTimeout(timer);
  say(`the sidecar stopped (${describe})`);
}

function signal(child: ChildProcess, sig: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    child.kill(sig);
  } catch {
    /* gone already */
  }
}

/** Each line of the child's stdout and stderr, prefixed, to ours. */
function prefix(child: ChildProcess, tag: string): void {
  prefixLines(child.stdout!, process.stdout, tag);
  prefixLines(child.stderr!, process.stderr, tag);
}

/** A line longer than this is written in pieces, each prefixed: output without newlines must not grow a buffer. */
const MAX_LINE_BYTES = 64 * 1024;

function prefixLines(from: Readable, to: Writable, tag: string): void {
  let partial = "";
  from.setEncoding("utf8");
  from.on("data", (chunk: string) => {
    const lines = (partial + chunk).split("\n");
    partial = lines.pop()!;
    while (partial.length > MAX_LINE_BYTES) {
      lines.push(partial.slice(0, MAX_LINE_BYTES));
      partial = partial.slice(MAX_LINE_BYTES);
    }
    if (lines.length) to.write(lines.map((l) => `${tag}${l}\n`).join(""));
  });
  from.on("end", () => {
    if (partial) to.write(`${tag}${partial}\n`);
  });
}

/** Says when the app's port answers and when the sidecar is ready; gives up silently when either ends first. */
async function announceReady(service: string, appPort: number, admin: string, over: Promise<unknown>): Promise<void> {
  let done = false;
  void over.then(() => (done = true));
  while (!done && !(await portOpen(appPort))) await sleep(POLL_MS);
  if (done) return;
  say(`the app listens on ${HOST}:${appPort}`);
  while (!done && !(await readyz(admin))) await sleep(POLL_MS);
  if (!done) say(`${service} is in the mesh: the sidecar is ready (http://${admin}/readyz)`);
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: HOST, port });
    socket.once("connect", () => (socket.destroy(), resolve(true)));
    socket.once("error", () => resolve(false));
  });
}

async function readyz(admin: string): Promise<boolean> {
  try {
    const res = await fetch(`http://${admin}/readyz`, { signal: AbortSignal.timeout(2_000) });
    await res.body?.cancel();
    return res.status === 200;
  } catch {
    return false;
  }
}
