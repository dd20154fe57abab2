// `mesh up` keeps state (docs/run.md "State"): a restart keeps the policy a
// user applied; --reset wipes the data dir and the example policies come back.
import assert from "node:assert/strict";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { connect } from "@nats-io/transport-node";
import { requestControl } from "../control/index.ts";
import { onFileEnd } from "./helpers/cleanup.ts";
import { freeBasePort, runMesh } from "./helpers/mesh.ts";
import { spawnMesh, type MeshProcess } from "./helpers/mesh-process.ts";

const BASE_PORT = await freeBasePort(1);
const DATA = join(process.env.TMPDIR ?? "/tmp", "mesh-state");
const NATS = `nats://127.0.0.1:${BASE_PORT + 4222 - 8080}`;

const CANARY_50 = `kind: Route
service: pricing
rules:
  - backends: [{ version: v1, weight: 50 }, { version: v2, weight: 50 }]
`;

/** Kills what a mesh up left, by pids.json, if the test failed before stopping it. */
onFileEnd(async () => {
  const text = await readFile(join(DATA, "pids.json"), "utf8").catch(() => undefined);
  if (!text) return;
  for (const pid of Object.values((JSON.parse(text) as { processes: Record<string, number> }).processes)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* gone */
    }
  }
});

async function started(...extra: string[]): Promise<{ mesh: MeshProcess; policy: string }> {
  const mesh = spawnMesh(["up", "--nodes", "1", "--base-port", String(BASE_PORT), "--data", DATA, ...extra]);
  await mesh.printed(/natsmesh is ready/);
  return { mesh, policy: (await mesh.printed(/^Policy: /)).slice("Policy: ".length) };
}

async function stop(mesh: MeshProcess): Promise<void> {
  mesh.process.kill("SIGTERM");
  assert.equal(await mesh.exited, 0, mesh.lines.join("\n"));
}

interface MeshState {
  /** the weights of the pricing Route's last rule, as control has them in force */
  weights: number[];
  /** revisions in the pricing Route's history */
  revisions: number;
  /** access records of calls to the demo's entry service made before `before` */
  recordsBefore: number;
}

async function meshState(before = 0): Promise<MeshState> {
  const nc = await connect({ servers: [NATS], noAsyncTraces: true });
  try {
    const { items } = await requestControl(nc, "get", { kind: "Route", service: "pricing" });
    const rules = (items[0]!.document as { rules: Array<{ backends?: Array<{ weight?: number }> }> }).rules;
    const { entries } = await requestControl(nc, "history", { kind: "Route", service: "pricing" });
    const { records } = await requestControl(nc, "logs", { since: 0, limit: 1000 });
    return {
      weights: rules.at(-1)!.backends!.map((b) => b.weight ?? 0),
      revisions: entries.length,
      recordsBefore: records.filter((r) => Date.parse(r.record.time) < before).length,
    };
  } finally {
    await nc.close();
  }
}

test("a restart keeps the policy a user applied; --reset restores the examples", { timeout: 240_000 }, async () => {
  let run = await started();
  assert.match(run.policy, /^applied \d+ example policies from .*policies\.yaml to an empty mesh$/);
  assert.deepEqual((await meshState()).weights, [90, 10]);
  const applied = await runMesh(["apply", "-f", "-", "--nats", NATS], { stdin: CANARY_50 });
  assert.equal(applied.code, 0, applied.stderr);
  await stop(run.mesh);
  const stoppedAt = Date.now();

  run = await started();
  assert.match(run.policy, /^kept \d+ policy document\(s\) from the last run in .* \(mesh up --reset restores the examples\)$/);
  const kept = await meshState(stoppedAt);
  assert.deepEqual(kept.weights, [50, 50]);
  assert.equal(kept.revisions, 2, "the example's revision and the user's");
  assert.ok(kept.recordsBefore > 0, "access records of the first run's calls");
  await stop(run.mesh);

  run = await started("--reset");
  assert.match(run.policy, /^applied \d+ example policies from .* after --reset$/);
  const reset = await meshState(stoppedAt);
  assert.deepEqual([reset.weights, reset.revisions, reset.recordsBefore], [[90, 10], 1, 0]);
  await stop(run.mesh);
});

test("--reset refuses a data dir that holds files mesh up did not write, and wipes nothing", { timeout: 60_000 }, async () => {
  const dir = join(process.env.TMPDIR ?? "/tmp", "not-a-mesh");
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, "thesis.tex"), "precious");
  const r = await runMesh(["up", "--reset", "--nodes", "1", "--base-port", String(await freeBasePort(1)), "--data", dir]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /--reset: .* holds 'thesis.tex', which mesh up did not write; not wiping it/);
  assert.equal(await readFile(join(dir, "thesis.tex"), "utf8"), "precious");
});
