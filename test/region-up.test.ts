// `mesh up --clusters N` (docs/multi-region.md): its layout as plain data, and
// one real run of a 2-cluster supercluster with the demo spread over it.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { checkUpOptions, natsUrlsFor, planUp, plannedPorts } from "../local/up-plan.ts";
import { demoServices } from "../services/manifest.ts";
import { call, eventually, freeBasePort, runMesh } from "./helpers/mesh.ts";

const MESH_BIN = fileURLToPath(new URL("../bin/mesh.js", import.meta.url));
const base = { demo: true, dataDir: ".mesh", basePort: 8080 };

describe("mesh up --clusters: the plan", () => {
  test("N clusters of --nodes servers each, gateways at client + 3000, a control replica per extra cluster", () => {
    const plan = planUp({ ...base, nodes: 1, clusters: 2 }, demoServices);
    assert.deepEqual(plan.natsClientPorts, [4222, 4223]);
    assert.deepEqual(plan.natsRoutePorts, [6222, 6223], "a one-node cluster still routes (to itself)");
    assert.deepEqual(plan.natsGatewayPorts, [7222, 7223]);
    assert.deepEqual(plan.extraControlAdminPorts, [8111]);
    const ports = plannedPorts(plan).map((p) => p.port);
    assert.equal(new Set(ports).size, ports.length, "no port planned twice");
  });

  test("the demo's sidecars are spread over the clusters, each given only its own cluster's servers", () => {
    const plan = planUp({ ...base, nodes: 2, clusters: 2 }, demoServices);
    const urls = plan.natsClientPorts.map((p) => `nats://127.0.0.1:${p}`);
    const clusters = new Set(plan.apps.map((a) => a.sidecar.cluster));
    assert.deepEqual(clusters, new Set([0, 1]));
    for (const app of plan.apps) {
      const own = urls.slice(app.sidecar.cluster * 2, app.sidecar.cluster * 2 + 2);
      assert.deepEqual(new Set(natsUrlsFor(app.sidecar, urls, 2)), new Set(own));
    }
  });

  test("bad combinations are refused with one line", () => {
    assert.match(checkUpOptions({ ...base, nodes: 1, clusters: 4 }, 4) ?? "", /--clusters must be 1, 2 or 3, got '4'/);
    assert.match(checkUpOptions({ ...base, nodes: 5, clusters: 2 }, 4) ?? "", /makes 10 NATS servers; at most 9/);
    assert.equal(checkUpOptions({ ...base, nodes: 1, clusters: 2, secure: true }, 4), undefined, "secure mode spans clusters");
    assert.equal(checkUpOptions({ ...base, nodes: 1, clusters: 3 }, 4), undefined);
  });
});

let child: ChildProcess | undefined;
let dataRoot: string | undefined;

after(async () => {
  if (child && child.exitCode === null) {
    try {
      process.kill(-child.pid!, "SIGKILL");
    } catch {
      // gone already
    }
  }
  if (dataRoot) await rm(dataRoot, { recursive: true, force: true, maxRetries: 5 });
});

describe("mesh up --clusters 2 --secure", () => {
  test("starts a secure supercluster, spreads the demo over east and west, serves through the ingress, stops on Ctrl-C", async () => {
    const basePort = await freeBasePort(2);
    dataRoot = await mkdtemp(join(tmpdir(), "natsmesh-region-up-"));
    // MESH_CLUSTERS is what `MESH_CLUSTERS=2 npm start` sets. Secure mode: every server includes the same auth.conf.
    const args = [MESH_BIN, "up", "--base-port", String(basePort), "--data", dataRoot, "--secure"];
    child = spawn(process.execPath, args, { detached: true, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, MESH_CLUSTERS: "2" } });
    const exited = new Promise<number | null>((resolve) => child!.once("exit", (code) => resolve(code)));
    const stderr: string[] = [];
    createInterface({ input: child.stderr! }).on("line", (l) => stderr.push(l));
    const ready = new Promise<string>((resolve, reject) => {
      createInterface({ input: child!.stdout! }).on("line", (l) => /is ready in/.test(l) && resolve(l));
      void exited.then((code) => reject(new Error(`mesh up exited with ${code}:\n${stderr.join("\n")}`)));
    });
    assert.match(await ready, /2 NATS node\(s\)/);
    assert.ok(stderr.some((l) => /starting 2 NATS clusters of 1 node\(s\), joined by gateways/.test(l)), stderr.join("\n"));
    const nats = `nats://127.0.0.1:${basePort - 8080 + 4222}`;
    await eventually(async () => {
      const res = await runMesh(["services", "-o", "json", "--nats", nats, "--creds", join(dataRoot!, "creds", "admin.nk")]);
      const regions = new Set((JSON.parse(res.stdout) as Array<{ regions?: Record<string, number> }>).flatMap((s) => Object.keys(s.regions ?? {})));
      return regions.has("east") && regions.has("west");
    }, 20_000);
    const res = await call(basePort, "frontend", "/products");
    assert.equal(res.statusCode, 200, await res.body.text());
    process.kill(-child.pid!, "SIGINT");
    assert.equal(await exited, 0);
  });
});
