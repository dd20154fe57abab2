// `mesh creds` and the permission set it writes: the command as a user runs
// it, the pure permission builder, and private inboxes against a real server.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { before, describe, test } from "node:test";
import { connect, nkeys, type ConnectionOptions } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { seedFile, writeCreds } from "../control/creds.ts";
import {
  adminPermissions,
  controlPermissions,
  inboxPrefixFor,
  permissionsFor,
  renderAuthConf,
  sidecarPermissions,
  type AuthUser,
} from "../control/creds-permissions.ts";
import { ensureNatsServer } from "../control/nats-binary.ts";
import { authenticatorFromFile, REGISTRY_BUCKET } from "../schemas/index.ts";
import { onFileEnd } from "./helpers/cleanup.ts";
import { startTestControl } from "./helpers/control.ts";
import { eventually, runMesh } from "./helpers/mesh.ts";
import { withNats } from "./helpers/nats.ts";

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), "natsmesh-creds-"));
  onFileEnd(() => rm(root, { recursive: true, force: true }));
});

const publicKeyOf = async (file: string) => nkeys.fromSeed(new TextEncoder().encode((await readFile(file, "utf8")).trim())).getPublicKey();

describe("permission builder", () => {
  test("a sidecar publishes as itself only and never writes policy", () => {
    const p = sidecarPermissions("frontend");
    for (const own of ["mesh.rpc.*.*.frontend", "mesh.ctl.v1.quota.frontend", "mesh.access.*.frontend.outbound", "mesh.access.frontend.*.inbound", "mesh.telemetry.frontend.*"]) {
      assert.ok(p.publish.allow.includes(own), own);
    }
    assert.ok(!p.publish.allow.some((s) => /^mesh\.rpc\.(>|[^.]+\.[^.]+\.(\*|>))$/.test(s)), "no grant for another caller token");
    assert.deepEqual(p.publish.allow.filter((s) => s.startsWith("$KV.")), ["$KV.mesh_registry.frontend.*"]);
    assert.ok(!p.publish.allow.some((s) => /STREAM\.(CREATE|UPDATE|DELETE|PURGE)|MSG\.DELETE|\$JS\.API\.>/.test(s)));
    assert.deepEqual(p.subscribe.allow, ["mesh.rpc.frontend.>", "_INBOX.>"]);
    assert.deepEqual(sidecarPermissions("frontend", { inboxPrefix: inboxPrefixFor("frontend") }).subscribe.allow, ["mesh.rpc.frontend.>", "_INBOX.frontend.>"]);
  });

  test("bad and reserved names are refused", () => {
    for (const name of ["Front", "a.b", "*", ">", "", "control", "admin"]) assert.throws(() => sidecarPermissions(name), RangeError, name);
    assert.deepEqual(permissionsFor("control"), controlPermissions());
    assert.deepEqual(permissionsFor("admin"), adminPermissions());
  });

  test("the admin identity reaches control and the access log, nothing else", () => {
    const p = adminPermissions();
    assert.ok(p.publish.allow.every((s) => s.startsWith("mesh.ctl.v1.") || s.includes("MESH_ACCESS")), p.publish.allow.join(" "));
    assert.deepEqual(p.publish.deny, ["mesh.ctl.v1.quota.>"]);
  });

  test("auth.conf quotes subjects and grants no allow_responses and no anonymous user", () => {
    const text = renderAuthConf([{ identity: "frontend", nkey: "UABC", permissions: sidecarPermissions("frontend") }]);
    assert.match(text, /"\$JS\.API\.STREAM\.INFO\.KV_mesh_routes"/);
    assert.doesNotMatch(text, /allow_responses|no_auth_user/);
    assert.match(text, /# frontend: the sidecar of service 'frontend'\n\s+\{ nkey: UABC/);
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
  });

  test("running again keeps every key and adds the new services", async () => {
    const dir = join(root, "again");
    assert.equal((await runMesh(["creds", "--out", dir, "pricing"])).code, 0);
    const before = await readFile(seedFile(dir, "pricing"), "utf8");
    const control = await readFile(seedFile(dir, "control"), "utf8");
    const r = await runMesh(["creds", "--out", dir, "catalog"], {});
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /pricing\.nk: kept/);
    assert.match(r.stdout, /catalog\.nk: created/);
    assert.equal(await readFile(seedFile(dir, "pricing"), "utf8"), before);
    assert.equal(await readFile(seedFile(dir, "control"), "utf8"), control);
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
  test("a sidecar connected with inboxPrefix _INBOX.<service> works held to its own inboxes", async (t) => {
    const dir = join(root, "private");
    const made = await writeCreds(dir, ["frontend", "pricing"]);
    const users: AuthUser[] = [];
    for (const identity of made.identities) {
      const permissions = permissionsFor(identity, { inboxPrefix: inboxPrefixFor(identity) });
      users.push({ identity, nkey: await publicKeyOf(seedFile(dir, identity)), permissions });
    }
    await writeFile(join(dir, "private.conf"), renderAuthConf(users));
    const nats = await withNats(t, { include: [join(dir, "private.conf")] });
    const control = await startTestControl(nats.urls, undefined, { creds: seedFile(dir, "control") });
    const as = async (identity: string, opts: Partial<ConnectionOptions> = {}) => {
      const nc = await connect({ servers: nats.urls, authenticator: await authenticatorFromFile(seedFile(dir, identity)), ...opts });
      t.after(() => nc.close());
      return nc;
    };
    const pricing = await as("pricing", { inboxPrefix: inboxPrefixFor("pricing") });
    pricing.subscribe("mesh.rpc.pricing._.*", { queue: "pricing", callback: (_e, m) => void m.respond(`hello ${m.subject.split(".").at(-1)}`) });
    const frontend = await as("frontend", { inboxPrefix: inboxPrefixFor("frontend") });
    assert.equal((await frontend.request("mesh.rpc.pricing._.frontend", "", { timeout: 2_000 })).string(), "hello frontend");

    // Every KV read a sidecar makes: open, keys, get, watch; and its registry heartbeat.
    const routes = await new Kvm(frontend).open("mesh_routes");
    const seen: string[] = [];
    const watch = await routes.watch();
    void (async () => {
      for await (const e of watch) seen.push(`${e.key}@${e.revision}`);
    })();
    const { applied } = await control.store.apply({ documents: [{ kind: "Route", service: "pricing", timeoutMs: 900 }] });
    await eventually(async () => seen.includes(`pricing@${applied[0]!.revision}`));
    watch.stop();
    assert.deepEqual(await collect(await routes.keys()), ["pricing"]);
    assert.equal((await routes.get("pricing"))?.json<{ timeoutMs: number }>().timeoutMs, 900);
    await (await new Kvm(frontend).open(REGISTRY_BUCKET)).put("frontend.i1", "{}");

    // Nobody reads another's replies; a connection on the shared prefix cannot even ask.
    const snoop = await pricing.subscribe("_INBOX.frontend.>").closed;
    assert.match(String((snoop as Error | undefined)?.message), /Permissions Violation for Subscription/);
    const shared = await as("frontend");
    await assert.rejects(shared.request("mesh.rpc.pricing._.frontend", "", { timeout: 1_000 }));
  });
});

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const v of it) out.push(v);
  return out;
}
