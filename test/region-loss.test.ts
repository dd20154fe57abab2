// Losing a whole region (docs/multi-region.md): clusters east (home of the
// buckets) and west joined by gateways, plus a leaf node. With every node of
// east killed, west keeps serving with its own instances and its policy; a
// sidecar started in west during the outage still gets the current policy
// from west's mirrors; `mesh apply` fails with exit 3 and applies nothing.
// Once east is back, registry, policy and telemetry converge.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import type { NatsConnection } from "@nats-io/transport-node";
import { requestControl } from "../control/index.ts";
import { startApp } from "./helpers/apps.ts";
import { startTestControl } from "./helpers/control.ts";
import { eventually, runMesh, startTestSidecar } from "./helpers/mesh.ts";
import { apply, bodiesOf, cliConnection, configOf, served, startRegions, untilMirrorDirectGone, type Supercluster } from "./helpers/region.ts";

let sc: Supercluster;
let east: string[];
let west: string[];
let westCli: NatsConnection;
let routeRevision: number;
let westCaller: Awaited<ReturnType<typeof startTestSidecar>>;

const ROUTE = { kind: "Route", service: "echo", timeoutMs: 4000, retries: { attempts: 2, perTryTimeoutMs: 1500, on: ["unavailable", "timeout"] } };

/** The revision of the echo Route a sidecar has applied, if any. */
async function routeRevisionAt(adminPort: number): Promise<number | undefined> {
  return (await configOf(adminPort)).policies.find((p) => p.bucket === "mesh_routes" && p.key === "echo")?.revision;
}

before(async () => {
  sc = await startRegions({ clusters: 2, leaf: true });
  [east, west] = [sc.clusters[0]!.urls, sc.clusters[1]!.urls];
  await startTestControl(east);
  await startTestControl(west);
  westCli = await cliConnection(west);
  for (const region of ["east", "west"] as const) {
    const app = await startApp((_req, res) => void res.end(region));
    await startTestSidecar({ service: "echo", instance: `echo-${region}`, app: app.url, nats: region === "east" ? east : west });
  }
  routeRevision = (await apply(westCli, ROUTE))[0]!;
  westCaller = await startTestSidecar({ service: "frontend", nats: west });
  await eventually(async () => (await routeRevisionAt(westCaller.admin.port)) === routeRevision);
  await eventually(async () => (await served(westCaller.outbound.port, "echo")).body === "west");
});

describe("losing a whole region", () => {
  test("every node of east killed: west's callers are served by west, 20 of 20, and keep their policy", async () => {
    for (const node of sc.clusters[0]!.servers) await node.kill("SIGKILL");
    assert.deepEqual(new Set(await bodiesOf(westCaller.outbound.port, "echo")), new Set(["west"]));
    assert.equal(await routeRevisionAt(westCaller.admin.port), routeRevision);
  });

  test("a sidecar started in west during the outage gets the current policy from west's mirror", async () => {
    // Past the first seconds, when west's mirror still answers the bucket's direct gets: it is read by its own name.
    await untilMirrorDirectGone(westCli);
    const newcomer = await startTestSidecar({ service: "newcomer", nats: west });
    assert.equal(await routeRevisionAt(newcomer.admin.port), routeRevision);
    assert.deepEqual(new Set(await bodiesOf(newcomer.outbound.port, "echo")), new Set(["west"]));
  });

  test("mesh apply during the outage: a clear message, exit 3, nothing applied", async () => {
    const changed = JSON.stringify({ ...ROUTE, timeoutMs: 9000 });
    const res = await runMesh(["apply", "-f", "-", "--nats", west.join(",")], { stdin: changed });
    assert.equal(res.code, 3, res.stderr);
    assert.match(res.stderr, /policy buckets \(home cluster 'east'\) cannot be reached, so nothing was applied/);
  });

  test("east back: nothing was applied meanwhile, and registry, policy and telemetry converge", async () => {
    for (const node of sc.clusters[0]!.servers) await node.restart();
    // Nothing from the refused apply: the newest revision is still the one before the outage.
    await eventually(async () => {
      const { items } = await requestControl(westCli, "get", { kind: "Route", service: "echo" });
      return items[0]?.revision === routeRevision;
    }, 30_000);
    // The registry lists both regions again (east's sidecars reconnected and heartbeat).
    await eventually(async () => {
      const { services } = await requestControl(westCli, "services", {});
      const echo = services.find((s) => s.service === "echo");
      return echo?.regions?.east === 1 && echo.regions.west === 1;
    }, 60_000);
    // A change now reaches the sidecar that started during the outage.
    const newcomer = await startTestSidecar({ service: "newcomer", nats: west });
    // Writes are taken again once the home's streams have leaders (seconds after its servers are back);
    // until then apply is refused (store_unavailable) or unanswered in time, and a user tries again.
    let next = 0;
    await eventually(async () => {
      next = (await apply(westCli, { ...ROUTE, timeoutMs: 5000 }))[0]!;
      return true;
    }, 60_000, 1_000);
    assert.ok(next > routeRevision);
    await eventually(async () => (await routeRevisionAt(westCaller.admin.port)) === next && (await routeRevisionAt(newcomer.admin.port)) === next, 20_000);
    // Telemetry: control in east merges west's calls again.
    const eastCli = await cliConnection(east);
    await bodiesOf(westCaller.outbound.port, "echo", 5);
    await eventually(async () => {
      const stats = await requestControl(eastCli, "stats", {});
      return JSON.stringify(stats).includes("frontend");
    }, 20_000);
  });
});
