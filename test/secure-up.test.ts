// `mesh up --secure`: the demo with every process holding its own key. The
// permission set meets the real sidecars, control and CLI here: the demo must
// answer through the ingress and no NATS node may log a permission violation.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { request } from "node:http";
import { createInterface } from "node:readline";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { eventually, runMesh } from "./helpers/mesh.ts";

const MESH_BIN = fileURLToPath(new URL("../bin/mesh.js", import.meta.url));
/** Apart from test/mesh-up.test.ts (28080) and below the ephemeral range. */
const BASE_PORT = 29180;
const READY_TIMEOUT_MS = 60_000;

let child: ChildProcess | undefined;
let root: string | undefined;

after(async () => {
  if (child?.exitCode === null && child.signalCode === null) {
    const exited = new Promise((r) => child!.once("exit", r));
    process.kill(-child.pid!, "SIGKILL"); // its own process group: mesh up and the processes it spawned
    await exited;
  }
  // NATS nodes run in process groups of their own (a Ctrl-C must not reach them first): pids.json names them.
  if (root) {
    const pids = await readFile(join(root, "data", "pids.json"), "utf8").then((t) => Object.values((JSON.parse(t) as { processes: Record<string, number> }).processes), () => []);
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        /* gone already */
      }
    }
    await rm(root, { recursive: true, force: true, maxRetries: 5 });
  }
});

test("mesh up --secure: the demo answers, the CLI needs the admin key, nothing trips a permission", { timeout: 120_000 }, async () => {
  root = await mkdtemp(join(tmpdir(), "natsmesh-secure-up-"));
  const data = join(root, "data");
  child = spawn(process.execPath, [MESH_BIN, "up", "--secure", "--nodes", "1", "--base-port", String(BASE_PORT), "--data", data], {
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: string[] = [];
  const exited = new Promise<number | null>((r) => child!.once("exit", (code) => r(code)));
  for (const stream of [child.stdout!, child.stderr!]) createInterface({ input: stream }).on("line", (l) => lines.push(l));
  await eventually(async () => {
    if (child!.exitCode !== null) throw new Error(`mesh up exited ${child!.exitCode}:\n${lines.join("\n")}`);
    return lines.some((l) => /natsmesh is ready/.test(l));
  }, READY_TIMEOUT_MS, 200).catch((err) => assert.fail(`${err.message}\n${lines.join("\n")}`));

  const body = await curl("/products");
  assert.ok((JSON.parse(body) as { products: unknown[] }).products.length > 0, body);

  const creds = join(data, "creds");
  assert.deepEqual((await readdir(creds)).sort(), ["admin.nk", "auth.conf", "catalog.nk", "control.nk", "frontend.nk", "ingress.nk", "pricing.nk"]);
  assert.equal((await stat(join(creds, "ingress.nk"))).mode & 0o777, 0o600);
  const nats = /npx mesh services --nats (\S+) --creds (\S+)/.exec(lines.join("\n"));
  assert.ok(nats, "the ready report shows the CLI its key");
  let r = await runMesh(["services", "--nats", nats[1]!, "--creds", join(creds, "admin.nk")]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /frontend/);
  r = await runMesh(["services", "--nats", nats[1]!]);
  assert.equal(r.code, 3);

  // A few more calls, and time for a telemetry report (every 2 s) and access records, before reading the log.
  for (let i = 0; i < 5; i++) await curl("/products");
  await new Promise((r) => setTimeout(r, 2_500));
  const log = await readFile(join(data, "nats", "n1", "nats.log"), "utf8");
  assert.deepEqual(log.split("\n").filter((l) => /Violation/.test(l)), [], "a mesh process was refused something it needs");

  process.kill(-child.pid!, "SIGINT");
  assert.equal(await exited, 0, lines.join("\n"));
});

/** GET through the ingress with Host: frontend.localhost, as `curl http://frontend.localhost:PORT/...` does. */
function curl(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port: BASE_PORT, path, headers: { host: `frontend.localhost:${BASE_PORT}` } }, (res) => {
      let text = "";
      res.setEncoding("utf8").on("data", (c: string) => (text += c));
      res.on("end", () => (res.statusCode === 200 ? resolve(text) : reject(new Error(`status ${res.statusCode}: ${text}`))));
    });
    req.on("error", reject).end();
  });
}
