// TLS on client connections and on routes, by configuration only: a local CA
// from scripts/tls-certs.sh, a 3-node JetStream cluster whose routes verify
// each other, and mesh processes that trust the CA through NODE_EXTRA_CA_CERTS.
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { before, describe, test } from "node:test";
import { connect } from "@nats-io/transport-node";
import { header, startApp } from "./helpers/apps.ts";
import { onFileEnd, tempDir } from "./helpers/cleanup.ts";
import { call, eventually, runMesh, spawnSidecar } from "./helpers/mesh.ts";
import { startNats, type NatsCluster } from "./helpers/nats.ts";

const SCRIPT = fileURLToPath(new URL("../scripts/tls-certs.sh", import.meta.url));
const MESH_BIN = fileURLToPath(new URL("../bin/mesh.js", import.meta.url));

let dir: string;
let nats: NatsCluster;
const ca = () => join(dir, "ca.pem");

before(async () => {
  dir = await tempDir("natsmesh-tls-");
  await promisify(execFile)("sh", [SCRIPT, dir, "localhost", "127.0.0.1"]);
  const files = `cert_file: ${JSON.stringify(join(dir, "server.pem"))}, key_file: ${JSON.stringify(join(dir, "server-key.pem"))}`;
  nats = await startNats({
    nodes: 3,
    extraConfig: `tls { ${files}, timeout: 5 }`,
    clusterConfig: `tls { ${files}, ca_file: ${JSON.stringify(ca())}, verify: true, timeout: 5 }`,
  });
});

async function varz(node: number): Promise<Record<string, any>> {
  return (await fetch(`http://127.0.0.1:${nats.servers[node]!.monitorPort}/varz`)).json() as Promise<Record<string, any>>;
}

describe("TLS", () => {
  test("clients must speak TLS and trust the CA", async () => {
    assert.equal((await varz(0)).tls_required, true);
    const nc = await connect({ servers: nats.urls[0], tls: { caFile: ca() } });
    await nc.close();
    await assert.rejects(connect({ servers: nats.urls[0], reconnect: false }), /certificate/i);
  });

  test("routes are TLS with verified peers, and carry messages across nodes", async () => {
    for (const i of [0, 1, 2]) {
      const v = await varz(i);
      assert.equal(v.cluster.tls_required, true);
      assert.equal(v.cluster.tls_verify, true);
      const routez = (await (await fetch(`http://127.0.0.1:${nats.servers[i]!.monitorPort}/routez`)).json()) as { num_routes: number };
      assert.equal(routez.num_routes, 2);
    }
    const a = await connect({ servers: nats.urls[0], tls: { caFile: ca() } });
    const b = await connect({ servers: nats.urls[2], tls: { caFile: ca() } });
    b.subscribe("tls.echo", { callback: (_e, m) => void m.respond(m.data) });
    await b.flush();
    await eventually(async () => (await a.request("tls.echo", "across", { timeout: 500 })).string() === "across");
    await Promise.all([a.close(), b.close()]);
  });

  test("control, a sidecar and the CLI work over TLS with NODE_EXTRA_CA_CERTS, no flags", async () => {
    const env = { ...process.env, NODE_EXTRA_CA_CERTS: ca(), NATS_URL: nats.urls.join(",") };
    const control = spawn(process.execPath, [MESH_BIN, "control", "--admin", "127.0.0.1:0"], { env, stdio: "ignore" });
    onFileEnd(() => void control.kill("SIGKILL"));
    const app = await startApp();
    const previous = process.env.NODE_EXTRA_CA_CERTS;
    process.env.NODE_EXTRA_CA_CERTS = ca(); // read by the child at its start only
    const sidecar = await spawnSidecar(["--service", "pricing", "--app", app.url, "--nats", nats.urls.join(",")]).finally(() => {
      if (previous === undefined) delete process.env.NODE_EXTRA_CA_CERTS;
      else process.env.NODE_EXTRA_CA_CERTS = previous;
    });
    const res = await call(sidecar.outboundPort, "pricing", "/over-tls");
    assert.equal(res.statusCode, 200);
    await res.body.dump();
    assert.equal(header(app.seen.find((r) => r.url === "/over-tls")!, "x-mesh-caller"), "pricing");
    await eventually(async () => {
      const r = await runMesh(["services", "-o", "json"], { env });
      return r.code === 0 && r.stdout.includes('"pricing"');
    }, 20_000);
    const untrusted = await runMesh(["services"], { env: { NATS_URL: nats.urls.join(","), NODE_EXTRA_CA_CERTS: "" } });
    assert.equal(untrusted.code, 3);
    assert.match(untrusted.stderr, /certificate/i);
  });
});
