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

/** The weights of the pricing Route's last rule, as control has them in force. */
async function pricingWeights(): Promise<number[]> {
  const nc = await connect({ servers: [NATS], noAsyncTraces: true });
  try {
    const { items } = await requestControl(nc, "get", { kind: "Route", service: "pricing" });
    const rules = (items[0]!.document as { rules: Array<{ backends?: Array<{ weight?: number }> }> }).rules;
    return rules.at(-1)!.backends!.map((b) => b.weight ?? 0);
  } finally {
    await nc.close();
  }
}

test("a restart keeps the policy a user applied; --reset restores the examples", { timeout: 240_000 }, async () => {
  let run = await started();
  assert.match(run.policy, /^applied \d+ example policies from .*policies\.yaml to an empty mesh$/);
  assert.deepEqual(await pricingWeights(), [90, 10]);
  const applied = await runMesh(["apply", "-f", "-", "--nats", NATS], { stdin: CANARY_50 });
  assert.equal(applied.code, 0, applied.stderr);
  await stop(run.mesh);

  run = await started();
  assert.match(run.policy, /^kept \d+ policy document\(s\) from the last run in .* \(mesh up --reset restores the examples\)$/);
  assert.deepEqual(await pricingWeights(), [50, 50]);
  const history = await runMesh(["history", "routes", "pricing", "--nats", NATS]);
  assert.equal(history.code, 0, history.stderr);
  await stop(run.mesh);

  run = await started("--reset");
  assert.match(run.policy, /^applied \d+ example policies from .* after --reset$/);
  assert.deepEqual(await pricingWeights(), [90, 10]);
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
