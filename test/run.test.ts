// `mesh run` with the Python demo app (docs/run.md): a request through
// another sidecar reaches it; the app's exit stops the sidecar and becomes
// mesh run's exit code; SIGINT stops both cleanly; usage errors exit 2.
import assert from "node:assert/strict";
import { before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { call, freePort, runMesh, startTestSidecar } from "./helpers/mesh.ts";
import { isAlive, spawnMesh, type MeshProcess } from "./helpers/mesh-process.ts";
import { startNats } from "./helpers/nats.ts";
import { startTestControl } from "./helpers/control.ts";

const CATALOG = fileURLToPath(new URL("../services/catalog/server.py", import.meta.url));
let nats: string;

before(async () => {
  const cluster = await startNats();
  nats = cluster.urls.join(",");
  await startTestControl(cluster.urls);
});

/** The pids mesh run reports for its sidecar and its app. */
async function pids(run: MeshProcess): Promise<{ sidecar: number; app: number }> {
  const sidecar = Number(/\(pid (\d+)\)/.exec(await run.printed(/^mesh run: sidecar of .* \(pid \d+\)/))![1]);
  const app = Number(/\(pid (\d+)\)/.exec(await run.printed(/^mesh run: app '.*' \(pid \d+\)/))![1]);
  return { sidecar, app };
}

test("the Python catalog behind mesh run answers through another sidecar; SIGINT stops app and sidecar", { timeout: 90_000 }, async () => {
  const caller = await startTestSidecar({ service: "frontend", nats: nats.split(",") });
  const run = spawnMesh(["run", "--service", "catalog", "--nats", nats, "--", "python3", CATALOG]);
  const { sidecar, app } = await pids(run);
  await run.printed(/^mesh run: catalog is in the mesh/);
  assert.ok(run.lines.some((l) => /^\[app\] catalog listening on http:\/\/127\.0\.0\.1:\d+/.test(l)), run.lines.join("\n"));
  await run.printed(/^\[sidecar\] \{.*"msg":"sidecar started"/);

  const res = await call(caller.outbound.port, "catalog", "/items");
  assert.equal(res.statusCode, 200);
  assert.ok(((await res.body.json()) as Array<{ id: string }>).some((i) => i.id === "latte"));

  run.process.kill("SIGINT");
  assert.equal(await run.exited, 0, run.lines.join("\n"));
  assert.ok(run.lines.some((l) => /^\[sidecar\] \{.*"msg":"drained"/.test(l)), "the sidecar drained");
  assert.deepEqual([sidecar, app].filter(isAlive), [], "nothing left running");
});

test("the app's exit stops the sidecar, and its code is mesh run's; the app gets PORT, http_proxy, NO_PROXY, MESH_OUTBOUND", { timeout: 60_000 }, async () => {
  const script = "import os, sys; print(' '.join(os.environ[k] for k in ['PORT', 'http_proxy', 'HTTP_PROXY', 'no_proxy', 'NO_PROXY', 'MESH_OUTBOUND'])); sys.exit(7)";
  const port = String(await freePort());
  const run = spawnMesh(["run", "--service", "batch", "--app-port", port, "--nats", nats, "--", "python3", "-c", script]);
  const { sidecar } = await pids(run);
  assert.equal(await run.exited, 7, run.lines.join("\n"));
  const env = run.lines.find((l) => l.startsWith("[app] "))!.slice(6).split(" ");
  const outbound = /outbound (http:\/\/127\.0\.0\.1:\d+)/.exec(run.lines.find((l) => /^mesh run: sidecar of/.test(l))!)![1];
  assert.deepEqual(env, [port, outbound, outbound, "localhost,127.0.0.1", "localhost,127.0.0.1", outbound]);
  assert.ok(run.lines.some((l) => /^mesh run: the sidecar stopped/.test(l)), run.lines.join("\n"));
  assert.equal(isAlive(sidecar), false);
});

test("an app ended by a signal: exit 128+n", { timeout: 60_000 }, async () => {
  const run = spawnMesh(["run", "--service", "sleeper", "--nats", nats, "--", "python3", "-c", "import time; time.sleep(600)"]);
  const { app } = await pids(run);
  process.kill(app, "SIGKILL");
  assert.equal(await run.exited, 128 + 9, run.lines.join("\n"));
});

test("usage errors exit 2 and start nothing; a command that cannot start exits 127", { timeout: 60_000 }, async () => {
  for (const args of [
    ["run", "--", "python3", CATALOG],
    ["run", "--service", "catalog"],
    ["run", "--service", "catalog", "--app-port", "99999", "--", "true"],
    ["run", "--service", "Not_A_Name", "--", "true"],
    ["run", "--service", "catalog", "--timeout-ms", "soon", "--", "true"],
  ]) {
    const r = await runMesh(args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /mesh run: sidecar of/);
  }
  const r = await runMesh(["run", "--service", "ghost", "--nats", nats, "--", "/nonexistent/app"]);
  assert.equal(r.code, 127, r.stderr);
  assert.match(r.stderr, /mesh run: cannot start '\/nonexistent\/app'/);
});

test("output without newlines is passed on in bounded, prefixed pieces", { timeout: 60_000 }, async () => {
  const run = spawnMesh(["run", "--service", "chatty", "--nats", nats, "--", "python3", "-c", "import sys; sys.stdout.write('x' * 200000)"]);
  assert.equal(await run.exited, 0, run.lines.slice(-5).join("\n"));
  const pieces = run.lines.filter((l) => l.startsWith("[app] "));
  assert.ok(pieces.length >= 4, `${pieces.length} pieces`);
  assert.ok(pieces.every((l) => l.length <= 64 * 1024 + 6));
  assert.equal(pieces.map((l) => l.slice(6)).join(""), "x".repeat(200000));
});
