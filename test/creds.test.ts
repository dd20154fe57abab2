// `mesh creds` and the permission set it writes: the command as a user runs
// it, the pure permission builder, and private inboxes against a real server.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { before, describe, test } from "node:test";
import { connect, nkeys, type ConnectionOptions } from "@nats-io/transport-node";
import { seedFile, writeCreds } from "../local/creds.ts";
import {
  adminPermissions,
  controlPermissions,
  inboxPrefixOf,
  leafLinkPermissions,
  permissionsFor,
  renderAuthConf,
  renderLeafAuthConf,
  sidecarPermissions,
} from "../local/creds-permissions.ts";
import { controlRequest } from "../cli/client.ts";
import { ensureNatsServer } from "../local/nats-binary.ts";
import { authenticatorFromFile } from "../runtime/index.ts";
import { tempDir } from "./helpers/cleanup.ts";
import { startTestControl } from "./helpers/control.ts";
import { meshRequest, runMesh } from "./helpers/mesh.ts";
import { withNats } from "./helpers/nats.ts";

let root: string;
before(async () => {
  root = await tempDir("natsmesh-creds-");
});

const publicKeyOf = async (file: string) => nkeys.fromSeed(new TextEncoder().encode((await readFile(file, "utf8")).trim())).getPublicKey();

describe("permission builder", () => {
  test("a sidecar publishes as itself only, answers inboxes only as itself, and never writes a bucket", () => {
    const p = sidecarPermissions("frontend");
    for (const own of ["mesh.rpc.*.*.frontend", "_INBOX.*.*.frontend", "mesh.ctl.v1.quota.frontend", "mesh.ctl.v1.register.frontend", "mesh.ctl.v1.keys.frontend", "mesh.access.*.frontend.outbound", "mesh.access.frontend.*.inbound", "mesh.telemetry.frontend.*"]) {
      assert.ok(p.publish.allow.includes(own), own);
    }
    assert.ok(!p.publish.allow.some((s) => /^mesh\.rpc\.(>|[^.]+\.[^.]+\.(\*|>))$/.test(s)), "no grant for another caller token");
    assert.ok(!p.publish.allow.some((s) => s.startsWith("$KV.") || s.startsWith("$JS.API.") || s === "_INBOX.>"), p.publish.allow.join(" "));
    // JetStream: direct gets and stream info of the four KV streams, nothing that creates a consumer or changes a stream.
    const js = p.publish.allow.filter((s) => s.startsWith("$JS."));
    assert.ok(js.every((s) => /^\$JS\.mesh\.API\.(DIRECT\.GET|STREAM\.INFO)\.KV_mesh_(routes|authz|quotas|registry)(\.>)?$/.test(s)), js.join(" "));
    assert.deepEqual(p.subscribe.allow, ["mesh.rpc.frontend.>", "_INBOX.frontend.>", "mesh.kv.mesh_routes.>", "mesh.kv.mesh_authz.>", "mesh.kv.mesh_quotas.frontend", "mesh.kv.mesh_registry.>"]);
  });

  test("bad and reserved names are refused", () => {
    for (const name of ["Front", "a.b", "*", ">", "", "control", "admin", "leaf"]) assert.throws(() => sidecarPermissions(name), RangeError, name);
    assert.deepEqual(permissionsFor("control"), controlPermissions());
    assert.deepEqual(permissionsFor("admin"), adminPermissions());
  });

  test("the admin identity reaches control's verbs, nothing else", () => {
    const p = adminPermissions();
    assert.deepEqual(p.publish.allow, ["mesh.ctl.v1.>"]);
    assert.deepEqual(p.publish.deny, ["mesh.ctl.v1.quota.>", "mesh.ctl.v1.register.>", "mesh.ctl.v1.keys.>"]);
    assert.deepEqual(p.subscribe.allow, ["_INBOX.admin.>"]);
  });

  test("auth.conf puts control and the CLI in a JetStream account and quotes subjects; no allow_responses, no anonymous user", () => {
    const users = [
      { identity: "frontend", nkey: "UABC", permissions: sidecarPermissions("frontend") },
      { identity: "control", nkey: "UCTL", permissions: controlPermissions() },
      { identity: "admin", nkey: "UADM", permissions: adminPermissions() },
    ];
    const text = renderAuthConf(users, "$2b$10$hash");
    assert.match(text, /CONTROL: \{\n\s+jetstream: enabled\n\s+users: \[\n\s+# control: .*\n\s+\{ nkey: UCTL[^]*\{ nkey: UADM[^]*\n  MESH: \{/);
    assert.match(text, /MESH: \{\n\s+users: \[\n\s+# frontend: the sidecar of service 'frontend'\n\s+\{ nkey: UABC/);
    assert.match(text, /\{ service: \{ account: CONTROL, subject: "\$JS\.API\.STREAM\.INFO\.KV_mesh_routes" \}, to: "\$JS\.mesh\.API\.STREAM\.INFO\.KV_mesh_routes" \}/);
    assert.doesNotMatch(text, /allow_responses|no_auth_user|CONSUMER/);
    // The sidecars' account imports the sidecars' verbs only: no admin verb is reachable from it.
    const ctlImports = [...text.matchAll(/service: \{ account: CONTROL, subject: "(mesh\.ctl\.[^"]+)"/g)].map((m) => m[1]);
    assert.deepEqual(ctlImports, ["mesh.ctl.v1.quota.*", "mesh.ctl.v1.register.*", "mesh.ctl.v1.keys.*"]);
    // The leaf link: a bcrypt hash (never the password), for leaf connections only, with the sidecars' grant for any service.
    assert.match(text, /\{ user: leaf, password: "\$2b\$10\$hash", allowed_connection_types: \["LEAFNODE"\]/);
    assert.match(text, /system_account: SYS/);
  });

  test("the leaf link carries what any sidecar may, and no admin verb; leaf-auth.conf holds the sidecars only, without imports", () => {
    const link = leafLinkPermissions();
    assert.ok(link.publish.allow.includes("mesh.rpc.*.*.*") && link.publish.allow.includes("mesh.ctl.v1.register.*"));
    assert.ok(!link.publish.allow.some((s) => s === "mesh.ctl.v1.>" || s.startsWith("$JS.API") || s.startsWith("$KV")), link.publish.allow.join(" "));
    assert.ok(link.subscribe.allow.every((s) => /^(mesh\.rpc|_INBOX|mesh\.kv)\./.test(s)), link.subscribe.allow.join(" "));
    const text = renderLeafAuthConf([
      { identity: "frontend", nkey: "UABC", permissions: sidecarPermissions("frontend") },
      { identity: "control", nkey: "UCTL", permissions: controlPermissions() },
      { identity: "admin", nkey: "UADM", permissions: adminPermissions() },
    ]);
    assert.match(text, /\{ nkey: UABC/);
    assert.doesNotMatch(text, /UCTL|UADM|CONTROL|imports|jetstream/);
  });
});

describe("mesh creds", () => {
  test("writes seeds (0600), control, admin and an auth.conf nats-server accepts", async () => {
    const dir = join(root, "first");
    const r = await runMesh(["creds", "--out", dir, "pricing", "frontend"]);
    assert.equal(r.code, 0, r.stderr);
    for (const id of ["pricing", "frontend", "control", "admin"]) {
      assert.equal((await stat(seedFile(dir, id))).mode & 0o777, 0o600, id);
      assert.match(r.stdout, new RegExp(`${id}\\.nk: created`));
      assert.match(await readFile(join(dir, "auth.conf"), "utf8"), new RegExp(await publicKeyOf(seedFile(dir, id))));
    }
    await promisify(execFile)(await ensureNatsServer(), ["-t", "-c", join(dir, "auth.conf")]);
    await promisify(execFile)(await ensureNatsServer(), ["-t", "-c", join(dir, "leaf-auth.conf")]);
    // The leaf link's password: private, and only its bcrypt hash is in auth.conf.
    assert.equal((await stat(join(dir, "leaf.secret"))).mode & 0o777, 0o600);
    const secret = (await readFile(join(dir, "leaf.secret"), "utf8")).trim();
    assert.match(secret, /^[0-9a-f]{32}$/);
    assert.ok(!(await readFile(join(dir, "auth.conf"), "utf8")).includes(secret));
  });

  test("running again keeps every key and adds the new services", async () => {
    const dir = join(root, "again");
    assert.equal((await runMesh(["creds", "--out", dir, "pricing"])).code, 0);
    const before = await readFile(seedFile(dir, "pricing"), "utf8");
    const control = await readFile(seedFile(dir, "control"), "utf8");
    const leafSecret = await readFile(join(dir, "leaf.secret"), "utf8");
    const r = await runMesh(["creds", "--out", dir, "catalog"], {});
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /pricing\.nk: kept/);
    assert.match(r.stdout, /catalog\.nk: created/);
    assert.equal(await readFile(seedFile(dir, "pricing"), "utf8"), before);
    assert.equal(await readFile(seedFile(dir, "control"), "utf8"), control);
    assert.equal(await readFile(join(dir, "leaf.secret"), "utf8"), leafSecret, "the leaf link's password is kept too");
    const conf = await readFile(join(dir, "auth.conf"), "utf8");
    for (const id of ["pricing", "catalog", "control", "admin"]) assert.match(conf, new RegExp(await publicKeyOf(seedFile(dir, id))));
  });

  test("exit 1 for bad names (nothing written), 2 for usage", async () => {
    const dir = join(root, "bad");
    let r = await runMesh(["creds", "--out", dir, "pricing", "Bad.Name", "admin"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /'Bad\.Name' is not a service name/);
    assert.match(r.stderr, /'admin' is reserved/);
    await assert.rejects(stat(dir));
    for (const args of [["pricing"], ["--out", dir], ["--out", dir, "--rotate", "pricing"]]) {
      r = await runMesh(["creds", ...args], { env: { MESH_CREDS_DIR: "" } });
      assert.equal(r.code, 2, args.join(" "));
    }
    r = await runMesh(["creds", "pricing"], { env: { MESH_CREDS_DIR: dir } });
    assert.equal(r.code, 0, r.stderr);
    await writeFile(seedFile(dir, "pricing"), "not a seed\n");
    r = await runMesh(["creds", "--out", dir, "pricing"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /holds no user nkey seed/);
  });
});

describe("private inboxes", () => {
  test("each identity is held to its own inboxes; a sidecar signs what it sends to another's", async (t) => {
    const dir = join(root, "private");
    const made = await writeCreds(dir, ["frontend", "pricing"]);
    const nats = await withNats(t, { include: [made.authConf] });
    const as = async (identity: string, opts: Partial<ConnectionOptions> = {}) => {
      const nc = await connect({ servers: nats.urls, authenticator: await authenticatorFromFile(seedFile(dir, identity)), inboxPrefix: inboxPrefixOf(identity), ...opts });
      t.after(() => nc.close());
      return nc;
    };
    const pricing = await as("pricing");
    pricing.subscribe("mesh.rpc.pricing._.*", { queue: "pricing", callback: (_e, m) => pricing.publish(`${m.reply}.pricing`, `hello ${m.subject.split(".").at(-1)}`) });
    await pricing.flush();
    const frontend = await as("frontend");
    assert.equal((await meshRequest(frontend, "mesh.rpc.pricing._.frontend")).string(), "hello frontend");
    // Requests to control cross the import and come back to the requester's own inbox.
    await startTestControl(nats.urls, undefined, { creds: seedFile(dir, "control") });
    const admin = await as("admin");
    assert.ok(Array.isArray((await controlRequest(admin, "services", {})).services));

    // Nobody reads another's replies; a connection on the shared prefix cannot even ask.
    const snoop = await pricing.subscribe("_INBOX.frontend.>").closed;
    assert.match(String((snoop as Error | undefined)?.message), /Permissions Violation for Subscription/);
    const shared = await as("frontend", { inboxPrefix: "_INBOX" });
    await assert.rejects(shared.request("mesh.ctl.v1.services", "{}", { timeout: 1_000 }));
  });
});
