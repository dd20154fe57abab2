// `mesh up` as a newcomer uses it: start it, curl the first URL it prints,
// stop it, and find nothing left running. Also its port layout and the CLI table.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { access, mkdtemp, readFile, rm } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { main } from "../cli/main.ts";
import { eventually, freeBasePort, runMesh } from "./helpers/mesh.ts";
import { checkUpOptions, natsUrlsFor, planUp, plannedPorts, UP_DEFAULTS } from "../local/up-plan.ts";
import { demoServices } from "../services/manifest.ts";
import { isAlive } from "./helpers/mesh-process.ts";

const MESH_BIN = fileURLToPath(new URL("../bin/mesh.js", import.meta.url));
/** Below Linux's ephemeral range (32768+), where the other suites' servers get their ports; free, not fixed. */
const BASE_PORT = await freeBasePort(UP_DEFAULTS.nodes);
const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 30_000;

/** Everything started here, killed and removed when the file ends, whatever happened. */
const started: MeshUp[] = [];
let tmpRoot: string | undefined;

after(async () => {
  await Promise.all(started.map(kill));
  if (tmpRoot) await rm(tmpRoot, { recursive: true, force: true, maxRetries: 5 });
});

/** SIGKILLs mesh up and every child (they share its process group) and waits for mesh up to exit. */
async function kill(mesh: MeshUp): Promise<void> {
  try {
    process.kill(-mesh.child.pid!, "SIGKILL");
  } catch {
    // already gone
  }
  for (const pid of mesh.pids.filter(isAlive)) process.kill(pid, "SIGKILL");
  await mesh.exited;
}

interface MeshUp {
  child: ChildProcess;
  dataDir: string;
  stdout: string[];
  stderr: string[];
  /** pids read from pids.json, for the final check and the cleanup */
  pids: number[];
  exited: Promise<number | null>;
  /** resolves with the first line matching, rejects if mesh up exits first or after `timeoutMs` */
  line(stream: "stdout" | "stderr", match: RegExp, timeoutMs: number): Promise<string>;
}

async function meshUp(name: string): Promise<MeshUp> {
  tmpRoot ??= await mkdtemp(join(tmpdir(), "natsmesh-up-"));
  const dataDir = join(tmpRoot, name);
  const args = [MESH_BIN, "up", "--base-port", String(BASE_PORT), "--data", dataDir];
  // Its own process group, so cleanup can kill the whole tree at once.
  const child = spawn(process.execPath, args, { detached: true, stdio: ["ignore", "pipe", "pipe"] });
  const mesh: MeshUp = { child, dataDir, stdout: [], stderr: [], pids: [], exited: undefined!, line: undefined! };
  started.push(mesh);
  mesh.exited = new Promise((resolve) => child.once("exit", (code) => resolve(code)));
  const listeners: Array<() => void> = [];
  for (const stream of ["stdout", "stderr"] as const) {
    createInterface({ input: child[stream]! }).on("line", (line) => {
      mesh[stream].push(line);
      listeners.forEach((l) => l());
    });
  }
  mesh.line = (stream, match, timeoutMs) =>
    new Promise((resolve, reject) => {
      // A bound on a wait for a line that must come, to fail with mesh up's output instead of at the file's timeout.
      const timer = setTimeout(() => reject(new Error(`no line matching ${match} within ${timeoutMs} ms\n${output(mesh)}`)), timeoutMs); // why: see above
      const check = () => {
        const found = mesh[stream].find((l) => match.test(l));
        if (found !== undefined) return clearTimeout(timer), resolve(found);
      };
      listeners.push(check);
      check();
      void mesh.exited.then((code) => {
        setImmediate(() => (clearTimeout(timer), reject(new Error(`mesh up exited (${code}) before ${match}\n${output(mesh)}`))));
      });
    });
  return mesh;
}

const output = (mesh: MeshUp) => `stdout:\n${mesh.stdout.join("\n")}\nstderr:\n${mesh.stderr.join("\n")}`;

async function readPids(mesh: MeshUp): Promise<number[]> {
  const file = JSON.parse(await readFile(join(mesh.dataDir, "pids.json"), "utf8")) as { pid: number; processes: Record<string, number> };
  assert.equal(file.pid, mesh.child.pid);
  mesh.pids = Object.values(file.processes);
  return mesh.pids;
}

/** SIGTERM, then expect exit code 0, "stopped", and none of its processes left. */
async function stopAndCheck(mesh: MeshUp, pids: number[]): Promise<void> {
  mesh.child.kill("SIGTERM");
  // A bound on a wait for an exit that must come, to fail with mesh up's output instead of at the file's timeout.
  const timeout = new Promise<"timeout">((r) => setTimeout(() => r("timeout"), STOP_TIMEOUT_MS).unref()); // why: see above
  assert.equal(await Promise.race([mesh.exited, timeout]), 0, output(mesh));
  assert.ok(mesh.stdout.includes("stopped"), output(mesh));
  assert.deepEqual(pids.filter(isAlive), [], "processes left running");
  await assert.rejects(access(join(mesh.dataDir, "pids.json")), "pids.json removed");
}

/** GET through node:http, which resolves nothing: connect to 127.0.0.1, name the service in Host. */
function get(url: URL): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const headers = { host: url.host };
    const req = request({ host: "127.0.0.1", port: url.port, path: url.pathname + url.search, headers }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject).end();
  });
}

describe("mesh up", () => {
  test("the first URL printed answers through the mesh, and SIGTERM stops everything", { timeout: 120_000 }, async (t) => {
    const mesh = await meshUp("full");
    t.after(() => kill(mesh)); // the next test needs the ports even when this one fails
    const readyLine = await mesh.line("stdout", /\bready\b/, READY_TIMEOUT_MS);
    const firstUrl = await mesh.line("stdout", /https?:\/\/\S+/, 5_000);
    assert.ok(mesh.stdout.indexOf(readyLine) <= mesh.stdout.indexOf(firstUrl));
    const url = new URL(/https?:\/\/\S+/.exec(firstUrl)![0]);
    assert.equal(url.host, `frontend.localhost:${BASE_PORT}`, "the ingress, addressing frontend by name");

    const res = await get(url);
    assert.equal(res.status, 200, res.body);
    type Products = { products: Array<{ id: string; name: string; price: number; pricedBy: string }>; servedBy: { catalog: string } };
    const body = JSON.parse(res.body) as Products;
    assert.ok(body.products.length > 0);
    for (const p of body.products) {
      assert.equal(typeof p.name, "string", "catalog (Python) named it");
      assert.equal(typeof p.price, "number", "pricing priced it");
      assert.match(p.pricedBy, /^v[12]$/);
    }
    assert.equal(body.servedBy.catalog, "v1");

    // The streamed endpoint printed: server-sent events arrive while the stream stays open.
    const ticksUrl = new URL(/curl -N (\S+)/.exec(mesh.stdout.join("\n"))?.[1] ?? assert.fail(output(mesh)));
    assert.equal(ticksUrl.host, `frontend.localhost:${BASE_PORT}`);
    const firstEvent = await new Promise<string>((resolve, reject) => {
      const req = request({ host: "127.0.0.1", port: ticksUrl.port, path: ticksUrl.pathname, headers: { host: ticksUrl.host } }, (res) => {
        assert.equal(res.headers["content-type"], "text/event-stream");
        res.setEncoding("utf8").once("data", (c: string) => (resolve(c), req.destroy()));
      });
      req.on("error", reject).end();
    });
    assert.match(firstEvent, /^(event: \w+\n)?data: /m);

    const pids = await readPids(mesh);
    assert.equal(pids.length, 3 + 1 + 2 * demoServices.length + 1, "3 NATS nodes, control, apps, their sidecars, the ingress");
    assert.deepEqual(pids.filter((p) => !isAlive(p)), []);
    await access(join(mesh.dataDir, "logs", "ingress.sidecar.log"));

    // The control service answers the CLI at the address printed.
    const natsUrl = /npx mesh services --nats (\S+)/.exec(mesh.stdout.join("\n"))?.[1];
    assert.ok(natsUrl, output(mesh));
    await eventually(async () => {
      const r = await runMesh(["services", "--nats", natsUrl]);
      return r.code === 0 && ["frontend", "catalog", "pricing"].every((s) => r.stdout.includes(s));
    });
    // The web dashboard at the address the banner prints (docs/dashboard.md).
    const dashboardUrl = /^Dashboard .*(http:\/\/\S+\/dashboard\/)$/m.exec(mesh.stdout.join("\n"))?.[1];
    assert.ok(dashboardUrl, output(mesh));
    const page = await get(new URL(dashboardUrl));
    assert.equal(page.status, 200, page.body);
    assert.match(page.body, /<title>natsmesh dashboard<\/title>/);
    await stopAndCheck(mesh, pids);
  });

  test("SIGTERM in the middle of startup leaves nothing behind", { timeout: 120_000 }, async (t) => {
    const mesh = await meshUp("interrupted");
    t.after(() => kill(mesh));
    await mesh.line("stderr", /waiting for control, apps and sidecars/, READY_TIMEOUT_MS); // printed once pids.json lists them
    const pids = await readPids(mesh);
    await stopAndCheck(mesh, pids);
  });
});

describe("mesh up port layout", () => {
  const defaults = { nodes: UP_DEFAULTS.nodes, demo: true, dataDir: ".mesh", basePort: UP_DEFAULTS.basePort };

  test("defaults: ingress 8080, NATS 4222-4224, no port used twice", () => {
    const plan = planUp(defaults, demoServices);
    assert.equal(plan.ingress.listenPort, 8080);
    assert.deepEqual(plan.natsClientPorts, [4222, 4223, 4224]);
    assert.deepEqual(plan.natsMonitorPorts, [8222, 8223, 8224]);
    const ports = plannedPorts(plan).map((p) => p.port);
    assert.equal(new Set(ports).size, ports.length);
  });

  test("--base-port moves every port by the same distance", () => {
    const shifted = plannedPorts(planUp({ ...defaults, basePort: 9080 }, demoServices)).map((p) => p.port);
    assert.deepEqual(shifted, plannedPorts(planUp(defaults, demoServices)).map((p) => p.port + 1000));
  });

  test("sidecars list the NATS nodes in different orders", () => {
    const plan = planUp(defaults, demoServices);
    const urls = ["a", "b", "c"];
    const firsts = [plan.ingress, ...plan.apps.map((a) => a.sidecar)].map((s) => natsUrlsFor(s, urls)[0]);
    assert.deepEqual(new Set(firsts), new Set(urls));
  });

  test("bad options are usage errors", () => {
    assert.match(checkUpOptions({ ...defaults, nodes: 0 }, 4)!, /--nodes/);
    assert.match(checkUpOptions({ ...defaults, basePort: Number("x") }, 4)!, /--base-port/);
    assert.match(checkUpOptions({ ...defaults, basePort: 65500 }, 4)!, /--base-port/);
    assert.equal(checkUpOptions(defaults, 4), undefined);
  });
});

describe("mesh CLI", () => {
  test("unknown commands and bad arguments exit 2", async (t) => {
    const errors: string[] = [];
    t.mock.method(console, "error", (line: string) => errors.push(line));
    assert.equal(await main(["frobnicate"]), 2);
    assert.match(errors.join("\n"), /unknown command 'frobnicate'.*mesh help/);
    assert.equal(await main([]), 2);
    assert.equal(await main(["apply"]), 2, "no -f FILE");
    assert.equal(await main(["up", "--bogus"]), 2);
    assert.equal(await main(["up", "--nodes", "0"]), 2);
  });

  test("help lists the whole CLI", async (t) => {
    const out: string[] = [];
    t.mock.method(console, "log", (line: string) => out.push(line));
    assert.equal(await main(["--help"]), 0);
    for (const cmd of ["up", "sidecar", "control", "apply", "validate", "get", "delete", "history", "rollback", "services"]) {
      assert.match(out.join("\n"), new RegExp(`mesh ${cmd}\\b`));
    }
  });
});
