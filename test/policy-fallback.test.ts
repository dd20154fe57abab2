// A bad policy is never applied and a good one is never forgotten: sidecars
// that start while the newest value in KV is invalid run on the newest valid
// revision in history, `mesh get` says so, and authorization fails closed.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { controlRequest } from "../cli/client.ts";
import pino from "pino";
import { POLICY_BUCKETS, checkStoredPolicy, kvStream, type AuthzPolicy } from "../schemas/index.ts";
import { KvFollower, KvReader } from "../sidecar/index.ts";
import { onFileEnd } from "./helpers/cleanup.ts";
import { startApp } from "./helpers/apps.ts";
import { startTestControl } from "./helpers/control.ts";
import { captureLogs } from "./helpers/logs.ts";
import { call, eventually, runMesh, startTestSidecar } from "./helpers/mesh.ts";
import { connectClient, startNats, withNats, type NatsCluster } from "./helpers/nats.ts";

let nats: NatsCluster;
let nc: NatsConnection;

before(async () => {
  nats = await startNats();
  await startTestControl(nats.urls);
  nc = await connectClient(nats.urls);
  for (const version of ["v1", "v2"]) {
    const app = await startApp((_req, res) => void res.end(version));
    await startTestSidecar({ service: "pricing", version, app: app.url, nats: nats.urls });
  }
});

/** Writes a value straight into KV, past control's validation: what a mistake or a bypass leaves. */
async function writeRaw(bucket: string, key: string, value: string): Promise<number> {
  return (await new Kvm(nc).open(bucket)).put(key, value);
}

async function configOf(adminPort: number) {
  return (await (await fetch(`http://127.0.0.1:${adminPort}/config`)).json()) as {
    policies: Array<{ bucket: string; key: string; revision: number }>;
    rejectedPolicies: Array<{ bucket: string; key: string; revision: number; problems: string[] }>;
  };
}

async function bodiesOf(port: number, service: string, n = 10): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) {
    const res = await call(port, service, "/");
    seen.add(`${res.statusCode} ${await res.body.text()}`);
  }
  return seen;
}

describe("a sidecar that starts while the newest value is invalid", () => {
  test("runs on the newest valid revision in history; /config and mesh get say which is in force and which was rejected", async () => {
    const { applied } = await controlRequest(nc, "apply", { documents: [{ kind: "Route", service: "pricing", rules: [{ backends: [{ version: "v2" }] }] }] });
    const good = applied[0]!.revision;
    const bad = await writeRaw(POLICY_BUCKETS.Route, "pricing", JSON.stringify({ kind: "Route", service: "pricing", rules: [{ backends: [{ version: "v1", weight: -1 }] }] }));

    const logs = captureLogs();
    const caller = await startTestSidecar({ service: "latecomer", nats: nats.urls }, logs.logger);
    assert.deepEqual(await bodiesOf(caller.outbound.port, "pricing"), new Set(["200 v2"]), "the good revision routes from the first request");
    const config = await configOf(caller.admin.port);
    assert.ok(config.policies.some((p) => p.key === "pricing" && p.revision === good), JSON.stringify(config.policies));
    assert.ok(config.rejectedPolicies.some((p) => p.key === "pricing" && p.revision === bad && p.problems.some((x) => /weight/.test(x))));
    assert.ok(logs.lines.some((l) => l.msg === "policy rejected: applying the newest valid revision in its history" && l.revision === bad && l.applied === good));

    const r = await runMesh(["get", "routes", "pricing", "--nats", nats.urls.join(",")]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`# Route pricing, revision ${good} in force`));
    assert.match(r.stdout, new RegExp(`# revision ${bad} \\(.*\\) was rejected and is not applied:\\n#   rules\\[0\\]\\.backends\\[0\\]\\.weight`));
    assert.match(r.stdout, /version: v2/);
    await controlRequest(nc, "delete", { kind: "Route", service: "pricing" });
  });

  test("a deletion in between means there is nothing to fall back on: defaults", async () => {
    await controlRequest(nc, "apply", { documents: [{ kind: "Route", service: "pricing", rules: [{ backends: [{ version: "v2" }] }] }] });
    await controlRequest(nc, "delete", { kind: "Route", service: "pricing" });
    await writeRaw(POLICY_BUCKETS.Route, "pricing", "{not json");
    const caller = await startTestSidecar({ service: "latecomer2", nats: nats.urls });
    assert.equal((await configOf(caller.admin.port)).policies.filter((p) => p.key === "pricing").length, 0);
    await eventually(async () => (await bodiesOf(caller.outbound.port, "pricing", 20)).size === 2);
    const r = await runMesh(["get", "routes", "pricing", "--nats", nats.urls.join(",")]);
    assert.match(r.stdout, /is invalid and no earlier revision is valid: sidecars use defaults/);
    await controlRequest(nc, "delete", { kind: "Route", service: "pricing" });
  });
});

describe("authorization fails closed", () => {
  test("a provider that starts while its newest Authz is invalid enforces the newest valid one", async () => {
    const app = await startApp((_req, res) => void res.end("vault"));
    await controlRequest(nc, "apply", { documents: [{ kind: "Authz", service: "vault", default: "deny", rules: [{ from: ["teller"] }] }] });
    await writeRaw(POLICY_BUCKETS.Authz, "vault", JSON.stringify({ kind: "Authz", service: "vault", default: "maybe" }));
    await startTestSidecar({ service: "vault", app: app.url, nats: nats.urls });
    const robber = await startTestSidecar({ service: "robber", nats: nats.urls });
    const teller = await startTestSidecar({ service: "teller", nats: nats.urls });
    assert.deepEqual(await bodiesOf(robber.outbound.port, "vault", 3), new Set([`403 {"error":"forbidden","message":"'robber' may not GET / on 'vault'"}`]));
    assert.deepEqual(await bodiesOf(teller.outbound.port, "vault", 3), new Set(["200 vault"]));
  });

  test("an invalid Authz with nothing valid before it denies every caller, logged, until a valid one arrives", async () => {
    const app = await startApp((_req, res) => void res.end("safe"));
    const logs = captureLogs();
    await startTestSidecar({ service: "safe", app: app.url, nats: nats.urls }, logs.logger);
    const caller = await startTestSidecar({ service: "visitor", nats: nats.urls });
    assert.deepEqual(await bodiesOf(caller.outbound.port, "safe", 2), new Set(["200 safe"]), "no Authz document: everyone allowed");
    const bad = await writeRaw(POLICY_BUCKETS.Authz, "safe", JSON.stringify({ kind: "Authz", service: "safe", default: "allow", rules: "all" }));
    await eventually(async () => [...(await bodiesOf(caller.outbound.port, "safe", 1))][0]!.startsWith("403"));
    const served = app.seen.length;
    assert.equal((await bodiesOf(caller.outbound.port, "safe", 3)).size, 1);
    assert.equal(app.seen.length, served, "denied calls never reach the app");
    assert.ok(logs.lines.some((l) => l.msg === "policy rejected and no valid revision to fall back on" && l.revision === bad));
    const r = await runMesh(["get", "authz", "safe", "--nats", nats.urls.join(",")]);
    assert.match(r.stdout, /is invalid and no earlier revision is valid: sidecars deny every caller/);
    await controlRequest(nc, "apply", { documents: [{ kind: "Authz", service: "safe", default: "allow" }] });
    await eventually(async () => (await bodiesOf(caller.outbound.port, "safe", 1)).has("200 safe"));
  });

  test("an invalid Authz whose history cannot be read now denies, and the valid revision applies once it can be read", async () => {
    await controlRequest(nc, "apply", { documents: [{ kind: "Authz", service: "bank", default: "allow" }] });
    const good = (await new Kvm(nc).open(POLICY_BUCKETS.Authz).then((kv) => kv.get("bank")))!.revision;
    const bad = await writeRaw(POLICY_BUCKETS.Authz, "bank", JSON.stringify({ kind: "Authz", service: "bank", default: "maybe" }));
    /** the real reader, whose history fails the first time: as while the buckets' home is gone (docs/multi-region.md) */
    let historyFails = true;
    class OutageReader extends KvReader {
      override async history(bucket: string, key: string) {
        if (historyFails) throw new Error("no responders: the home is gone");
        return super.history(bucket, key);
      }
    }
    const decisions: string[] = [];
    const follower = new KvFollower<AuthzPolicy>({
      nc,
      reader: new OutageReader(nc),
      logger: pino({ level: "silent" }),
      bucket: POLICY_BUCKETS.Authz,
      key: "bank",
      check: (doc, key) => checkStoredPolicy("Authz", key, doc) as { ok: true; value: AuthzPolicy },
      onChange: (_key, applied) => void decisions.push(`applied ${applied?.revision}`),
      onInvalid: () => void decisions.push("deny all"),
      onRejected: () => undefined,
      resyncMs: 3_600_000,
    });
    onFileEnd(() => follower.stop());
    await follower.start();
    assert.deepEqual(decisions, ["deny all"], "fails closed");
    historyFails = false;
    follower.resync();
    await eventually(async () => decisions.length === 2);
    assert.deepEqual(decisions, ["deny all", `applied ${good}`], `rejected ${bad}, then the newest valid one`);
  });

  test("a provider is not ready, and joins no queue group, until it has read its Authz", async (t) => {
    // The Authz bucket on one replica, on a node that is then stopped: it cannot be read.
    const cluster = await withNats(t, { nodes: 3 });
    const admin = await connectClient(cluster.urls);
    const jsm = await jetstreamManager(admin);
    await new Kvm(admin).create(POLICY_BUCKETS.Authz, { history: 10, replicas: 1 });
    await startTestControl(cluster.urls);
    const leader = (await jsm.streams.info(kvStream(POLICY_BUCKETS.Authz))).cluster?.leader;
    const holder = cluster.servers.find((s) => s.name === leader)!;
    const others = cluster.servers.filter((s) => s !== holder).map((s) => s.url);
    // A caller does not wait for Authz documents (it reads them only to fail fast).
    const caller = await startTestSidecar({ service: "outsider", nats: others });
    await holder.kill();

    const app = await startApp((_req, res) => void res.end("guarded"));
    const starting = startTestSidecar({ service: "guarded", app: app.url, nats: others });
    // Barrier: the caller's request finds nobody serving (no responders), which it can only do while the provider is out.
    const res = await call(caller.outbound.port, "guarded", "/");
    assert.equal(res.headers["mesh-error"], "unavailable");
    await res.body.dump();
    assert.equal(app.seen.filter((r) => r.headers["x-mesh-caller"]).length, 0);

    await holder.restart();
    const provider = await starting;
    assert.equal((await fetch(`http://127.0.0.1:${provider.admin.port}/readyz`)).status, 200);
    await eventually(async () => (await bodiesOf(caller.outbound.port, "guarded", 1)).has("200 guarded"));
  });
});
