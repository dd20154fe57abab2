// Secure mode against a real nats-server: identities from `mesh creds`, the
// generated auth.conf included by the server, real sidecars, control and
// apps. Every attack is made with nats.js directly, the way a compromised
// process holding one service's key would make it.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { connect, headers, nkeys, nkeyAuthenticator, type ConnectionOptions, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, type ConsumerConfig } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { type CredsResult, seedFile, writeCreds } from "../control/creds.ts";
import { authenticatorFromFile, POLICY_BUCKETS, REGISTRY_BUCKET, Wire, type RegistryEntry } from "../schemas/index.ts";
import { inboxPrefixFor } from "../schemas/subjects.ts";
import { echo, header, startApp, type TestApp } from "./helpers/apps.ts";
import { onFileEnd } from "./helpers/cleanup.ts";
import { startTestControl, type TestControl } from "./helpers/control.ts";
import { call, eventually, runMesh, startTestSidecar } from "./helpers/mesh.ts";
import { startNats, type NatsCluster } from "./helpers/nats.ts";

let nats: NatsCluster;
let creds: CredsResult;
let control: TestControl;
let pricingApp: TestApp;
let ordersApp: TestApp;
let frontendPort: number;
let ordersPort: number;
let pricingAdminPort: number;
let ordersInstance: string;

const seed = (identity: string) => seedFile(creds.dir, identity);

before(async () => {
  const dir = await mkdtemp(join(tmpdir(), "natsmesh-security-"));
  onFileEnd(() => rm(dir, { recursive: true, force: true }));
  creds = await writeCreds(join(dir, "creds"), ["frontend", "pricing", "orders"]);
  nats = await startNats({ include: [creds.authConf] });
  control = await startTestControl(nats.urls, undefined, { creds: seed("control") });
  pricingApp = await startApp();
  ordersApp = await startApp();
  const pricing = await startTestSidecar({ service: "pricing", app: pricingApp.url, nats: nats.urls, creds: seed("pricing") });
  const orders = await startTestSidecar({ service: "orders", app: ordersApp.url, nats: nats.urls, creds: seed("orders") });
  const frontend = await startTestSidecar({ service: "frontend", nats: nats.urls, creds: seed("frontend") });
  frontendPort = frontend.outbound.port;
  pricingAdminPort = pricing.admin.port;
  ordersInstance = orders.instance;
  ordersPort = orders.outbound.port;
});

/** A NATS connection holding `identity`'s key; `errors` collects what the server refused. */
/** Connects with `identity`'s key; a service's sidecar keeps its inboxes below `_INBOX.<service>`, as a real sidecar does. */
async function connectAs(identity: string, opts: Partial<ConnectionOptions> = {}) {
  const inbox = identity === "control" || identity === "admin" ? {} : { inboxPrefix: inboxPrefixFor(identity) };
  const nc = await connect({ servers: nats.urls, authenticator: await authenticatorFromFile(seed(identity)), noAsyncTraces: true, ...inbox, ...opts });
  onFileEnd(() => nc.close());
  const errors: string[] = [];
  void (async () => {
    for await (const s of nc.status()) if (s.type === "error") errors.push(String(s.error?.message));
  })();
  return { nc, errors };
}

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
    for (const subject of ["mesh.rpc.pricing._.orders", "mesh.rpc.pricing.v1.orders", `mesh.rpc.orders.~${ordersInstance}.pricing`]) {
      nc.publish(subject, "forged", { headers: rpcHeaders("POST", "/forged") });
      await eventually(async () => errors.some((e) => violation(subject).test(e)));
    }
    await assert.rejects(nc.request("mesh.rpc.pricing._.orders", "forged", { headers: rpcHeaders("POST", "/forged"), timeout: 1_000 }));
    // Nor may it take another's quota, log as another or report another's telemetry.
    for (const subject of ["mesh.ctl.v1.quota.pricing", "mesh.access.pricing.orders.outbound", "mesh.access.pricing.orders.inbound", "mesh.telemetry.pricing.i1"]) {
      nc.publish(subject, "{}");
      await eventually(async () => errors.some((e) => violation(subject).test(e)));
    }
    await sleep(200);
    assert.ok(!callers(pricingApp).some((c) => c.includes("/forged")), callers(pricingApp).join("\n"));
    assert.ok(!callers(ordersApp).some((c) => c.includes("/forged")), callers(ordersApp).join("\n"));
  });

  test("subscribing to another service's requests is refused, so its calls cannot be stolen", async () => {
    const { nc } = await connectAs("frontend");
    await refusedSubscription(nc, "mesh.rpc.pricing.>");
    await refusedSubscription(nc, "mesh.rpc.pricing._.*", "pricing");
    await refusedSubscription(nc, "mesh.rpc.>");
    const res = await call(frontendPort, "pricing", "/still-mine");
    assert.equal(res.statusCode, 200);
    await res.body.dump();
  });

  test("a provider's answers cannot be aimed at another service's requests", async () => {
    // allow_responses would let a client publish to the reply subject of any
    // message it receives, and it can send itself one with any reply subject.
    const { nc, errors } = await connectAs("pricing");
    for (const target of ["mesh.rpc.orders._.frontend", "mesh.ctl.v1.apply"]) {
      const sub = nc.subscribe("mesh.rpc.pricing._.pricing", { max: 1 });
      await nc.flush();
      nc.publish("mesh.rpc.pricing._.pricing", "", { reply: target });
      for await (const m of sub) m.respond(JSON.stringify({ documents: [{ kind: "Route", service: "orders", timeoutMs: 7 }] }), { headers: rpcHeaders("POST", "/reflected") });
      await eventually(async () => errors.some((e) => violation(target).test(e)));
    }
    await sleep(200);
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

describe("secure mode: a service cannot answer for another", () => {
  test(
    "a sidecar cannot slip its answer into another service's call",
    async () => {
      // Every sidecar may publish to _INBOX.> (to answer its callers), but it may subscribe only
      // below its own _INBOX.<service>, so it never learns another service's reply subjects;
      // and their last token is random, so it cannot guess them either.
      const { nc: orders, errors } = await connectAs("orders");
      orders.subscribe("_INBOX.frontend.>", { callback: () => undefined });
      await orders.flush().catch(() => undefined);
      await eventually(async () => errors.some((e) => /Permissions Violation for Subscription to "_INBOX.frontend.>"/.test(e)));
      pricingApp.handler = async (req, res) => {
        if (req.url === "/slow") await sleep(700);
        res.end("real");
      };
      try {
        const pending = call(frontendPort, "pricing", "/slow");
        await sleep(200);
        const forged = headers();
        forged.set(Wire.status, "200");
        for (let i = 0; i < 20; i++) orders.publish(`_INBOX.frontend.${i}.${i}`, "forged", { headers: forged });
        assert.equal(await (await pending).body.text(), "real");
      } finally {
        pricingApp.handler = echo;
      }
    },
  );
});

describe("secure mode: a sidecar reads policy but never writes it", () => {
  test("writing, deleting or purging a policy key is refused", async () => {
    const { nc } = await connectAs("frontend");
    const kvm = new Kvm(nc);
    for (const bucket of Object.values(POLICY_BUCKETS)) {
      const kv = await kvm.open(bucket);
      await assert.rejects(kv.put("pricing", "{}"), violation(`$KV.${bucket}.pricing`));
      await assert.rejects(kv.delete("pricing"), violation(`$KV.${bucket}.pricing`));
      await assert.rejects(kv.purge("pricing"));
    }
    const jsm = await jetstreamManager(nc, { checkAPI: false });
    await assert.rejects(jsm.streams.delete("KV_mesh_routes"));
    await assert.rejects(jsm.streams.purge("KV_mesh_routes"));
    await assert.rejects(new Kvm(nc).create("mesh_routes_shadow"));
    assert.equal(((await routesNow()).find((r) => (r as { service: string }).service === "pricing") as { timeoutMs?: number })?.timeoutMs, 1234);
  });

  test("it writes its own registry entries only", async () => {
    const { nc } = await connectAs("frontend");
    const kv = await new Kvm(nc).open(REGISTRY_BUCKET);
    const now = new Date().toISOString();
    const entry: RegistryEntry = { service: "frontend", version: "v1", instance: "probe", app: "http://127.0.0.1:1", state: "draining", host: "test", startedAt: now, heartbeatAt: now };
    await kv.put("frontend.probe", JSON.stringify(entry));
    await kv.delete("frontend.probe");
    await assert.rejects(kv.put("pricing.fake", "{}"), violation("$KV.mesh_registry.pricing.fake"));
  });
});

describe("secure mode: NATS and JetStream cannot be used as a deputy", () => {
  /** Stores a request-shaped message under the attacker's own registry key. */
  /** The planted body is a valid `mesh apply` request for a Route of `path`'s service name, e.g. `deputy-direct`. */
  async function plant(nc: NatsConnection, key: string, path: string): Promise<void> {
    const body = JSON.stringify({ documents: [{ kind: "Route", service: path.slice(1), timeoutMs: 7 }] });
    await jetstream(nc).publish(`$KV.${REGISTRY_BUCKET}.${key}`, body, { headers: rpcHeaders("POST", path) });
  }
  const served = (app: TestApp, path: string) => callers(app).filter((c) => c.endsWith(` ${path}`));
  /** Whether control applied the document planted with `path` (waits long enough for it to). */
  async function obeyed(path: string): Promise<boolean> {
    await sleep(1_000);
    return (await routesNow()).some((r) => (r as { service: string }).service === path.slice(1));
  }

  test("a push consumer delivering the sidecar's own stream data into other subjects is not served", async () => {
    const { nc } = await connectAs("frontend");
    const jsm = await jetstreamManager(nc, { checkAPI: false });
    // Deliveries keep their stored subject: the attacker names its key after the caller or verb it wants.
    const aims: Array<[key: string, deliver: string, group?: string]> = [
      ["frontend.orders", "mesh.rpc.pricing._.orders", "pricing"],
      ["frontend.orders", `mesh.rpc.orders.~${ordersInstance}.orders`],
      ["frontend.apply", "mesh.ctl.v1.apply", "mesh-control"],
    ];
    for (const [i, [key, deliver, group]] of aims.entries()) {
      await plant(nc, key, "/deputy-wildcard");
      const config: Partial<ConsumerConfig> = { name: `deputy${i}`, deliver_subject: deliver, filter_subject: `$KV.${REGISTRY_BUCKET}.${key}` };
      await jsm.consumers.add(`KV_${REGISTRY_BUCKET}`, { ...config, ...(group ? { deliver_group: group } : {}) });
    }
    assert.equal(await obeyed("/deputy-wildcard"), false);
    assert.deepEqual([...served(pricingApp, "/deputy-wildcard"), ...served(ordersApp, "/deputy-wildcard")], []);
  });

  test(
    "...even once something subscribes to the deliver subject literally",
    async () => {
      // nats-server 2.9 starts a push consumer only on literal interest; every mesh
      // subscription is a wildcard today, but one literal subscriber is enough.
      const { nc } = await connectAs("frontend");
      const { nc: bystander } = await connectAs("control");
      const jsm = await jetstreamManager(nc, { checkAPI: false });
      const aims: Array<[key: string, deliver: string]> = [["frontend.orders", "mesh.rpc.pricing._.orders"], ["frontend.apply", "mesh.ctl.v1.apply"]];
      for (const [i, [key, deliver]] of aims.entries()) {
        bystander.subscribe(deliver, { max: 1, callback: () => {} });
        await bystander.flush();
        await plant(nc, key, "/deputy-literal");
        await jsm.consumers.add(`KV_${REGISTRY_BUCKET}`, { name: `literal${i}`, deliver_subject: deliver, filter_subject: `$KV.${REGISTRY_BUCKET}.${key}` });
      }
      const controlObeyed = await obeyed("/deputy-literal");
      await Promise.all([0, 1].map((i) => jsm.consumers.delete(`KV_${REGISTRY_BUCKET}`, `literal${i}`)));
      assert.deepEqual(served(pricingApp, "/deputy-literal"), []);
      assert.equal(controlObeyed, false, "control applied a document a sidecar planted");
    },
  );

  test("a JetStream answer aimed at a provider is not served", async () => {
    const { nc } = await connectAs("frontend");
    await plant(nc, "frontend.direct", "/deputy-direct");
    nc.publish(`$JS.API.DIRECT.GET.KV_${REGISTRY_BUCKET}.$KV.${REGISTRY_BUCKET}.frontend.direct`, "", { reply: "mesh.rpc.pricing._.orders" });
    await sleep(500);
    assert.deepEqual(served(pricingApp, "/deputy-direct"), []);
  });

  test(
    "a JetStream answer aimed at control is not obeyed",
    async () => {
      const { nc } = await connectAs("frontend");
      await plant(nc, "frontend.direct2", "/deputy-control");
      nc.publish(`$JS.API.DIRECT.GET.KV_${REGISTRY_BUCKET}.$KV.${REGISTRY_BUCKET}.frontend.direct2`, "", { reply: "mesh.ctl.v1.apply" });
      assert.equal(await obeyed("/deputy-control"), false, "control applied a document a sidecar planted");
    },
  );
});

describe("secure mode: what a sidecar writes is not trusted", () => {
  test(
    "registry entries are checked: a malformed one, or one naming another service, breaks nothing and is left out",
    async () => {
      const { nc } = await connectAs("frontend");
      const kv = await new Kvm(nc).open(REGISTRY_BUCKET);
      const now = new Date().toISOString();
      const posing: RegistryEntry = { service: "pricing", version: "v9", instance: "fake", app: "http://127.0.0.1:1", state: "ready", host: "x", startedAt: now, heartbeatAt: now };
      await kv.put("frontend.posing", JSON.stringify(posing));
      await kv.put("frontend.garbage", JSON.stringify({ hello: 1 }));
      const r = await runMesh(["services", "--nats", nats.urls.join(","), "--creds", seed("admin")]);
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stdout, /v9/);
      await control.store.apply({ documents: [{ kind: "Route", service: "catalog", timeoutMs: 900 }] });
    },
  );
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

  test("it cannot call services, write buckets or take quota", async () => {
    const { nc, errors } = await connectAs("admin");
    for (const subject of ["mesh.rpc.pricing._.frontend", "mesh.ctl.v1.quota.pricing", "$KV.mesh_routes.pricing"]) {
      nc.publish(subject, "{}");
      await eventually(async () => errors.some((e) => violation(subject).test(e)));
    }
    await refusedSubscription(nc, "mesh.rpc.>");
  });
});
