// Startup that tells (docs/architecture.md §14): a sidecar or control pointed
// at a NATS that is not there opens its admin port at once, says in /readyz
// what it waits for, logs every failed attempt at info, and becomes ready
// when NATS comes; with --connect-timeout it gives up with exit 3 and the
// CLI's words.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { test } from "node:test";
import { request } from "undici";
import { freePort, runMesh } from "./helpers/mesh.ts";
import { spawnMesh, type MeshProcess } from "./helpers/mesh-process.ts";
import { startNats } from "./helpers/nats.ts";
import { startTestControl } from "./helpers/control.ts";
import { captureLogs } from "./helpers/logs.ts";
import { requestControl } from "../control/index.ts";

async function get(port: number, path: string): Promise<{ status: number; body: string }> {
  const res = await request(`http://127.0.0.1:${port}${path}`);
  return { status: res.statusCode, body: await res.body.text() };
}

/** Polls /readyz until it answers 200; each answer before that must be a 503 with a reason. */
async function becomesReady(port: number, seen: string[]): Promise<void> {
  for (;;) {
    const r = await get(port, "/readyz");
    if (r.status === 200) return;
    assert.equal(r.status, 503, r.body);
    seen.push(...(JSON.parse(r.body) as { reasons: string[] }).reasons);
    // why: /readyz has no push; a poll step between answers
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function waitingForNats(proc: MeshProcess, url: string): Promise<number> {
  const admin = await proc.logged((e) => e.msg === "admin listening");
  assert.equal((await get(admin.admin.port, "/healthz")).status, 200);
  // Barrier: the second failed attempt is logged, at info, with the wait before the next.
  const retry = await proc.logged((e) => e.attempt === 2);
  assert.equal(retry.level, 30);
  assert.match(retry.msg, new RegExp(`cannot reach NATS at ${url}`));
  assert.ok(retry.retryInMs > 0);
  const ready = await get(admin.admin.port, "/readyz");
  assert.equal(ready.status, 503);
  assert.match(ready.body, new RegExp(`connecting to NATS at ${url}`));
  return admin.admin.port as number;
}

test("sidecar and control: admin port and logs while NATS is unreachable, ready once it starts", { timeout: 90_000 }, async () => {
  const port = await freePort();
  const url = `nats://127.0.0.1:${port}`;
  const control = spawnMesh(["control", "--nats", url, "--admin", "127.0.0.1:0"]);
  const sidecar = spawnMesh(["sidecar", "--service", "early", "--nats", url, "--admin", "127.0.0.1:0", "--listen", "127.0.0.1:0"]);
  const controlAdmin = await waitingForNats(control, url);
  const sidecarAdmin = await waitingForNats(sidecar, url);

  await startNats({ clientPorts: [port] });
  await control.logged((e) => e.msg === "control started");
  assert.ok(control.logs.some((e) => /^connected to NATS at .* after \d+ attempts$/.test(e.msg) && e.level === 30));
  await sidecar.logged((e) => e.msg === "sidecar started");
  await becomesReady(controlAdmin, []);
  await becomesReady(sidecarAdmin, []);
  for (const p of [control, sidecar]) {
    p.process.kill("SIGTERM");
    assert.equal(await p.exited, 0);
  }
});

test("--connect-timeout: sidecar and control give up with exit 3 and the CLI's message", { timeout: 60_000 }, async () => {
  const url = `nats://127.0.0.1:${await freePort()}`;
  const cli = await runMesh(["services", "--nats", url]);
  assert.equal(cli.code, 3);
  for (const args of [
    ["sidecar", "--service", "late", "--listen", "127.0.0.1:0"],
    ["control"],
  ]) {
    const r = await runMesh([...args, "--nats", url, "--admin", "127.0.0.1:0", "--connect-timeout", "600"]);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, new RegExp(`^mesh ${args[0]}: cannot reach NATS at ${url}: `, "m"));
    assert.match(cli.stderr, new RegExp(`cannot reach NATS at ${url}: `));
  }
  const bad = await runMesh(["sidecar", "--service", "late", "--nats", url, "--connect-timeout", "soon"]);
  assert.equal(bad.code, 2, bad.stderr);
});

// The `mesh up --secure` race (docs/architecture.md §14): after a restart with
// its store, a cluster has a meta leader before its streams have theirs, and
// the create of an existing bucket is answered only by the stream's leader.
// Control used to exit on the TimeoutError; it now retries while JetStream settles.
test("control starts on a 3-node cluster restarted with its store, right after the meta leader is back", { timeout: 180_000 }, async (t) => {
  const cluster = await startNats({ nodes: 3 });
  const first = await startTestControl(cluster.urls);
  await first.kill();
  for (let round = 0; round < 2; round++) {
    await Promise.all(cluster.servers.map((s) => s.kill()));
    await Promise.all(cluster.servers.map((s) => s.restart()));
    const { logger, lines } = captureLogs();
    const control = await startTestControl(cluster.urls, logger);
    const reply = await requestControl(control.nc, "services", {});
    assert.deepEqual(reply.services, []);
    const retried = lines.filter((l) => /JetStream did not answer yet/.test(l.msg)).length;
    t.diagnostic(`round ${round}: ${retried} setup step(s) retried while JetStream settled`);
    await control.kill();
  }
});

test("what every mesh process loads: the bundle reads no package from node_modules, and a provider's app pool loads neither undici's fetch nor Node's own undici", async () => {
  // A real node process on the built bundle, as bin/mesh.js runs it (yaml and pino-pretty load on use only).
  const script = `
    import { createRequire } from "node:module";
    import { readdirSync } from "node:fs";
    const require = createRequire(import.meta.url);
    await import("./dist/bundle/main.mjs");
    const { appPool } = await import("./dist/bundle/" + readdirSync("dist/bundle").find((f) => f.startsWith("app-pool-")));
    const pool = appPool("http://127.0.0.1:9");
    const files = Object.keys(require("node:module")._cache).filter((f) => f.includes("node_modules"));
    const nodeUndici = process.moduleLoadList.some((m) => m.includes("deps/undici"));
    console.log(JSON.stringify({ files, nodeUndici, request: typeof pool.request }));
    await pool.close();`;
  const out = await new Promise<string>((resolve, reject) =>
    execFile(process.execPath, ["--input-type=module", "-e", script], { cwd: new URL("..", import.meta.url) }, (err, stdout, stderr) => (err ? reject(new Error(stderr || err.message)) : resolve(stdout))),
  );
  assert.deepEqual(JSON.parse(out), { files: [], nodeUndici: false, request: "function" });
});
