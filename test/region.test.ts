// Multi-region on a real supercluster (docs/multi-region.md): clusters east
// and west joined by gateways, a leaf node "edge" on east. Locality of queue
// groups and of p2c-ewma, localityFailover, failover on instance loss, leaf
// callers and providers, and a quota that stays global across clusters.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import pino from "pino";
import { requestControl } from "../control/index.ts";
import { validatePolicy, type QuotaPolicy } from "../schemas/index.ts";
import { createQuotaGate, type AdmitDecision, type QuotaGate } from "../sidecar/inbound/quota-gate.ts";
import { startApp } from "./helpers/apps.ts";
import { onFileEnd } from "./helpers/cleanup.ts";
import { startTestControl, type TestControl } from "./helpers/control.ts";
import { eventually, runMesh, spawnSidecar, startTestSidecar } from "./helpers/mesh.ts";
import { apply, bodiesOf, cliConnection, configOf, served, startRegions, tapRequests, type Supercluster } from "./helpers/region.ts";

let sc: Supercluster;
let east: string[];
let west: string[];
let edge: string[];
let cli: NatsConnection;
let controls: TestControl[];
/** an application per region that answers with the region's name */
const apps: Record<string, string> = {};
/** a quota clock the gates and control share: 10 s into a minute, whatever the real time */
const quotaClock = (Math.floor(Date.now() / 60_000) + 1) * 60_000 + 10_000;

before(async () => {
  sc = await startRegions({ clusters: 2, leaf: true });
  [east, west, edge] = [sc.clusters[0]!.urls, sc.clusters[1]!.urls, sc.leaf!.urls];
  // Control in east first: the buckets' home is east; the one in west makes west's mirrors.
  controls = [await startTestControl(east, undefined, { now: () => quotaClock }), await startTestControl(west, undefined, { now: () => quotaClock })];
  for (const region of ["east", "west", "edge"]) apps[region] = (await startApp((_req, res) => void res.end(region))).url;
  cli = await cliConnection(east);
});

/** `service` served in each of `regions`, each sidecar connected to its region's cluster. */
async function providers(service: string, regions: Array<"east" | "west" | "edge">) {
  const urls = { east, west, edge };
  return Promise.all(regions.map((r) => startTestSidecar({ service, instance: `${service}-${r}`, app: apps[r]!, nats: urls[r] })));
}

describe("regions on a supercluster", () => {
  test("each sidecar knows its region from the server's INFO; mesh services shows instances by region", async () => {
    const [a, b] = await providers("echo", ["east", "west"]);
    assert.equal((await configOf(a!.admin.port)).region, "east");
    assert.equal((await configOf(b!.admin.port)).region, "west");
    const leafCaller = await startTestSidecar({ service: "probe", nats: edge });
    assert.equal((await configOf(leafCaller.admin.port)).region, "edge");
    const pinned = await startTestSidecar({ service: "probe", nats: east, region: "far" });
    assert.equal((await configOf(pinned.admin.port)).region, "far", "--region wins over the server's cluster");
    await eventually(async () => {
      const res = await runMesh(["services", "-o", "json", "--nats", east.join(",")]);
      const echo = (JSON.parse(res.stdout) as Array<{ service: string; regions?: Record<string, number> }>).find((s) => s.service === "echo");
      return echo?.regions?.east === 1 && echo.regions.west === 1;
    });
    const table = await runMesh(["services", "--nats", east.join(",")]);
    assert.match(table.stdout, /REGIONS/);
    assert.match(table.stdout, /echo\s+v1\s+2\s+2\/2 ready\s+east:1 west:1/);
  });

  test("queue-group calls stay in the caller's cluster: 20 of 20 served locally on each side", async () => {
    const fromEast = await startTestSidecar({ service: "frontend", nats: east });
    const fromWest = await startTestSidecar({ service: "frontend", nats: west });
    // Interest crosses the gateways asynchronously: wait until each side reaches its own instance.
    await eventually(async () => (await served(fromEast.outbound.port, "echo")).body === "east");
    await eventually(async () => (await served(fromWest.outbound.port, "echo")).body === "west");
    assert.deepEqual(new Set(await bodiesOf(fromEast.outbound.port, "echo")), new Set(["east"]));
    assert.deepEqual(new Set(await bodiesOf(fromWest.outbound.port, "echo")), new Set(["west"]));
  });

  test("telemetry merged by control labels requests with the reporting sidecar's cluster; access records and mesh top carry the region", async () => {
    const fromWest = await startTestSidecar({ service: "frontend", nats: west });
    await eventually(async () => (await served(fromWest.outbound.port, "echo")).body === "west");
    // The replica holding the telemetry lease exposes the merged series.
    await eventually(async () => {
      const text = (await Promise.all(controls.map((c) => c.registry.metrics()))).join("\n");
      return /mesh_requests_total\{[^}]*source="frontend"[^}]*destination="echo"[^}]*cluster="west"\}/.test(text);
    }, 20_000);
    await eventually(async () => {
      const { records } = await requestControl(cli, "logs", { service: "echo" });
      return records.some(({ record: r }) => r.reporter.startsWith("frontend/") && r.region === "west");
    }, 20_000);
    // mesh top: a row per callers' cluster.
    await eventually(async () => {
      const res = await runMesh(["top", "echo", "--once", "--window", "60s", "--nats", west.join(",")]);
      return /SOURCE\s+CLUSTER\s+DESTINATION/.test(res.stdout) && /frontend\s+west\s+echo/.test(res.stdout);
    }, 20_000);
  });

  test("p2c-ewma picks the caller's region; it crosses only once no instance there is ready", async () => {
    const [lbEast] = await providers("lb", ["east", "west"]);
    const tap = tapRequests(cli, "lb");
    await apply(cli, { kind: "Route", service: "lb", loadBalancer: "p2c-ewma" });
    const caller = await startTestSidecar({ service: "frontend", nats: east });
    // p2c-ewma addresses instances on their own subjects once the registry lists both.
    const viaInstance = (instance: string) => async () => {
      tap.subjects.length = 0;
      const r = await served(caller.outbound.port, "lb");
      await cli.flush();
      return r.status === 200 && tap.subjects.some((s) => s.startsWith(`mesh.rpc.lb.~${instance}.`));
    };
    await eventually(viaInstance("lb-east"));
    tap.subjects.length = 0;
    assert.deepEqual(new Set(await bodiesOf(caller.outbound.port, "lb")), new Set(["east"]));
    await cli.flush();
    assert.ok(tap.subjects.length >= 20 && tap.subjects.every((s) => s.startsWith("mesh.rpc.lb.~lb-east.")), tap.subjects.join(" "));
    // East's only instance leaves: calls cross to west, still addressed by instance.
    await lbEast!.drain();
    await eventually(viaInstance("lb-west"), 20_000);
    assert.deepEqual(new Set(await bodiesOf(caller.outbound.port, "lb")), new Set(["west"]));
  });

  test("a Route with localityFailover: false refuses to cross: 503 unavailable, saying why", async () => {
    await providers("pinned", ["west"]);
    await apply(cli, { kind: "Route", service: "pinned", localityFailover: false });
    const fromWest = await startTestSidecar({ service: "frontend", nats: west });
    const fromEast = await startTestSidecar({ service: "frontend", nats: east });
    await eventually(async () => (await served(fromWest.outbound.port, "pinned")).body === "west");
    const refused = await served(fromEast.outbound.port, "pinned");
    assert.equal(refused.status, 503);
    assert.equal(refused.error, "unavailable");
    assert.match(refused.body, /no ready instance of 'pinned' in region 'east', and its route has localityFailover: false/);
  });

  test("failover on instance loss: after kill -9 of the local instance, 20 of 20 are served by the other region", async () => {
    await apply(cli, { kind: "Route", service: "solo", retries: { attempts: 2, perTryTimeoutMs: 2000, on: ["unavailable", "timeout"] } });
    const local = await spawnSidecar(["--service", "solo", "--instance", "solo-east", "--app", apps.east!, "--nats", east.join(","), "--log-level", "info"]);
    await providers("solo", ["west"]);
    const caller = await startTestSidecar({ service: "frontend", nats: east });
    await eventually(async () => (await served(caller.outbound.port, "solo")).body === "east");
    local.process.kill("SIGKILL");
    await local.exited;
    assert.deepEqual(new Set(await bodiesOf(caller.outbound.port, "solo")), new Set(["west"]));
  });

  test("leaf node: a leaf caller reaches the clusters, a leaf provider serves the clusters, and leaf callers prefer it", async () => {
    const leafCaller = await startTestSidecar({ service: "frontend", nats: edge });
    // echo has instances in east and west only: the leaf's calls go over its hub connection.
    await eventually(async () => (await served(leafCaller.outbound.port, "echo")).status === 200);
    assert.equal((await bodiesOf(leafCaller.outbound.port, "echo")).length, 20);
    // A service only the leaf serves, called from a cluster.
    await providers("edgeonly", ["edge"]);
    const fromWest = await startTestSidecar({ service: "frontend", nats: west });
    await eventually(async () => (await served(fromWest.outbound.port, "edgeonly")).body === "edge");
    assert.deepEqual(new Set(await bodiesOf(fromWest.outbound.port, "edgeonly")), new Set(["edge"]));
    // An echo instance at the leaf: the leaf's callers are served there.
    await providers("echo", ["edge"]);
    await eventually(async () => (await served(leafCaller.outbound.port, "echo")).body === "edge");
    assert.deepEqual(new Set(await bodiesOf(leafCaller.outbound.port, "echo")), new Set(["edge"]));
  });

  test("quota stays global: 300/minute over instances in two clusters admits 300 (at most one lease more), not 600", async () => {
    const doc = validatePolicy({ kind: "Quota", service: "counted", limits: [{ caller: "frontend", requests: 300, per: "minute" }] });
    assert.ok(doc.ok);
    const conns = await Promise.all([east, west, east, west].map((urls) => connect({ servers: urls, noAsyncTraces: true })));
    const gates: QuotaGate[] = conns.map((nc) => {
      onFileEnd(() => nc.close());
      const gate = createQuotaGate({ nc, service: "counted", logger: pino({ level: "silent" }), now: () => quotaClock, leaseTimeoutMs: 5_000 });
      gate.setPolicy(doc.value as QuotaPolicy);
      onFileEnd(() => gate.close());
      return gate;
    });
    const decisions: AdmitDecision[] = [];
    // 600 requests, 150 per instance, in waves that keep every instance leasing at once.
    for (let wave = 0; wave < 30; wave++) decisions.push(...(await Promise.all(gates.flatMap((g) => Array.from({ length: 5 }, () => g.admit("frontend"))))));
    const admitted = decisions.filter((d) => d.allowed).length;
    assert.ok(admitted >= 300 && admitted <= 315, `admitted ${admitted} of 600`);
  });
});
