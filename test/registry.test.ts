import assert from "node:assert/strict";
import { before, test } from "node:test";
import type { NatsConnection } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { controlRequest } from "../cli/client.ts";
import { HEARTBEAT_INTERVAL_MS, REGISTRY_BUCKET, REGISTRY_TTL_MS, type RegistryEntry } from "../schemas/index.ts";
import { startApp, type TestApp } from "./helpers/apps.ts";
import { startTestControl } from "./helpers/control.ts";
import { eventually, freePort, runMesh, spawnSidecar, startTestSidecar } from "./helpers/mesh.ts";
import { connectClient, startNats, type NatsCluster } from "./helpers/nats.ts";

let nats: NatsCluster;
let nc: NatsConnection;
let app: TestApp;

before(async () => {
  nats = await startNats({ nodes: 1 });
  await startTestControl(nats.urls);
  nc = await connectClient(nats.urls);
  app = await startApp((_req, res) => void res.end("ok"));
});

async function instancesOf(service: string) {
  const { services } = await controlRequest(nc, "services", {});
  return services.filter((s) => s.service === service);
}

test("an entry expires in fewer than three heartbeat intervals", () => {
  assert.ok(REGISTRY_TTL_MS < 3 * HEARTBEAT_INTERVAL_MS);
  assert.ok(REGISTRY_TTL_MS > 2 * HEARTBEAT_INTERVAL_MS, "one late heartbeat is forgiven");
});

test("providers register; mesh services lists service, version, instances and health", async () => {
  await startTestSidecar({ service: "orders", version: "v1", instance: "orders-a", app: app.url, nats: nats.urls });
  await startTestSidecar({ service: "orders", version: "v1", instance: "orders-b", app: app.url, nats: nats.urls });
  await startTestSidecar({ service: "orders", version: "v2", instance: "orders-c", app: app.url, nats: nats.urls });
  await startTestSidecar({ service: "caller-only", nats: nats.urls });
  const orders = await instancesOf("orders");
  assert.deepEqual(
    orders.map((s) => [s.version, s.instances, s.ready, s.names.sort().join()]),
    [["v1", 2, 2, "orders-a,orders-b"], ["v2", 1, 1, "orders-c"]],
  );
  assert.deepEqual(await instancesOf("caller-only"), [], "a sidecar without an app provides nothing");

  const cli = await runMesh(["services"], { env: { NATS_URL: nats.urls.join(",") } });
  assert.equal(cli.code, 0, cli.stderr);
  assert.match(cli.stdout, /^SERVICE\s+VERSION\s+INSTANCES\s+HEALTH$/m);
  assert.match(cli.stdout, /^orders\s+v1\s+2\s+2\/2 ready$/m);
  assert.match(cli.stdout, /^orders\s+v2\s+1\s+1\/1 ready$/m);
});

test("an instance killed with SIGKILL disappears from the registry", async () => {
  const victim = await spawnSidecar(["--service", "fragile", "--instance", "fragile-1", "--app", app.url, "--nats", nats.urls.join(",")]);
  await eventually(async () => (await instancesOf("fragile")).length === 1);
  victim.process.kill("SIGKILL");
  await victim.exited;
  await eventually(async () => (await instancesOf("fragile")).length === 0, 4 * HEARTBEAT_INTERVAL_MS, 200);
});

test("a draining instance is marked draining before it leaves, then removed", async () => {
  const kv = await new Kvm(nc).open(REGISTRY_BUCKET);
  const watch = await kv.watch({ key: "leaving.*" });
  const states: string[] = [];
  const seen = (async () => {
    for await (const e of watch) {
      states.push(e.operation === "PUT" ? e.json<RegistryEntry>().state : e.operation);
      if (e.operation !== "PUT") break;
    }
  })();
  const sidecar = await startTestSidecar({ service: "leaving", instance: "leaving-1", app: app.url, nats: nats.urls });
  await eventually(async () => states.includes("ready"));
  await sidecar.drain();
  await seen;
  assert.deepEqual(states.slice(-2), ["draining", "DEL"]);
});

test("an instance whose app does not answer is registered unready", async () => {
  await startTestSidecar({ service: "sickly", instance: "sickly-1", app: `http://127.0.0.1:${await freePort()}`, nats: nats.urls });
  const [summary] = await instancesOf("sickly");
  assert.deepEqual([summary?.instances, summary?.ready, summary?.unready], [1, 0, 1]);
  const cli = await runMesh(["services"], { env: { NATS_URL: nats.urls.join(",") } });
  assert.match(cli.stdout, /^sickly\s+v1\s+1\s+0 ready, 1 unready$/m);
});
