// Policy and registry at the sizes of issue 12's "cost as work grows"
// (docs/scale.md): a 500-document file is applied whole or not at all, and a
// sidecar has all of it in force. No timing here: `npm run bench:scale`
// measures.
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { before, describe, test } from "node:test";
import type { NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { headers } from "@nats-io/transport-node";
import pino from "pino";
import { stringify } from "yaml";
import { controlRequest } from "../cli/client.ts";
import { checkStoredPolicy, kvChangesSubject, kvStream, POLICY_BUCKETS, registerSubject, type RoutePolicy } from "../schemas/index.ts";
import { KvFollower, KvReader } from "../sidecar/index.ts";
import { mapLimit, mapLimitAll } from "../runtime/index.ts";
import { scaleDocuments, scaleHeartbeat, scaleRoute, scaleService } from "../bench/scale-policy.ts";
import { startApp } from "./helpers/apps.ts";
import { onFileEnd, tempDir } from "./helpers/cleanup.ts";
import { startTestControl } from "./helpers/control.ts";
import { call, eventually, runMesh, startTestSidecar } from "./helpers/mesh.ts";
import { connectClient, startNats, type NatsCluster } from "./helpers/nats.ts";

const DOCS = 500;
/** a sidecar reading 1000 documents on a busy machine: generous, it is a liveness bound, not a measurement */
const IN_FORCE_WITHIN_MS = 120_000;

let nats: NatsCluster;
let nc: NatsConnection;
let dir: string;
let natsEnv: NodeJS.ProcessEnv;

before(async () => {
  nats = await startNats({ nodes: 3 });
  await startTestControl(nats.urls);
  nc = await connectClient(nats.urls);
  dir = await tempDir("natsmesh-scale-");
  natsEnv = { NATS_URL: nats.urls.join(",") };
});

async function policyFile(name: string, documents: unknown[]): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, documents.map((d) => stringify(d)).join("---\n"));
  return file;
}

type Config = { policies: Array<{ bucket: string; key: string; revision: number }> };
async function configOf(adminPort: number): Promise<Config> {
  return (await (await fetch(`http://127.0.0.1:${adminPort}/config`)).json()) as Config;
}

/** revision by `<bucket>/<key>` */
function revisions(config: Config): Map<string, number> {
  return new Map(config.policies.map((p) => [`${p.bucket}/${p.key}`, p.revision]));
}

describe("500 Routes and 500 Authz", () => {
  test("one file is applied whole, and a running and a starting sidecar have all of it in force", async () => {
    const running = await startTestSidecar({ service: "loadgen", nats: nats.urls });
    const r = await runMesh(["apply", "-f", await policyFile("all.yaml", scaleDocuments(DOCS))], { env: natsEnv });
    assert.equal(r.code, 0, r.stderr);
    const applied = new Map<string, number>();
    for (const m of r.stdout.matchAll(/^(Route|Authz) (\S+): applied \(revision (\d+)\)$/gm)) {
      applied.set(`${m[1] === "Route" ? "mesh_routes" : "mesh_authz"}/${m[2]}`, Number(m[3]));
    }
    assert.equal(applied.size, 2 * DOCS);

    const inForce = (config: Config) => {
      const have = revisions(config);
      return [...applied].every(([k, rev]) => have.get(k) === rev);
    };
    await eventually(async () => inForce(await configOf(running.admin.port)), IN_FORCE_WITHIN_MS, 200);

    // A sidecar started now reads every Route before it is ready; Authz it follows without waiting (a caller).
    const starting = await startTestSidecar({ service: "loadgen", nats: nats.urls });
    const routes = revisions(await configOf(starting.admin.port));
    for (let i = 0; i < DOCS; i++) assert.equal(routes.get(`mesh_routes/${scaleService(i)}`), applied.get(`mesh_routes/${scaleService(i)}`));
    await eventually(async () => inForce(await configOf(starting.admin.port)), IN_FORCE_WITHIN_MS, 200);

    // In force means enforced: the last service's Authz lets loadgen reach /api/** only (the caller fails fast).
    const last = scaleService(DOCS - 1);
    for (const sidecar of [running, starting]) {
      const denied = await call(sidecar.outbound.port, last, "/internal");
      await denied.body.dump();
      assert.equal(denied.statusCode, 403);
      assert.equal(denied.headers["mesh-error"], "forbidden");
      const allowed = await call(sidecar.outbound.port, last, "/api/prices");
      await allowed.body.dump();
      assert.equal(allowed.headers["mesh-error"], "unavailable", "allowed through to NATS, where nobody serves it");
    }
  });

  test("one invalid document among 500 applies none of them", async () => {
    const before = await controlRequest(nc, "get", { kind: "Route" });
    const beforeRevisions = new Map(before.items.map((i) => [i.service, i.revision]));
    // New revisions of the first 499 (each would change), a new service, and one that is invalid.
    const documents: unknown[] = Array.from({ length: DOCS - 1 }, (_, i) => ({ ...scaleRoute(i), timeoutMs: 9_000 }));
    documents.push({ kind: "Route", service: "brand-new", timeoutMs: 1_000 });
    documents[250] = { ...scaleRoute(250), timeoutMs: -1 };
    const r = await runMesh(["apply", "-f", await policyFile("bad.yaml", documents)], { env: natsEnv });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /timeoutMs/);
    // The same through control itself (a CLI that skipped its local check): refused, nothing written.
    await assert.rejects(controlRequest(nc, "apply", { documents }), (err: Error & { exitCode?: number }) => err.exitCode === 1);

    const after = await controlRequest(nc, "get", { kind: "Route" });
    assert.deepEqual(new Map(after.items.map((i) => [i.service, i.revision])), beforeRevisions);
    assert.ok(!after.items.some((i) => i.service === "brand-new"));
  });

  test("when the server refuses some writes, the ones that succeeded are put back", async () => {
    const routesBefore = await controlRequest(nc, "get", { kind: "Route" });
    const timeoutBefore = new Map(routesBefore.items.map((i) => [i.service, (i.document as RoutePolicy).timeoutMs]));
    // A real refusal: the Authz bucket's stream takes no message as large as an Authz document for now.
    const jsm = await jetstreamManager(nc);
    const stream = kvStream(POLICY_BUCKETS.Authz);
    const { config } = await jsm.streams.info(stream);
    await jsm.streams.update(stream, { ...config, max_msg_size: 64 });
    try {
      const documents = scaleDocuments(DOCS).map((d) => (d.kind === "Route" ? { ...d, timeoutMs: 7_000 } : d));
      await assert.rejects(controlRequest(nc, "apply", { documents }), /apply failed and was undone/);
    } finally {
      await jsm.streams.update(stream, config);
    }
    const routesAfter = await controlRequest(nc, "get", { kind: "Route" });
    assert.deepEqual(new Map(routesAfter.items.map((i) => [i.service, (i.document as RoutePolicy).timeoutMs])), timeoutBefore);
  });
});

test("mesh services counts 2000 registered instances of 500 services", async () => {
  const instances = 2000;
  const perService = 4;
  const beats = Array.from({ length: instances }, (_, k) => scaleHeartbeat(Math.floor(k / perService), k % perService));
  // In batches, as heartbeats spread out: control queues at most 256 requests per verb (docs/architecture.md §13).
  for (let k = 0; k < instances; k += 100) {
    const replies = await Promise.all(beats.slice(k, k + 100).map((b) => nc.request(registerSubject(b.entry!.service), JSON.stringify(b), { timeout: 10_000 })));
    for (const m of replies) assert.equal(m.json<{ ok: boolean }>().ok, true);
  }
  const { services } = await controlRequest(nc, "services", {});
  assert.equal(new Set(services.map((s) => s.service)).size, instances / perService);
  assert.equal(services.reduce((sum, s) => sum + s.instances, 0), instances);
  assert.equal(services.reduce((sum, s) => sum + s.ready, 0), instances);
});

test("a sidecar follows the instances of a service while its Route asks for p2c-ewma, and by queue group again once it does not", async () => {
  const app = await startApp();
  const provider = await startTestSidecar({ service: "balanced", app: app.url, nats: nats.urls });
  const caller = await startTestSidecar({ service: "loadgen", nats: nats.urls });
  const subjects: string[] = [];
  const watch = nc.subscribe("mesh.rpc.balanced.>", { callback: (_err, msg) => void subjects.push(msg.subject) });
  onFileEnd(() => watch.unsubscribe());
  /** calls once and says on which subject the request went */
  const lastSubject = async () => {
    const res = await call(caller.outbound.port, "balanced", "/");
    await res.body.dump();
    assert.equal(res.statusCode, 200);
    await nc.flush();
    return subjects.at(-1);
  };
  const apply = (doc: Record<string, unknown>) => controlRequest(nc, "apply", { documents: [{ kind: "Route", service: "balanced", ...doc }] });

  await apply({ loadBalancer: "p2c-ewma" });
  await eventually(async () => (await lastSubject()) === `mesh.rpc.balanced.~${provider.instance}.loadgen`, IN_FORCE_WITHIN_MS, 100);
  await apply({ timeoutMs: 5_000 });
  await eventually(async () => (await lastSubject()) === "mesh.rpc.balanced._.loadgen", IN_FORCE_WITHIN_MS, 100);
});

test("a follower asks again for an announced revision that no replica returns yet", async () => {
  // A bucket without republish, so the only announcement is the one this test sends before the write.
  const own = await startNats();
  const client = await connectClient(own.urls);
  onFileEnd(() => client.close());
  const kv = await new Kvm(client).create(POLICY_BUCKETS.Route, { history: 10 });
  let firstRead: () => void = () => {};
  const firstReadDone = new Promise<void>((resolve) => (firstRead = resolve));
  /** the real reader, telling when the follower, not finding the announced revision, asked for the key's newest */
  class TellingReader extends KvReader {
    override async last(bucket: string, key: string) {
      const v = await super.last(bucket, key);
      firstRead();
      return v;
    }
  }
  let applied: (revision: number) => void = () => {};
  const appliedRevision = new Promise<number>((resolve) => (applied = resolve));
  const follower = new KvFollower<RoutePolicy>({
    nc: client,
    reader: new TellingReader(client),
    logger: pino({ level: "silent" }),
    bucket: POLICY_BUCKETS.Route,
    key: ">",
    check: (doc, key) => checkStoredPolicy("Route", key, doc) as { ok: true; value: RoutePolicy },
    onChange: (_key, value) => value && applied(value.revision),
    onRejected: () => undefined,
    resyncMs: 3_600_000, // so it is not the periodic check that finds the write
  });
  await follower.start();
  onFileEnd(() => follower.stop());
  const h = headers();
  h.set("Nats-Sequence", "1");
  client.publish(kvChangesSubject(POLICY_BUCKETS.Route, "pricing"), new Uint8Array(), { headers: h });
  await firstReadDone; // it found nothing stored yet: it must ask again
  const revision = await kv.put("pricing", JSON.stringify({ kind: "Route", service: "pricing", timeoutMs: 1_234 }));
  assert.equal(await appliedRevision, revision);
});

test("mapLimit keeps the items' order, never has more than the limit in flight, and reports each failure", async () => {
  let inFlight = 0;
  let most = 0;
  const settled = await mapLimit([1, 2, 3, 4, 5, 6, 7], 3, async (n) => {
    most = Math.max(most, ++inFlight);
    await new Promise((r) => setImmediate(r));
    inFlight--;
    if (n % 3 === 0) throw new Error(`no ${n}`);
    return n * 10;
  });
  assert.equal(most, 3);
  assert.deepEqual(
    settled.map((s) => (s.status === "fulfilled" ? s.value : (s.reason as Error).message)),
    [10, 20, "no 3", 40, 50, "no 6", 70],
  );
  await assert.rejects(mapLimitAll([1, 2, 3], 2, async (n) => (n === 2 ? Promise.reject(new Error("two")) : n)), /two/);
  assert.deepEqual(await mapLimitAll([], 4, async () => 1), []);
});
