// Leaf nodes in secure mode (docs/multi-region.md "Leaf nodes in secure
// mode"): east and west joined by gateways include auth.conf; the edge
// site's leaf node includes leaf-auth.conf and connects to east as user
// `leaf`, bound to the sidecars' account. Sidecars at the edge call and
// serve with their own keys; the leaf link carries sidecar traffic only.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { createConnection } from "node:net";
import { join } from "node:path";
import { before, describe, test } from "node:test";
import { connect } from "@nats-io/transport-node";
import { type CredsResult, readLeafSecret, seedFile, writeCreds } from "../local/creds.ts";
import { startNatsCluster } from "../local/nats-cluster.ts";
import { ensureNatsServer } from "../local/nats-binary.ts";
import { monitor, type ServerNode } from "../local/nats-node.ts";
import { authenticatorFromFile } from "../runtime/index.ts";
import { requestControl } from "../control/index.ts";
import { startApp } from "./helpers/apps.ts";
import { onFileEnd, tempDir } from "./helpers/cleanup.ts";
import { connectAs } from "./helpers/secure.ts";
import { startTestControl } from "./helpers/control.ts";
import { eventually, startTestSidecar } from "./helpers/mesh.ts";
import { apply, bodiesOf, configOf, follows, instancesIn, served, startRegions, type Supercluster } from "./helpers/region.ts";

let sc: Supercluster;
let creds: CredsResult;
let dir: string;
let east: string[], west: string[], edge: string[];
const seed = (identity: string) => seedFile(creds.dir, identity);

/** Leaf connections the first cluster's node holds. */
async function leafConnections(): Promise<number> {
  return (await monitor<{ leafnodes?: number }>(sc.clusters[0]!.servers[0] as ServerNode, "/leafz")).leafnodes ?? 0;
}

/** Another nats-server, with no auth of its own, as a leaf node of east with this password. */
async function startOtherLeaf(name: string, password: string) {
  const hub = new URL(sc.leafHubUrls[0]!);
  const leaf = await startNatsCluster({
    bin: await ensureNatsServer(),
    nodes: 1,
    clusterName: name,
    dataDir: join(dir, name),
    jetstream: false,
    leafRemotes: [`nats-leaf://leaf:${password}@${hub.host}`],
  });
  onFileEnd(() => leaf.stop());
  return leaf;
}

before(async () => {
  dir = await tempDir("natsmesh-leaf-secure-");
  creds = await writeCreds(join(dir, "creds"), ["frontend", "echo", "catalog", "site"]);
  sc = await startRegions({
    clusters: 2,
    include: [creds.authConf],
    leaf: true,
    leafAuth: { include: [creds.leafAuthConf], password: await readLeafSecret(creds.dir) },
  });
  [east, west, edge] = [sc.clusters[0]!.urls, sc.clusters[1]!.urls, sc.leaf!.urls];
  await startTestControl(east, undefined, { creds: seed("control") });
  await startTestControl(west, undefined, { creds: seed("control") });
});

describe("leaf nodes in secure mode", () => {
  test("an edge sidecar calls into the clusters and serves them with its own key, prefers the edge's instance, and follows policy", async () => {
    const app = (body: string) => startApp((_req, res) => void res.end(body));
    await startTestSidecar({ service: "echo", app: (await app("east")).url, nats: east, creds: seed("echo") });
    await startTestSidecar({ service: "catalog", app: (await app("west")).url, nats: west, creds: seed("catalog") });
    await startTestSidecar({ service: "site", app: (await app("site")).url, nats: edge, creds: seed("site") });
    const edgeCaller = await startTestSidecar({ service: "frontend", nats: edge, creds: seed("frontend") });
    const eastCaller = await startTestSidecar({ service: "frontend", nats: east, creds: seed("frontend") });
    assert.equal((await configOf(edgeCaller.admin.port)).region, "edge");

    // Into the clusters: east across the leaf link, west across it and a gateway.
    await eventually(async () => (await served(edgeCaller.outbound.port, "echo")).status === 200);
    assert.deepEqual(new Set(await bodiesOf(edgeCaller.outbound.port, "echo")), new Set(["east"]));
    await eventually(async () => (await served(edgeCaller.outbound.port, "catalog")).status === 200);
    assert.equal((await served(edgeCaller.outbound.port, "catalog")).body, "west");
    // Out of the edge: a service only the edge serves, called from east.
    await eventually(async () => (await served(eastCaller.outbound.port, "site")).status === 200);
    assert.equal((await served(eastCaller.outbound.port, "site")).body, "site");

    // An echo instance at the edge: the edge's callers are served there, east's stay in east.
    await startTestSidecar({ service: "echo", app: (await app("edge")).url, nats: edge, creds: seed("echo") });
    await eventually(async () => (await served(edgeCaller.outbound.port, "echo")).body === "edge");
    assert.deepEqual(new Set(await bodiesOf(edgeCaller.outbound.port, "echo")), new Set(["edge"]));
    assert.deepEqual(new Set(await bodiesOf(eastCaller.outbound.port, "echo")), new Set(["east"]));

    // Policy applied by the admin at a hub reaches the edge's sidecar (read across the leaf link).
    const { nc: admin } = await connectAs(east, creds.dir, "admin");
    const [revision] = await apply(admin, { kind: "Route", service: "echo", timeoutMs: 3000 });
    await eventually(() => follows(edgeCaller.admin.port, "echo", revision!));
    // The edge's instances are registered (through control, across the link) with their region.
    await eventually(async () => (await instancesIn(admin, "site", "edge")) === 1);
  });

  test("at the edge a key still binds identity: frontend's key cannot publish as echo", async () => {
    const { nc, errors } = await connectAs(edge, creds.dir, "frontend");
    nc.publish("mesh.rpc.echo._.echo", "spoofed");
    await nc.flush();
    await eventually(async () => errors.some((e) => /permissions violation/i.test(e)));
  });

  test("the CLI's and control's keys are not accepted at the edge: the link carries no admin verb", async () => {
    for (const identity of ["admin", "control"]) {
      await assert.rejects(
        connect({ servers: edge, noAsyncTraces: true, reconnect: false, authenticator: await authenticatorFromFile(seed(identity)) }),
        /authorization violation/i,
        identity,
      );
    }
  });

  test("the leaf link's password is good for leaf connections only, and a wrong one connects nothing", async () => {
    const password = await readLeafSecret(creds.dir);
    await assert.rejects(connect({ servers: east, noAsyncTraces: true, reconnect: false, user: "leaf", pass: password }), /authorization violation/i);

    const bad = await startOtherLeaf("wrong-password", "0".repeat(32));
    // The barrier: the hub logs the refused leaf connection.
    await eventually(async () => /authorization violation/i.test(await readFile(bad.servers[0]!.logFile, "utf8")));
    assert.equal(await leafConnections(), 1, "only the real edge is connected");
  });

  test("a leaf node taken over (the link's password, its own software) cannot reach an admin verb or control's account", async () => {
    // nats-server 2.9 leaves it to the leaf to respect the permissions the hub sends it, so the
    // attacker speaks the leaf protocol itself and ignores them. Only account boundaries hold.
    const rogue = await rawLeaf(await readLeafSecret(creds.dir));
    // What the hub says it listens to in the sidecars' account: no admin verb, no JetStream API of its own.
    const interest = await rogue.interest();
    assert.ok(interest.includes("mesh.ctl.v1.quota.*") && interest.includes("mesh.ctl.v1.register.*"), interest.join(" "));
    assert.deepEqual(interest.filter((s) => s.startsWith("mesh.ctl.") && !/^mesh\.ctl\.v1\.(quota|register|keys)\.\*$/.test(s)), []);

    const { nc: site } = await connectAs(east, creds.dir, "site");
    const barrier = site.subscribe("mesh.rpc.site.>", { max: 1 });
    await site.flush();
    rogue.send("mesh.ctl.v1.delete", JSON.stringify({ kind: "Route", service: "echo" }), "_INBOX.rogue.1");
    rogue.send("$JS.API.STREAM.DELETE.KV_mesh_routes", "", "_INBOX.rogue.2");
    rogue.send("$JS.mesh.API.STREAM.DELETE.KV_mesh_routes", "", "_INBOX.rogue.3");
    // The barrier: a later message on the same connection, which the hub does deliver.
    rogue.send("mesh.rpc.site._.frontend", "barrier");
    for await (const _m of barrier) break;
    assert.deepEqual(rogue.replies(), [], "no answer from control or JetStream");
    const { nc: admin } = await connectAs(east, creds.dir, "admin");
    const { items } = await requestControl(admin, "get", { kind: "Route", service: "echo" });
    assert.equal(items.length, 1, "echo's Route still stands");
    rogue.close();
  });
});

/** A leaf connection made by hand: the hub's interest as it tells it, and messages sent regardless of it. */
async function rawLeaf(password: string) {
  const hub = new URL(sc.leafHubUrls[0]!);
  const socket = createConnection({ host: hub.hostname, port: Number(hub.port) });
  onFileEnd(() => socket.destroy());
  let text = "";
  let pongs = 0;
  const waiters: Array<() => void> = [];
  socket.on("data", (d) => {
    text += d.toString("latin1");
    pongs = text.split("PONG\r\n").length - 1;
    for (const w of waiters.splice(0)) w();
  });
  await new Promise<void>((resolve, reject) => socket.once("data", () => resolve()).once("error", reject));
  const ping = async () => {
    const want = pongs + 1;
    socket.write("PING\r\n");
    while (pongs < want) await new Promise<void>((r) => waiters.push(r));
  };
  socket.write(`CONNECT ${JSON.stringify({ user: "leaf", pass: password, name: "rogue", headers: true })}\r\nLS+ _INBOX.rogue.>\r\n`);
  await ping();
  return {
    /** the subjects the hub announced interest in (LS+) */
    interest: async () => {
      await ping();
      return [...text.matchAll(/^LS\+ (?:\S+ )?(\S+)/gm)].map((m) => m[1]!.replace(/^MESH /, ""));
    },
    send(subject: string, body: string, reply?: string) {
      socket.write(`LMSG ${subject} ${reply ? `+ ${reply} ` : ""}${Buffer.byteLength(body)}\r\n${body}\r\n`);
    },
    replies: () => [...text.matchAll(/^LMSG (_INBOX\.rogue\.\S+)/gm)].map((m) => m[1]!),
    close: () => socket.destroy(),
  };
}
