// Secure mode across gateways (docs/multi-region.md): every server of a
// 2-cluster supercluster includes the same auth.conf from `mesh creds`; a
// caller in one cluster reaches a provider in the other with its own key,
// reads policy through control's imports across the gateway, and still
// cannot call as another. With every node of the buckets' home killed, a
// sidecar started in the other cluster gets the current policy through its
// region's control replica (verb keys), since its account imports no
// STREAM.INFO of the mirrors.
import assert from "node:assert/strict";
import { join } from "node:path";
import { before, describe, test } from "node:test";
import { type CredsResult, seedFile, writeCreds } from "../local/creds.ts";
import { startApp } from "./helpers/apps.ts";
import { tempDir } from "./helpers/cleanup.ts";
import { connectAs } from "./helpers/secure.ts";
import { startTestControl, type TestControl } from "./helpers/control.ts";
import { metricSum } from "./helpers/observability.ts";
import { eventually, startTestSidecar } from "./helpers/mesh.ts";
import { apply, bodiesOf, configOf, follows, instancesIn, served, startRegions, untilMirrorDirectGone, type Supercluster } from "./helpers/region.ts";
import { jetstreamManager } from "@nats-io/jetstream";
import { POLICY_BUCKETS, kvMirrorStream } from "../schemas/index.ts";

let sc: Supercluster;
let creds: CredsResult;
let westControl: TestControl;
const seed = (identity: string) => seedFile(creds.dir, identity);

before(async () => {
  const dir = await tempDir("natsmesh-region-secure-");
  creds = await writeCreds(join(dir, "creds"), ["frontend", "echo", "newcomer"]);
  sc = await startRegions({ clusters: 2, include: [creds.authConf] });
  // A control replica in each cluster, as mesh up runs them: requests from west are served by
  // west's replica (queue groups prefer it), whose JetStream writes cross the gateway to the
  // buckets' home in east.
  await startTestControl(sc.clusters[0]!.urls, undefined, { creds: seed("control") });
  westControl = await startTestControl(sc.clusters[1]!.urls, undefined, { creds: seed("control") });
});

describe("secure mode across gateways", () => {
  test("a caller in east reaches a provider in west with its own key, and follows policy applied by the admin", async () => {
    const [east, west] = [sc.clusters[0]!.urls, sc.clusters[1]!.urls];
    const app = await startApp((_req, res) => void res.end("west"));
    await startTestSidecar({ service: "echo", app: app.url, nats: west, creds: seed("echo") });
    const caller = await startTestSidecar({ service: "frontend", nats: east, creds: seed("frontend") });
    assert.equal((await configOf(caller.admin.port)).region, "east");
    await eventually(async () => (await served(caller.outbound.port, "echo")).body === "west");
    assert.deepEqual(new Set(await bodiesOf(caller.outbound.port, "echo")), new Set(["west"]));
    // The admin applies a Route in west; the caller in east applies it.
    const { nc: admin } = await connectAs(west, creds.dir, "admin");
    const [revision] = await apply(admin, { kind: "Route", service: "echo", timeoutMs: 3000 });
    await eventually(() => follows(caller.admin.port, "echo", revision!));
    // The registry lists the provider with its region, written by control across the gateway.
    await eventually(async () => (await instancesIn(admin, "echo", "west")) === 1);
  });

  test("a key still binds identity across the gateway: frontend's key cannot publish as echo", async () => {
    const { nc, errors } = await connectAs(sc.clusters[0]!.urls, creds.dir, "frontend");
    nc.publish("mesh.rpc.echo._.echo", "spoofed");
    await nc.flush();
    await eventually(async () => errors.some((e) => /permissions violation/i.test(e)));
  });
});


// Last: it kills the home cluster.
describe("secure mode, the buckets' home cluster lost", () => {
  test("a sidecar started in west during the outage gets the current policy through west's control replica", async () => {
    const west = sc.clusters[1]!.urls;
    const { nc: admin } = await connectAs(west, creds.dir, "admin");
    const teapot = { match: { pathPrefix: "/teapot" }, fault: { abort: { status: 418, percent: 100 } } };
    const [revision] = await apply(admin, { kind: "Route", service: "echo", timeoutMs: 3000, rules: [teapot] });
    // The barrier: west's mirror of the routes holds that revision before the home goes.
    const jsm = await jetstreamManager(westControl.nc);
    await eventually(async () => (await jsm.streams.info(kvMirrorStream(POLICY_BUCKETS.Route, "west"))).state.last_seq >= revision!);
    for (const node of sc.clusters[0]!.servers) await node.kill("SIGKILL");
    // Past the first seconds, when west's mirror still answers the bucket's direct gets.
    await untilMirrorDirectGone(westControl.nc);
    const listed = () => metricSum(westControl.registry, "mesh_control_requests_total", { verb: "keys", outcome: "ok" });
    const before = await listed();
    const newcomer = await startTestSidecar({ service: "newcomer", nats: west, creds: seed("newcomer") });
    const config = await configOf(newcomer.admin.port);
    assert.equal(config.region, "west");
    assert.equal(config.policies.find((p) => p.bucket === POLICY_BUCKETS.Route && p.key === "echo")?.revision, revision);
    // The Route takes effect on its calls, served by west's echo.
    assert.equal((await served(newcomer.outbound.port, "echo")).body, "west");
    const faulted = await served(newcomer.outbound.port, "echo", "/teapot");
    assert.equal(faulted.status, 418);
    assert.equal(faulted.error, "fault_injected");
    // Its keys came through control: its key may not ask STREAM.INFO of the mirror.
    assert.ok((await listed()) > before, "west's control listed keys for it");
  });
});
