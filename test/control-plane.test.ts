import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { before, describe, test } from "node:test";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { controlRequest, CliError } from "../cli/client.ts";
import { POLICY_BUCKETS } from "../schemas/index.ts";
import { startApp } from "./helpers/apps.ts";
import { onFileEnd, tempDir } from "./helpers/cleanup.ts";
import { startTestControl, type TestControl } from "./helpers/control.ts";
import { captureLogs } from "./helpers/logs.ts";
import { call, eventually, runMesh, startTestSidecar } from "./helpers/mesh.ts";
import { connectClient, startNats, type NatsCluster } from "./helpers/nats.ts";

let nats: NatsCluster;
let control: TestControl;
let nc: NatsConnection;
let dir: string;
let natsEnv: NodeJS.ProcessEnv;

before(async () => {
  nats = await startNats({ nodes: 3 });
  control = await startTestControl(nats.urls);
  nc = await connectClient(nats.urls);
  dir = await tempDir("natsmesh-policy-");
  natsEnv = { NATS_URL: nats.urls.join(",") };
  // Two versions of "pricing", each answering with its version.
  for (const version of ["v1", "v2"]) {
    const app = await startApp((_req, res) => void res.end(version));
    await startTestSidecar({ service: "pricing", version, app: app.url, nats: nats.urls });
  }
});

async function policyFile(name: string, text: string): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, text);
  return file;
}

const route = (body: string) => `kind: Route\nservice: pricing\n${body}`;

async function versionsSeen(port: number, n = 20): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) seen.add(await (await call(port, "pricing", "/")).body.text());
  return seen;
}

describe("mesh CLI and control: apply, get, history, rollback", () => {
  test("a round trip through the CLI", async () => {
    const v1 = await policyFile("v1.yaml", route("timeoutMs: 1000\nrules:\n  - backends: [{ version: v1 }]\n"));
    const v2 = await policyFile("v2.yaml", route("timeoutMs: 2000\nrules:\n  - backends: [{ version: v2 }]\n"));
    let r = await runMesh(["apply", "-f", v1], { env: natsEnv });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Route pricing: applied \(revision \d+\)/);
    r = await runMesh(["apply", "-f", v2], { env: natsEnv });
    assert.equal(r.code, 0, r.stderr);

    r = await runMesh(["get", "routes", "pricing"], { env: natsEnv });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /timeoutMs: 2000/);
    assert.match(r.stdout, /# Route pricing, revision \d+/);

    r = await runMesh(["history", "routes", "pricing"], { env: natsEnv });
    assert.equal(r.code, 0, r.stderr);
    // CHANGE (this document's count), REVISION (KV's), CREATED, WHAT
    const revisions = [...r.stdout.matchAll(/^\d+\s+(\d+)\s+(\S+)\s+(created|changed .*)$/gm)];
    assert.ok(revisions.length >= 2, r.stdout);
    assert.ok(!Number.isNaN(Date.parse(revisions[0]![2]!)), "each revision has its time");
    assert.match(r.stdout, /changed timeoutMs, rules$/m);

    r = await runMesh(["rollback", "routes", "pricing"], { env: natsEnv });
    assert.equal(r.code, 0, r.stderr);
    const got = await controlRequest(nc, "get", { kind: "Route", service: "pricing" });
    assert.equal((got.items[0]!.document as { timeoutMs: number }).timeoutMs, 1000);

    const first = Number(revisions[0]![1]);
    r = await runMesh(["rollback", "routes", "pricing", "--to", String(first + 1)], { env: natsEnv });
    assert.equal(r.code, 0, r.stderr);
    const again = await controlRequest(nc, "get", { kind: "Route", service: "pricing" });
    assert.equal((again.items[0]!.document as { timeoutMs: number }).timeoutMs, 2000);
  });

  test("exit codes: 1 rejected input, 2 usage, 3 NATS unreachable", async () => {
    const bad = await policyFile("bad.yaml", route("rules:\n  - backends: [{ version: v1, weight: -10 }]\n"));
    let r = await runMesh(["apply", "-f", bad], { env: natsEnv });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /rules\[0\]\.backends\[0\]\.weight: must be >= 0, got -10/);
    r = await runMesh(["get", "nonsense"], { env: natsEnv });
    assert.equal(r.code, 2);
    r = await runMesh(["apply"], { env: natsEnv });
    assert.equal(r.code, 2);
    r = await runMesh(["services"], { env: { NATS_URL: "nats://127.0.0.1:1" } });
    assert.equal(r.code, 3);
    assert.match(r.stderr, /cannot reach NATS/);
    r = await runMesh(["validate", "-f", bad, "--offline"]);
    assert.equal(r.code, 1);
  });
});

describe("control rejects invalid documents and publishes nothing", () => {
  const invalid: Array<[string, unknown[], RegExp]> = [
    ["negative weight", [{ kind: "Route", service: "pricing", rules: [{ backends: [{ version: "v1", weight: -10 }] }] }], /rules\[0\]\.backends\[0\]\.weight/],
    ["unknown field", [{ kind: "Route", service: "pricing", timeoutMS: 5 }], /timeoutMS/],
    ["bad service name", [{ kind: "Route", service: "Pricing!" }], /service/],
    ["unknown kind", [{ kind: "Routes", service: "pricing" }], /kind/],
    ["bad method", [{ kind: "Route", service: "pricing", rules: [{ match: { methods: ["GETT"] }, backends: [{ version: "v1" }] }] }], /rules\[0\]\.match\.methods\[0\]/],
    ["abort status 700", [{ kind: "Route", service: "pricing", rules: [{ fault: { abort: { status: 700, percent: 10 } } }] }], /rules\[0\]\.fault\.abort\.status/],
    ["percent 101", [{ kind: "Route", service: "pricing", rules: [{ mirror: { version: "v2", percent: 101 } }] }], /rules\[0\]\.mirror\.percent/],
    ["all weights zero", [{ kind: "Route", service: "pricing", rules: [{ backends: [{ version: "v1", weight: 0 }, { version: "v2", weight: 0 }] }] }], /rules\[0\]\.backends/],
    ["empty backends", [{ kind: "Route", service: "pricing", rules: [{ backends: [] }] }], /rules\[0\]\.backends/],
    ["timeout zero", [{ kind: "Route", service: "pricing", timeoutMs: 0 }], /timeoutMs/],
    ["bad regex", [{ kind: "Route", service: "pricing", rules: [{ match: { headersRegex: { "x-a": "(" } }, backends: [{ version: "v1" }] }] }], /headersRegex/],
    ["authz default maybe", [{ kind: "Authz", service: "pricing", default: "maybe" }], /default/],
    ["authz bad glob", [{ kind: "Authz", service: "pricing", rules: [{ from: ["front end"] }] }], /rules\[0\]\.from\[0\]/],
    ["quota per week", [{ kind: "Quota", service: "pricing", limits: [{ caller: "*", requests: 5, per: "week" }] }], /limits\[0\]\.per/],
    ["quota zero requests", [{ kind: "Quota", service: "pricing", limits: [{ caller: "*", requests: 0, per: "second" }] }], /limits\[0\]\.requests/],
    ["not an object", ["kind: Route"], /must be an object/],
    ["duplicate documents", [{ kind: "Route", service: "pricing" }, { kind: "Route", service: "pricing" }], /another Route/],
    ["one bad among good", [{ kind: "Route", service: "catalog" }, { kind: "Quota", service: "catalog", limits: [] }], /limits/],
  ];

  for (const [name, documents, path] of invalid) {
    test(name, async () => {
      const kv = await new Kvm(nc).open(POLICY_BUCKETS.Route);
      const before = (await kv.status()).values;
      await assert.rejects(controlRequest(nc, "apply", { documents }), (err: unknown) => {
        assert.ok(err instanceof CliError);
        assert.equal(err.exitCode, 1);
        assert.ok(err.problems.some((p) => path.test(p)), `${err.problems.join("\n")} should mention ${path}`);
        return true;
      });
      assert.equal((await kv.status()).values, before, "nothing was published");
    });
  }
});

describe("sidecars follow policy", () => {
  test("backends and timeoutMs change live traffic; deletion falls back to defaults", async () => {
    const caller = await startTestSidecar({ service: "frontend", nats: nats.urls });
    await controlRequest(nc, "apply", { documents: [{ kind: "Route", service: "pricing", rules: [{ backends: [{ version: "v2" }] }] }] });
    await eventually(async () => (await versionsSeen(caller.outbound.port, 10)).size === 1);
    assert.deepEqual(await versionsSeen(caller.outbound.port), new Set(["v2"]));

    await controlRequest(nc, "apply", { documents: [{ kind: "Route", service: "pricing", rules: [{ backends: [{ version: "v1" }] }] }] });
    await eventually(async () => (await versionsSeen(caller.outbound.port, 5)).has("v1"));
    assert.deepEqual(await versionsSeen(caller.outbound.port), new Set(["v1"]));

    await controlRequest(nc, "delete", { kind: "Route", service: "pricing" });
    await eventually(async () => (await versionsSeen(caller.outbound.port, 40)).size === 2);
  });

  test("a route's timeoutMs is the deadline", async () => {
    const slow = await startApp((_req, res) => void setTimeout(() => res.end("late"), 1000)); // why: slower than the 100 ms route timeout, which is the subject
    await startTestSidecar({ service: "slowpoke", app: slow.url, nats: nats.urls });
    const caller = await startTestSidecar({ service: "frontend", nats: nats.urls });
    await controlRequest(nc, "apply", { documents: [{ kind: "Route", service: "slowpoke", timeoutMs: 100 }] });
    await eventually(async () => (await call(caller.outbound.port, "slowpoke", "/")).headers["mesh-error"] === "timeout");
  });

  test("an invalid value written straight into KV is not applied: last good stays, logged and counted", async () => {
    const logs = captureLogs();
    const caller = await startTestSidecar({ service: "frontend", nats: nats.urls }, logs.logger);
    await controlRequest(nc, "apply", { documents: [{ kind: "Route", service: "pricing", rules: [{ backends: [{ version: "v2" }] }] }] });
    await eventually(async () => (await versionsSeen(caller.outbound.port, 5)).size === 1 && (await versionsSeen(caller.outbound.port, 5)).has("v2"));

    const kv = await new Kvm(nc).open(POLICY_BUCKETS.Route);
    const rejectedAt = (revision: number) => logs.lines.some((l) => l.msg?.startsWith("policy rejected") && l.revision === revision);
    // One write at a time: a follower reads an announced revision with a direct get, which any replica of the
    // 3-node cluster may answer, so two quick writes can be read newest first, and the older is then skipped.
    const badRevision = await kv.put("pricing", JSON.stringify({ kind: "Route", service: "pricing", rules: [{ backends: [{ version: "v1", weight: -1 }] }] }));
    await eventually(async () => rejectedAt(badRevision));
    const garbageRevision = await kv.put("pricing", "{not json");
    await eventually(async () => rejectedAt(garbageRevision));
    await eventually(async () => logs.lines.filter((l) => l.msg?.startsWith("policy rejected")).length >= 2);
    const rejected = logs.lines.find((l) => l.msg?.startsWith("policy rejected") && l.revision === badRevision)!;
    assert.equal(rejected.bucket, "mesh_routes");
    assert.equal(rejected.key, "pricing");
    assert.ok(logs.lines.some((l) => l.revision === garbageRevision && l.msg?.startsWith("policy rejected")));
    assert.deepEqual(await versionsSeen(caller.outbound.port), new Set(["v2"]), "the last good policy still routes");
    assert.match(await caller.registry.metrics(), /mesh_policy_rejected_total\{bucket="mesh_routes"\} 2/);
    const config = (await (await fetch(`http://127.0.0.1:${caller.admin.port}/config`)).json()) as { policies: Array<{ key: string; revision: number }> };
    assert.ok(config.policies.some((p) => p.key === "pricing" && p.revision < badRevision), "/config shows the applied revision");
  });

  test("a sidecar started after policy exists applies it before it is ready", async () => {
    await controlRequest(nc, "apply", { documents: [{ kind: "Route", service: "pricing", rules: [{ backends: [{ version: "v1" }] }] }] });
    const caller = await startTestSidecar({ service: "latecomer", nats: nats.urls });
    // No waiting: the very first requests already follow the policy.
    assert.deepEqual(await versionsSeen(caller.outbound.port), new Set(["v1"]));
    const ready = await fetch(`http://127.0.0.1:${caller.admin.port}/readyz`);
    assert.equal(ready.status, 200);
  });
});

describe("control availability", () => {
  test("two control replicas at once share requests; control killed: the data plane keeps its policy; restarted: nothing lost", async () => {
    // NATS prefers queue members on the requester's own server, so put both replicas and the client on one node.
    await control.kill();
    control = await startTestControl([nats.urls[0]!]);
    const second = await startTestControl([nats.urls[0]!]);
    const local = await connect({ servers: [nats.urls[0]!], noAsyncTraces: true });
    onFileEnd(() => local.close());
    for (let i = 0; i < 40; i++) await controlRequest(local, "get", { kind: "Route" });
    for (const c of [control, second]) {
      assert.match(await c.registry.metrics(), /mesh_control_requests_total\{verb="get",outcome="ok"\} [1-9]/, "each replica answered some");
    }
    await controlRequest(nc, "apply", { documents: [{ kind: "Route", service: "pricing", rules: [{ backends: [{ version: "v2" }] }] }] });
    const caller = await startTestSidecar({ service: "frontend", nats: nats.urls });
    assert.deepEqual(await versionsSeen(caller.outbound.port), new Set(["v2"]));

    await control.kill();
    await second.kill();
    await assert.rejects(controlRequest(nc, "get", { kind: "Route" }), (err: CliError) => err.exitCode === 3);
    assert.deepEqual(await versionsSeen(caller.outbound.port), new Set(["v2"]), "still routed by the last policy");

    control = await startTestControl(nats.urls);
    const got = await controlRequest(nc, "get", { kind: "Route", service: "pricing" });
    assert.deepEqual((got.items[0]!.document as any).rules[0].backends, [{ version: "v2", weight: 1 }]);
  });
});
