// `mesh check` (docs/run.md): a healthy mesh passes every check; each broken
// state it names fails its line with a hint and exit 1: control down, a
// bucket missing, JetStream off, bad credentials. And `mesh check --pre`.
import assert from "node:assert/strict";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test, type TestContext } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { nkeys } from "@nats-io/transport-node";
import { writeCreds, seedFile } from "../local/creds.ts";
import { bucketSpecs } from "../control/index.ts";
import { startApp } from "./helpers/apps.ts";
import { startTestControl } from "./helpers/control.ts";
import { eventually, runMesh, startTestSidecar } from "./helpers/mesh.ts";
import { connectClient, withNats } from "./helpers/nats.ts";
import { requestControl } from "../control/index.ts";

interface Report {
  ok: boolean;
  checks: Array<{ category: string; status: "ok" | "fail" | "skip"; detail: string; hint?: string }>;
}

async function check(args: string[]): Promise<{ code: number | null; text: string; report: Report }> {
  const text = await runMesh(["check", ...args]);
  const json = await runMesh(["check", ...args, "-o", "json"]);
  assert.equal(json.code, text.code, json.stderr);
  return { code: text.code, text: text.stdout, report: JSON.parse(json.stdout) as Report };
}

/** NATS, control and one provider instance registered ready. */
async function healthyMesh(t: TestContext, opts: { include?: string[]; controlCreds?: string; sidecarCreds?: string } = {}) {
  const cluster = await withNats(t, opts.include ? { include: opts.include } : {});
  const control = await startTestControl(cluster.urls, undefined, { creds: opts.controlCreds });
  const app = await startApp();
  await startTestSidecar({ service: "catalog", app: app.url, nats: cluster.urls, ...(opts.sidecarCreds ? { creds: opts.sidecarCreds } : {}) });
  await eventually(async () => (await requestControl(control.nc, "services", {})).services.some((s) => s.ready === 1));
  return { cluster, control, nats: cluster.urls.join(",") };
}

test("a healthy mesh: every check passes, exit 0", { timeout: 60_000 }, async (t) => {
  const { nats } = await healthyMesh(t);
  const { code, text, report } = await check(["--nats", nats]);
  assert.equal(code, 0, text);
  assert.equal(report.ok, true);
  assert.deepEqual(report.checks.filter((c) => c.status === "fail"), []);
  for (const spec of bucketSpecs()) assert.match(text, new RegExp(`^✓ bucket ${spec.bucket}: history ${spec.history}, replicas 1`, "m"));
  assert.match(text, /^✓ nats-server 2\.\d+\.\d+ \(>= 2\.9\)$/m);
  assert.match(text, /^✓ stream MESH_ACCESS: /m);
  assert.match(text, /^✓ control answers on mesh\.ctl\.v1\.\*; telemetry lease held by \S+$/m);
  assert.match(text, /^✓ 1 instance\(s\) of 1 service\(s\): 1 ready$/m);
  assert.match(text, /^✓ clock skew host vs server: /m);
  assert.match(text, /^Status check results are ✓$/m);
});

test("control down: its line fails with a hint, exit 1", { timeout: 60_000 }, async (t) => {
  const { nats, control } = await healthyMesh(t);
  await control.kill();
  const { code, text } = await check(["--nats", nats]);
  assert.equal(code, 1, text);
  assert.match(text, /^✗ control does not answer: .*\n {4}hint: start it: npx mesh control/m);
  assert.match(text, /^- registry and policy checks need control$/m);
});

test("a bucket missing: its line fails, and control says it cannot read that policy", { timeout: 60_000 }, async (t) => {
  const { cluster } = await healthyMesh(t);
  const jsm = await jetstreamManager(await connectClient(cluster.urls));
  await jsm.streams.delete("KV_mesh_authz");
  const { code, text, report } = await check(["--nats", cluster.urls.join(",")]);
  assert.equal(code, 1, text);
  assert.deepEqual(
    report.checks.filter((c) => c.status === "fail").map((c) => c.detail),
    ["bucket mesh_authz is missing", "control cannot read policy: Authz: stream not found"],
  );
  assert.match(text, /^✗ bucket mesh_authz is missing\n {4}hint: control creates it at start/m);
});

test("JetStream off: its line fails with a hint, exit 1", { timeout: 60_000 }, async (t) => {
  const cluster = await withNats(t, { jetstream: false });
  const { code, text } = await check(["--nats", cluster.urls.join(",")]);
  assert.equal(code, 1, text);
  assert.match(text, /^✗ JetStream is not enabled: .*\n {4}hint: start nats-server with -js/m);
});

test("secure mode: the admin key passes; an unknown key and a sidecar's key fail with the identity named", { timeout: 90_000 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "check-creds-"));
  const creds = await writeCreds(join(dir, "creds"), ["catalog"]);
  const { nats } = await healthyMesh(t, { include: [creds.authConf], controlCreds: seedFile(creds.dir, "control"), sidecarCreds: seedFile(creds.dir, "catalog") });

  let r = await check(["--nats", nats, "--creds", seedFile(creds.dir, "admin")]);
  assert.equal(r.code, 0, r.text);
  assert.match(r.text, /^✓ secure mode: identity 'admin' has the permissions the CLI needs$/m);
  assert.match(r.text, /^- not visible to identity 'admin'/m);

  r = await check(["--nats", nats, "--creds", seedFile(creds.dir, "control")]);
  assert.equal(r.code, 0, r.text);
  assert.match(r.text, /^✓ bucket mesh_routes: /m);

  const stranger = join(dir, "stranger.nk");
  await writeFile(stranger, new TextDecoder().decode(nkeys.createUser().getSeed()));
  r = await check(["--nats", nats, "--creds", stranger]);
  assert.equal(r.code, 1, r.text);
  assert.match(r.text, /^✗ NATS at .* refused the key of 'stranger': .*\n {4}hint: pass --creds with a key/m);

  r = await check(["--nats", nats, "--creds", seedFile(creds.dir, "catalog")]);
  assert.equal(r.code, 1, r.text);
  assert.match(r.text, /^✗ secure mode: identity 'catalog' lacks .*_INBOX\.admin.*\n {4}hint: the CLI needs the admin key/m);

  r = await check(["--nats", nats]);
  assert.equal(r.code, 1, r.text);
  assert.match(r.text, /refused a client without a key/);
});

test("--pre: nats-server found; a busy port fails with a hint", { timeout: 60_000 }, async (t) => {
  const cluster = await withNats(t);
  // A base port whose NATS client port (base - 3858) is the running server's.
  const base = cluster.servers[0]!.clientPort + 8080 - 4222;
  const r = await runMesh(["check", "--pre", "--base-port", String(base)]);
  assert.equal(r.code, 1, r.stdout);
  assert.match(r.stdout, /^✓ nats-server 2\.\d+\.\d+ at /m);
  assert.match(r.stdout, new RegExp(`^✗ ports in use: ${cluster.servers[0]!.clientPort} \\(NATS n1 clients: EADDRINUSE\\)`, "m"));
  assert.match(r.stdout, /hint: stop what holds them/);
});
