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
import { planUp, type UpPlan } from "../local/up-plan.ts";
import { demoServices } from "../services/manifest.ts";
import { eventually, freeBasePort, runMesh } from "./helpers/mesh.ts";

const MESH_BIN = fileURLToPath(new URL("../bin/mesh.js", import.meta.url));
/** Below the ephemeral range, where the other suites' servers get their ports; free, not fixed. */
const BASE_PORT = await freeBasePort(1);
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
  assert.deepEqual((await readdir(creds)).sort(), ["admin.nk", "auth.conf", "catalog.nk", "control.nk", "frontend.nk", "ingress.nk", "leaf-auth.conf", "leaf.secret", "pricing.nk"]);
  assert.equal((await stat(join(creds, "ingress.nk"))).mode & 0o777, 0o600);
  assert.equal((await stat(join(creds, "leaf.secret"))).mode & 0o777, 0o600);
  const nats = /npx mesh services --nats (\S+) --creds (\S+)/.exec(lines.join("\n"));
  assert.ok(nats, "the ready report shows the CLI its key");
  let r = await runMesh(["services", "--nats", nats[1]!, "--creds", join(creds, "admin.nk")]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /frontend/);
  r = await runMesh(["services", "--nats", nats[1]!]);
  assert.equal(r.code, 3);

  // A few more calls; then the barrier: every sidecar's telemetry and access records of all of them have
  // reached control, so whatever a mesh process publishes after traffic has passed the server's checks.
  for (let i = 0; i < 5; i++) await curl("/products");
  const plan = planUp({ nodes: 1, demo: true, dataDir: data, basePort: BASE_PORT, secure: true }, demoServices);
  await everythingReported(plan, creds, nats[1]!);
  await dashboardReads(plan.controlAdminPort, nats[1]!, join(creds, "admin.nk"));
  const log = await readFile(join(data, "nats", "n1", "nats.log"), "utf8");
  assert.deepEqual(log.split("\n").filter((l) => /Violation/.test(l)), [], "a mesh process was refused something it needs");

  process.kill(-child.pid!, "SIGINT");
  assert.equal(await exited, 0, lines.join("\n"));
});

/**
 * The dashboard in secure mode (docs/dashboard.md §Safety): it reads the
 * registry, policy and access records through control's own identity, and
 * `mesh dashboard` finds it with the admin key. The nats.log check after
 * this says none of it tripped a permission.
 */
async function dashboardReads(controlAdminPort: number, natsUrl: string, adminKey: string): Promise<void> {
  const r = await runMesh(["dashboard", "--no-open", "--nats", natsUrl, "--creds", adminKey]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), `http://127.0.0.1:${controlAdminPort}/dashboard/`);
  const api = async <T>(path: string): Promise<T> => {
    const res = await fetch(`http://127.0.0.1:${controlAdminPort}/dashboard/api/${path}`);
    assert.equal(res.status, 200, path);
    return (await res.json()) as T;
  };
  const pricing = await api<{ instances: unknown[]; policies: { Route: unknown; Authz: unknown } }>("service?name=pricing");
  assert.equal(pricing.instances.length, 2);
  assert.ok(pricing.policies.Route && pricing.policies.Authz);
  assert.ok((await api<{ records: unknown[] }>("logs?service=frontend")).records.length > 0);
  assert.ok((await api<{ entries: unknown[] }>("history?kind=Route&service=pricing")).entries.length > 0);
}

/** The sum of `mesh_requests_total` samples on an admin listener's /metrics whose labels pass `match`. */
async function requestsCounted(adminPort: number, match: (labels: Record<string, string>) => boolean): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  let sum = 0;
  for (const [, labels, value] of text.matchAll(/^mesh_requests_total\{([^}]*)\} (\S+)$/gm)) {
    if (match(Object.fromEntries([...labels!.matchAll(/(\w+)="([^"]*)"/g)].map(([, k, v]) => [k, v])))) sum += Number(value);
  }
  return sum;
}

/**
 * Until control has merged, from every sidecar, the telemetry of every
 * request that sidecar counted (no request is in flight: the counts are
 * final), and MESH_ACCESS holds an access record from each side of each of
 * them. A sidecar of service S counts rows outbound from S and inbound to S.
 */
async function everythingReported(plan: UpPlan, creds: string, natsUrl: string): Promise<void> {
  const sidecars = [plan.ingress, ...plan.apps.map((a) => a.sidecar)];
  const services = [...new Set(sidecars.map((s) => s.service))];
  const mine = (service: string) => (l: Record<string, string>) => (l.direction === "outbound" && l.source === service) || (l.direction === "inbound" && l.destination === service);
  const local = new Map<string, number>();
  for (const service of services) {
    let n = 0;
    for (const s of sidecars.filter((x) => x.service === service)) n += await requestsCounted(s.adminPort, mine(service));
    local.set(service, n);
  }
  await eventually(async () => {
    for (const service of services) if ((await requestsCounted(plan.controlAdminPort, mine(service))) !== local.get(service)) return false;
    return true;
  }, READY_TIMEOUT_MS);
  for (const service of services) {
    const inbound = await requestsCounted(plan.controlAdminPort, (l) => l.direction === "inbound" && l.destination === service);
    const outbound = await requestsCounted(plan.controlAdminPort, (l) => l.direction === "outbound" && l.destination === service);
    await eventually(async () => {
      const r = await runMesh(["logs", service, "--since", "1h", "-o", "json", "--nats", natsUrl, "--creds", join(creds, "admin.nk")]);
      const records = r.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l) as { direction: string });
      return r.code === 0 && records.filter((x) => x.direction === "inbound").length === inbound && records.filter((x) => x.direction === "outbound").length === outbound;
    }, READY_TIMEOUT_MS, 200);
  }
}

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
