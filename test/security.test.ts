// Secure mode against a real nats-server: identities from `mesh creds` (two
// accounts: control's with JetStream, the sidecars' without), the generated
// auth.conf included by the server, real sidecars, control and apps. Every
// attack is made with nats.js directly, the way a compromised process holding
// one service's key would make it. Verdicts wait on barriers: a later,
// legitimate event on the same path, after which the forbidden one would
// have shown.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { before, describe, test } from "node:test";
import { connect, headers, nkeys, nkeyAuthenticator, type ConnectionOptions, type NatsConnection } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { type CredsResult, seedFile, writeCreds } from "../local/creds.ts";
import { LEASE_BUCKET } from "../control/telemetry-lease.ts";
import { ACCESS_STREAM, POLICY_BUCKETS, QUOTA_COUNTER_BUCKETS, REGISTRY_BUCKET, Wire, keysSubject, kvStream } from "../schemas/index.ts";
import { echo, header, startApp, type TestApp } from "./helpers/apps.ts";
import { tempDir } from "./helpers/cleanup.ts";
import { connectAs as connectAsIdentity } from "./helpers/secure.ts";
import { startTestControl, type TestControl } from "./helpers/control.ts";
import { captureLogs, type CapturedLogs } from "./helpers/logs.ts";
import { call, eventually, runMesh, startTestSidecar } from "./helpers/mesh.ts";
import { startNats, type NatsCluster } from "./helpers/nats.ts";

let nats: NatsCluster;
let creds: CredsResult;
let control: TestControl;
let pricingApp: TestApp;
let ordersApp: TestApp;
let frontendPort: number;
/** the frontend sidecar's own connection, to flush as a barrier */
let frontendNc: NatsConnection;
let ordersPort: number;
let pricingAdminPort: number;
let pricingLogs: CapturedLogs;
let pricingInstance: string;

const seed = (identity: string) => seedFile(creds.dir, identity);

before(async () => {
  const dir = await tempDir("natsmesh-security-");
  creds = await writeCreds(join(dir, "creds"), ["frontend", "pricing", "orders"]);
  nats = await startNats({ include: [creds.authConf] });
  control = await startTestControl(nats.urls, undefined, { creds: seed("control") });
  pricingApp = await startApp();
  ordersApp = await startApp();
  pricingLogs = captureLogs();
  const pricing = await startTestSidecar({ service: "pricing", app: pricingApp.url, nats: nats.urls, creds: seed("pricing") }, pricingLogs.logger);
  const orders = await startTestSidecar({ service: "orders", app: ordersApp.url, nats: nats.urls, creds: seed("orders") });
  const frontend = await startTestSidecar({ service: "frontend", nats: nats.urls, creds: seed("frontend") });
  frontendPort = frontend.outbound.port;
  frontendNc = frontend.nc;
  pricingAdminPort = pricing.admin.port;
  pricingInstance = pricing.instance;
  ordersPort = orders.outbound.port;
});

/** Connects with `identity`'s key (test/helpers/secure.ts). */
const connectAs = (identity: string, opts: Partial<ConnectionOptions> = {}) => connectAsIdentity(nats.urls, creds.dir, identity, opts);

/** Requests an application received through the mesh (its sidecar's health probes carry no caller). */
const meshCalls = (app: TestApp) => app.seen.filter((r) => header(r, "x-mesh-caller") !== undefined);
const callers = (app: TestApp) => meshCalls(app).map((r) => `${header(r, "x-mesh-caller")} ${r.method} ${r.url}`);

/** A request as a caller sidecar sends it. */
function rpcHeaders(method: string, path: string) {
  const h = headers();
  h.set(Wire.method, method);
  h.set(Wire.path, path);
  h.set(Wire.deadline, String(Date.now() + 5_000));
  return h;
}

/** A subscription the server refused ends with the violation (nats.js resolves `closed` with it). */
async function refusedSubscription(nc: NatsConnection, subject: string, queue?: string): Promise<void> {
  const ended = await nc.subscribe(subject, queue ? { queue } : {}).closed;
  assert.match(String((ended as Error | undefined)?.message), violation(subject));
}

const violation = (subject: string) => new RegExp(`Permissions Violation for (Publish|Subscription) to "${subject.replace(/[.$*>]/g, "\\$&")}"`);

/** Publishes and waits until the server has said it refused the subject. */
async function refused(nc: NatsConnection, errors: string[], subject: string, data = "{}", opts: Parameters<NatsConnection["publish"]>[2] = {}): Promise<void> {
  nc.publish(subject, data, opts);
  await eventually(async () => errors.some((e) => violation(subject).test(e)));
}

/**
 * The stream sequence of the last message stored on `subject` (0: none), as
 * the stream itself says after everything sent to it before: control
 * publishes with an expectation that cannot hold, which stores nothing, and
 * the refusal names the subject's last sequence. The barrier of every "was
 * anything written" verdict below.
 */
async function lastStoredOn(subject: string): Promise<number> {
  const js = jetstream(control.nc);
  const err = await js.publish(subject, "", { expect: { lastSubjectSequence: Number.MAX_SAFE_INTEGER } }).then(
    () => assert.fail(`a barrier publish on ${subject} was stored`),
    (e: Error) => e,
  );
  const m = /wrong last sequence: (\d+)/.exec(err.message);
  assert.ok(m, err.message);
  return Number(m[1]);
}

async function routesNow(): Promise<unknown[]> {
  return (await control.store.get({ kind: "Route" })).items.map((i) => i.document);
}

describe("secure mode: who may connect", () => {
  test("a client without credentials is refused", async () => {
    await assert.rejects(connect({ servers: nats.urls, reconnect: false }), /Authorization Violation/);
  });

  test("a key that mesh creds did not make is refused", async () => {
    const stranger = nkeyAuthenticator(nkeys.createUser().getSeed());
    await assert.rejects(connect({ servers: nats.urls, reconnect: false, authenticator: stranger }), /Authorization Violation/);
  });
});

describe("secure mode: the mesh works, with identity from NATS", () => {
  test("a call goes through; the provider sees the caller NATS vouched for, never the header sent", async () => {
    let res;
    await eventually(async () => {
      res = await call(frontendPort, "pricing", "/whoami", { headers: { "x-mesh-caller": "orders" } });
      await res.body.dump();
      return res.statusCode === 200;
    });
    assert.deepEqual(callers(pricingApp).at(-1), "frontend GET /whoami");
  });

  test("sidecars read policy live and register themselves", async () => {
    const { applied } = await control.store.apply({ documents: [{ kind: "Route", service: "pricing", timeoutMs: 1234 }] });
    await eventually(async () => {
      const config = (await (await fetch(`http://127.0.0.1:${pricingAdminPort}/config`)).json()) as { policies: Array<{ key: string; revision: number }> };
      return config.policies.some((p) => p.key === "pricing" && p.revision === applied[0]!.revision);
    });
    await eventually(async () => {
      const { services } = await control.store.services();
      return ["pricing", "orders"].every((name) => services.some((s) => s.service === name && s.ready === 1));
    });
  });
});

describe("secure mode: a service cannot pass for another", () => {
  test("publishing a request as another caller is refused and never delivered", async () => {
    const { nc, errors } = await connectAs("frontend");
    for (const subject of ["mesh.rpc.pricing._.orders", "mesh.rpc.pricing.v1.orders", `mesh.rpc.pricing.~${pricingInstance}.orders`]) {
      await refused(nc, errors, subject, "forged", { headers: rpcHeaders("POST", "/forged"), reply: `_INBOX.frontend.${randomBytes(16).toString("base64url")}` });
    }
    // Nor may it take another's quota, register, log or report as another.
    for (const subject of ["mesh.ctl.v1.quota.pricing", "mesh.ctl.v1.register.pricing", "mesh.access.pricing.orders.outbound", "mesh.access.pricing.orders.inbound", "mesh.telemetry.pricing.i1"]) {
      await refused(nc, errors, subject);
    }
    // Barrier: a legitimate call on the same path after the forgeries.
    const res = await call(ordersPort, "pricing", "/after-forgeries");
    assert.equal(res.statusCode, 200);
    await res.body.dump();
    assert.ok(!callers(pricingApp).some((c) => c.includes("/forged")), callers(pricingApp).join("\n"));
  });

  test("subscribing to another service's requests or inbox is refused, so its calls and answers cannot be stolen", async () => {
    const { nc } = await connectAs("frontend");
    await refusedSubscription(nc, "mesh.rpc.pricing.>");
    await refusedSubscription(nc, "mesh.rpc.pricing._.*", "pricing");
    await refusedSubscription(nc, "mesh.rpc.>");
    await refusedSubscription(nc, "_INBOX.pricing.>");
    await refusedSubscription(nc, "_INBOX.>");
    const res = await call(frontendPort, "pricing", "/still-mine");
    assert.equal(res.statusCode, 200);
    await res.body.dump();
  });

  test("a sidecar cannot publish to another service's requests or to control's own verbs", async () => {
    const { nc, errors } = await connectAs("pricing");
    await refused(nc, errors, "mesh.rpc.orders._.frontend", "", { headers: rpcHeaders("POST", "/reflected") });
    await refused(nc, errors, "mesh.ctl.v1.apply", JSON.stringify({ documents: [{ kind: "Route", service: "orders", timeoutMs: 7 }] }));
    await control.store.apply({ documents: [{ kind: "Route", service: "barrier-a", timeoutMs: 5 }] });
    assert.ok(!callers(ordersApp).some((c) => c.includes("/reflected")));
    assert.ok(!(await routesNow()).some((r) => (r as { service: string }).service === "orders"));
  });
});

describe("secure mode: authorization by the caller NATS vouched for", () => {
  test("allow and deny by caller, method and path; a forged caller header changes nothing", async () => {
    const document = { kind: "Authz", service: "pricing", default: "deny", rules: [{ from: ["frontend"], methods: ["GET"], paths: ["/prices/*"] }] };
    await control.store.apply({ documents: [document] });
    try {
      const status = async (port: number, method: "GET" | "POST", path: string, forged?: string) => {
        const res = await call(port, "pricing", path, { method, headers: forged ? { "x-mesh-caller": forged } : {} });
        await res.body.dump();
        return res.statusCode;
      };
      await eventually(async () => (await status(frontendPort, "GET", "/other")) === 403);
      assert.equal(await status(frontendPort, "GET", "/prices/latte"), 200);
      assert.equal(await status(frontendPort, "POST", "/prices/latte"), 403);
      assert.equal(await status(ordersPort, "GET", "/prices/latte"), 403);
      assert.equal(await status(ordersPort, "GET", "/prices/latte", "frontend"), 403);
    } finally {
      await control.store.delete({ kind: "Authz", service: "pricing" });
    }
  });
});

describe("secure mode: no identity can answer a call that was not sent to it", () => {
  test("a provider that sees its callers' reply subjects cannot answer their calls to other services", async () => {
    // The identity `orders` serves its own service honestly and watches every request to it.
    const { nc: orders, errors } = await connectAs("orders");
    const seen: string[] = [];
    orders.subscribe("mesh.rpc.orders.>", { callback: (_e, m) => void (m.reply && seen.push(m.reply)) });
    await orders.flush();
    for (let i = 0; i < 4; i++) {
      const res = await call(frontendPort, "orders", `/learn-${i}`);
      await res.body.dump();
    }
    await eventually(async () => seen.length >= 4);
    assert.ok(seen.every((r) => /^_INBOX\.frontend\.[A-Za-z0-9_-]{22}$/.test(r)), seen.join(" "));

    // The calls stay pending until every forgery has reached the caller's sidecar: the barrier.
    let forgeriesDelivered!: () => void;
    const delivered = new Promise<void>((resolve) => (forgeriesDelivered = resolve));
    pricingApp.handler = async (req, res) => {
      if (req.url === "/slow") await delivered;
      res.end("real");
    };
    try {
      const slowSeen = meshCalls(pricingApp).filter((r) => r.url === "/slow").length;
      const pending = [0, 1, 2].map(() => call(frontendPort, "pricing", "/slow").then(async (r) => ({ status: r.statusCode, body: await r.body.text() })));
      await eventually(async () => meshCalls(pricingApp).filter((r) => r.url === "/slow").length === slowSeen + 3);
      const forged = headers();
      forged.set(Wire.status, "200");
      const tokenOf = (reply: string) => reply.split(".")[2]!;
      // What it may publish: inbox subjects signed as itself. Guesses next to every token it saw, and random ones.
      for (const reply of seen) for (const guess of [tokenOf(reply), `${tokenOf(reply)}A`, randomBytes(16).toString("base64url")]) {
        orders.publish(`_INBOX.frontend.${guess}.orders`, "forged", { headers: forged });
      }
      // What it may not: answering as pricing, or as the server on a bare reply subject.
      await refused(orders, errors, `_INBOX.frontend.${tokenOf(seen[0]!)}.pricing`, "forged", { headers: forged });
      await refused(orders, errors, `_INBOX.frontend.${tokenOf(seen[0]!)}`, "forged", { headers: forged });
      // The server has handled every forgery (a flush after them), and the caller's sidecar has read what it was sent.
      await orders.flush();
      await frontendNc.flush();
      forgeriesDelivered();
      for (const r of await Promise.all(pending)) assert.deepEqual(r, { status: 200, body: "real" });
    } finally {
      forgeriesDelivered();
      pricingApp.handler = echo;
    }
  });
});

describe("secure mode: no sidecar can cause a write to any bucket or stream", () => {
  /** Every bucket's stream and MESH_ACCESS, with a subject in it nobody writes. */
  const victims: Array<[stream: string, subject: string]> = [
    ...[...Object.values(POLICY_BUCKETS), ...Object.values(QUOTA_COUNTER_BUCKETS), LEASE_BUCKET].map((b) => [kvStream(b), `$KV.${b}.victim`] as [string, string]),
    [kvStream(REGISTRY_BUCKET), `$KV.${REGISTRY_BUCKET}.victim.i1`],
    [ACCESS_STREAM, "mesh.access.victim.frontend.inbound"],
  ];

  test("direct-get answers bounced at every bucket and at MESH_ACCESS are not stored, with or without a rollup header", async () => {
    const { nc, errors } = await connectAs("frontend");
    // A stored message carrying `Nats-Rollup: sub` (a KV purge marker), to bounce as well.
    const scratch = await new Kvm(control.nc).open(POLICY_BUCKETS.Route);
    await scratch.put("scratch", "{}");
    await scratch.purge("scratch");
    const marker = (await scratch.get("scratch"))!.revision;
    await control.store.apply({ documents: [{ kind: "Authz", service: "pricing", default: "allow" }] });
    const pricingAuthz = await lastStoredOn(`$KV.${POLICY_BUCKETS.Authz}.pricing`);

    const get = (bucket: string, body: object, reply: string) => nc.publish(`$JS.mesh.API.DIRECT.GET.${kvStream(bucket)}`, JSON.stringify(body), { reply });
    for (const [, subject] of victims) {
      get(POLICY_BUCKETS.Authz, { last_by_subj: `$KV.${POLICY_BUCKETS.Authz}.pricing` }, subject);
      get(POLICY_BUCKETS.Route, { seq: marker }, subject);
    }
    get(POLICY_BUCKETS.Route, { seq: marker }, `$KV.${POLICY_BUCKETS.Authz}.pricing`);
    // The same in the form the issue reproduced it: refused outright in the sidecars' account.
    await refused(nc, errors, `$JS.API.DIRECT.GET.KV_${POLICY_BUCKETS.Authz}.$KV.${POLICY_BUCKETS.Authz}.pricing`, "", { reply: `$KV.${POLICY_BUCKETS.Authz}.orders` });
    // Barrier 1: a legitimate direct get on the same stream is answered after the bounced ones.
    await nc.request(`$JS.mesh.API.DIRECT.GET.${kvStream(POLICY_BUCKETS.Route)}`, JSON.stringify({ seq: marker }));
    // Barrier 2: each stream, asked after that, has stored nothing there.
    for (const [stream, subject] of victims) assert.equal(await lastStoredOn(subject), 0, `${stream}: ${subject}`);
    assert.equal(await lastStoredOn(`$KV.${POLICY_BUCKETS.Authz}.pricing`), pricingAuthz, "the rollup marker erased nothing");
    await control.store.delete({ kind: "Authz", service: "pricing" });
  });

  test("a sidecar cannot create a consumer, so none can deliver into $KV.…", async () => {
    const { nc, errors } = await connectAs("frontend");
    const config = JSON.stringify({ stream_name: kvStream(REGISTRY_BUCKET), config: { deliver_subject: `$KV.${POLICY_BUCKETS.Authz}.victim2`, filter_subject: `$KV.${REGISTRY_BUCKET}.>` } });
    await refused(nc, errors, `$JS.API.CONSUMER.CREATE.${kvStream(REGISTRY_BUCKET)}`, config);
    await refused(nc, errors, `$JS.mesh.API.CONSUMER.CREATE.${kvStream(REGISTRY_BUCKET)}`, config);
    await refused(nc, errors, `$JS.API.CONSUMER.DURABLE.CREATE.${kvStream(REGISTRY_BUCKET)}.evil`, config);
    assert.equal(await lastStoredOn(`$KV.${POLICY_BUCKETS.Authz}.victim2`), 0);
  });

  test("writing, deleting, purging or rolling up a bucket is refused; so is any stream management", async () => {
    const { nc, errors } = await connectAs("frontend");
    const rollup = headers();
    rollup.set("Nats-Rollup", "all");
    await refused(nc, errors, `$KV.${REGISTRY_BUCKET}.frontend.x`, "{}", { headers: rollup });
    for (const bucket of Object.values(POLICY_BUCKETS)) await refused(nc, errors, `$KV.${bucket}.pricing`);
    for (const api of ["STREAM.DELETE", "STREAM.PURGE", "STREAM.UPDATE", "STREAM.CREATE"]) {
      await refused(nc, errors, `$JS.API.${api}.${kvStream(REGISTRY_BUCKET)}`);
      await refused(nc, errors, `$JS.mesh.API.${api}.${kvStream(REGISTRY_BUCKET)}`);
    }
    const entry = await new Kvm(control.nc).open(REGISTRY_BUCKET).then((kv) => kv.get(`pricing.${pricingInstance}`));
    assert.equal(entry?.operation, "PUT", "pricing is still registered");
    assert.equal(((await routesNow()).find((r) => (r as { service: string }).service === "pricing") as { timeoutMs?: number })?.timeoutMs, 1234);
  });

  test("a replayed or reflected announcement of an old policy revision changes nothing", async () => {
    const { nc, errors } = await connectAs("frontend");
    const doc = (rules: unknown[]) => ({ kind: "Authz", service: "pricing", default: "deny", rules });
    const revs: number[] = [];
    for (const rules of [[{ from: ["frontend"], paths: ["/replay"] }], [{ from: ["orders"] }]]) {
      revs.push((await control.store.apply({ documents: [doc(rules)] })).applied[0]!.revision);
    }
    const [allowed, denied] = revs as [number, number];
    const appliedOf = () => pricingLogs.lines.filter((l) => l.msg === "policy applied" && l.bucket === POLICY_BUCKETS.Authz && l.key === "pricing").map((l) => l.revision as number);
    await eventually(async () => appliedOf().includes(denied));
    // Replayed: refused. Reflected: a direct get of the old revision answered onto the change subject.
    await refused(nc, errors, "mesh.kv.mesh_authz.pricing");
    nc.publish(`$JS.mesh.API.DIRECT.GET.${kvStream(POLICY_BUCKETS.Authz)}`, JSON.stringify({ seq: allowed }), { reply: "mesh.kv.mesh_authz.pricing" });
    nc.publish(`$JS.mesh.API.DIRECT.GET.${kvStream(POLICY_BUCKETS.Authz)}`, JSON.stringify({ seq: allowed }), { reply: "mesh.kv.mesh_authz.orders" });
    // Reflected: another key's newer revision, which carries its value, onto pricing's change subject.
    const other = (await control.store.apply({ documents: [{ kind: "Authz", service: "orders", default: "allow" }] })).applied[0]!.revision;
    nc.publish(`$JS.mesh.API.DIRECT.GET.${kvStream(POLICY_BUCKETS.Authz)}`, JSON.stringify({ seq: other }), { reply: "mesh.kv.mesh_authz.pricing" });
    // Barrier: a later revision, applied by the same sidecar after the reflections reached it.
    const last = (await control.store.apply({ documents: [doc([{ from: ["orders"] }, { from: ["nobody"] }])] })).applied[0]!.revision;
    await eventually(async () => appliedOf().includes(last));
    assert.deepEqual(appliedOf().filter((r) => r >= allowed), [allowed, denied, last], "each revision applied once, in order");
    const rejected = pricingLogs.lines.filter((l) => /policy rejected/.test(String(l.msg)) && l.key === "pricing");
    assert.deepEqual(rejected, [], "orders' document was never taken for pricing's");
    await control.store.delete({ kind: "Authz", service: "orders" });
    const res = await call(frontendPort, "pricing", "/replay");
    assert.equal(res.statusCode, 403);
    await res.body.dump();
    await control.store.delete({ kind: "Authz", service: "pricing" });
  });

  test("JetStream answers aimed at a provider or at control are neither served nor obeyed", async () => {
    const { nc } = await connectAs("frontend");
    await control.store.apply({ documents: [{ kind: "Route", service: "deputy", timeoutMs: 7 }] });
    const get = (reply: string) => nc.publish(`$JS.mesh.API.DIRECT.GET.${kvStream(POLICY_BUCKETS.Route)}`, JSON.stringify({ last_by_subj: `$KV.${POLICY_BUCKETS.Route}.deputy` }), { reply });
    get("mesh.rpc.pricing._.orders");
    get("mesh.ctl.v1.apply");
    get("mesh.ctl.v1.delete");
    get("mesh.ctl.v1.register.frontend");
    await nc.request(`$JS.mesh.API.DIRECT.GET.${kvStream(POLICY_BUCKETS.Route)}`, JSON.stringify({ last_by_subj: `$KV.${POLICY_BUCKETS.Route}.deputy` }));
    // Barrier: a real call from orders to pricing and a real control request, both after the reflections.
    const res = await call(ordersPort, "pricing", "/after-reflections");
    await res.body.dump();
    assert.equal((await control.store.get({ kind: "Route", service: "deputy" })).items.length, 1, "not deleted");
    assert.deepEqual(callers(pricingApp).filter((c) => c.startsWith("orders GET /") && !c.includes("/after")), [], "nothing served from a JetStream answer");
  });
});

describe("secure mode: registration goes through control, which checks it", () => {
  test("an entry for another service, or a malformed one, is refused and never listed", async () => {
    const { nc } = await connectAs("frontend");
    const now = new Date().toISOString();
    const ask = async (body: unknown) => (await nc.request("mesh.ctl.v1.register.frontend", JSON.stringify(body), { timeout: 2_000 })).json<{ ok: boolean }>();
    const posing = { service: "pricing", version: "v9", instance: "fake", app: "http://127.0.0.1:1", state: "ready", host: "x", startedAt: now, heartbeatAt: now };
    assert.equal((await ask({ entry: posing })).ok, false);
    assert.equal((await ask({ entry: { hello: 1 } })).ok, false);
    assert.equal((await ask({ entry: { ...posing, service: "frontend", instance: "a.b" } })).ok, false);
    assert.equal((await ask({ remove: `pricing.${pricingInstance}` })).ok, false);
    const r = await runMesh(["services", "--nats", nats.urls.join(","), "--creds", seed("admin")]);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /v9|fake/);
    assert.match(r.stdout, /pricing/);
  });
});

describe("secure mode: listing keys through control (the keys verb)", () => {
  const askKeys = async (nc: NatsConnection, service: string, body: unknown) =>
    (await nc.request(keysSubject(service), JSON.stringify(body), { timeout: 5_000 })).json<{ ok: boolean; keys?: string[]; source?: string; error?: { code: string; problems?: Array<{ path: string }> } }>();

  test("a sidecar lists the keys of the buckets it may read, on its own subject", async () => {
    const { nc } = await connectAs("frontend");
    const reply = await askKeys(nc, "frontend", { bucket: POLICY_BUCKETS.Route });
    assert.equal(reply.ok, true, JSON.stringify(reply));
    assert.ok(reply.keys?.includes("pricing"), JSON.stringify(reply));
    assert.equal(reply.source, "home");
  });

  test("no other bucket or stream: quota counters, the lease, the access log are refused, and no field names a stream", async () => {
    const { nc } = await connectAs("frontend");
    // Not vacuous: the lease holds a key (which control replica exposes mesh-wide metrics) a sidecar must not list.
    const jsm = await jetstream(control.nc).jetstreamManager();
    assert.ok(Object.keys((await jsm.streams.info(kvStream(LEASE_BUCKET), { subjects_filter: ">" })).state.subjects ?? {}).length > 0);
    for (const bucket of [...Object.values(QUOTA_COUNTER_BUCKETS), LEASE_BUCKET, ACCESS_STREAM, kvStream(POLICY_BUCKETS.Route)]) {
      const reply = await askKeys(nc, "frontend", { bucket });
      assert.equal(reply.ok, false, bucket);
      assert.equal(reply.error?.code, "bad_request", bucket);
      assert.deepEqual(reply.error?.problems?.map((p) => p.path), ["bucket"], bucket);
    }
    for (const body of [{ bucket: POLICY_BUCKETS.Route, stream: ACCESS_STREAM }, { bucket: POLICY_BUCKETS.Route, filter: `$KV.${LEASE_BUCKET}.>` }]) {
      assert.equal((await askKeys(nc, "frontend", body)).error?.code, "bad_request", JSON.stringify(body));
    }
  });

  test("a sidecar cannot ask on another service's subject", async () => {
    const { nc, errors } = await connectAs("frontend");
    await refused(nc, errors, keysSubject("pricing"), JSON.stringify({ bucket: POLICY_BUCKETS.Route }));
    await assert.rejects(nc.request(keysSubject("pricing"), JSON.stringify({ bucket: POLICY_BUCKETS.Route }), { timeout: 1_000 }));
    // The barrier: the same connection is still served on its own subject.
    assert.equal((await askKeys(nc, "frontend", { bucket: POLICY_BUCKETS.Route })).ok, true);
  });
});

describe("secure mode: the admin identity talks to control only", () => {
  test("mesh get, with --creds or NATS_CREDS, goes through control; without a key it is refused", async () => {
    const url = nats.urls.join(",");
    let r = await runMesh(["get", "routes", "pricing", "--nats", url, "--creds", seed("admin")]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /timeoutMs: 1234/);
    r = await runMesh(["services", "-o", "json", "--nats", url], { env: { NATS_CREDS: seed("admin") } });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /pricing/);
    r = await runMesh(["services", "--nats", url]);
    assert.equal(r.code, 3);
    assert.match(r.stderr, /Authorization Violation/);
  });

  test("it cannot call services, write buckets, take quota, register, list keys as a sidecar or use JetStream", async () => {
    const { nc, errors } = await connectAs("admin");
    for (const subject of ["mesh.rpc.pricing._.frontend", "mesh.ctl.v1.quota.pricing", "mesh.ctl.v1.register.pricing", "mesh.ctl.v1.keys.pricing", "$KV.mesh_routes.pricing", "$JS.mesh.API.STREAM.INFO.KV_mesh_routes", "_INBOX.frontend.x.admin"]) {
      await refused(nc, errors, subject);
    }
    await refusedSubscription(nc, "mesh.rpc.>");
    await refusedSubscription(nc, "_INBOX.control.>");
  });
});
