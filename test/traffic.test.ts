import assert from "node:assert/strict";
import type { ServerResponse } from "node:http";
import { before, describe, test } from "node:test";
import { headers as natsHeaders, type NatsConnection } from "@nats-io/transport-node";
import { controlRequest } from "../cli/client.ts";
import { Wire, rpcSubject } from "../schemas/index.ts";
import { DEFAULT_BUDGET_WINDOW_MS } from "../sidecar/resilience/retry.ts";
import { startApp, type TestApp } from "./helpers/apps.ts";
import { startTestControl } from "./helpers/control.ts";
import { call, eventually, meshRequest, spawnSidecar, startTestSidecar } from "./helpers/mesh.ts";
import { connectClient, startNats, type NatsCluster } from "./helpers/nats.ts";

let nats: NatsCluster;
let nc: NatsConnection;
let callerPort: number;
let caller: Awaited<ReturnType<typeof startTestSidecar>>;

before(async () => {
  nats = await startNats({ nodes: 1 });
  await startTestControl(nats.urls);
  nc = await connectClient(nats.urls);
  caller = await startTestSidecar({ service: "frontend", nats: nats.urls });
  callerPort = caller.outbound.port;
});

/** Applies documents through control and waits until the caller sidecar has them. */
async function applyRoute(doc: Record<string, unknown>): Promise<void> {
  const { applied } = await controlRequest(nc, "apply", { documents: [{ kind: "Route", ...doc }] });
  const revision = applied[0]!.revision;
  await eventually(async () => {
    const config = (await (await fetch(`http://127.0.0.1:${caller.admin.port}/config`)).json()) as { policies: Array<{ key: string; revision: number }> };
    return config.policies.some((p) => p.key === doc.service && p.revision === revision);
  });
}

/** A provider of `service`/`version` whose app answers with its name. */
async function provider(service: string, version: string, handler?: Parameters<typeof startApp>[0], extra: Record<string, unknown> = {}) {
  const app = await startApp(handler ?? ((_req, res) => void res.end(version)));
  const sidecar = await startTestSidecar({ service, version, app: app.url, nats: nats.urls, ...extra });
  return { app, sidecar };
}

async function send(service: string, n: number, opts: Parameters<typeof call>[3] = {}, concurrency = 10) {
  const results: Array<{ status: number; body: string; meshError?: string }> = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        next++;
        const res = await call(callerPort, service, "/", opts);
        results.push({ status: res.statusCode, body: await res.body.text(), meshError: res.headers["mesh-error"] as string | undefined });
      }
    }),
  );
  return results;
}

const count = (results: Array<{ body: string }>, body: string) => results.filter((r) => r.body === body).length;

/** The subjects the NATS server holds subscriptions on for a sidecar's connection (its monitoring endpoint). */
async function subscriptionsOf(sidecar: { nc: NatsConnection }): Promise<string[]> {
  const connz = (await (await fetch(`http://127.0.0.1:${nats.servers[0]!.monitorPort}/connz?cid=${sidecar.nc.info!.client_id}&subs=1`)).json()) as {
    connections: Array<{ subscriptions_list?: string[] }>;
  };
  return connz.connections.flatMap((c) => c.subscriptions_list ?? []);
}

describe("routing rules", () => {
  before(async () => {
    await provider("pricing", "v1");
    await provider("pricing", "v2");
  });

  test("a 90/10 split holds within 4 points over 2000 requests", async () => {
    await applyRoute({ service: "pricing", rules: [{ backends: [{ version: "v1", weight: 90 }, { version: "v2", weight: 10 }] }] });
    const results = await send("pricing", 2000);
    const v2 = count(results, "v2") / 2000;
    assert.equal(count(results, "v1") + count(results, "v2"), 2000);
    assert.ok(v2 >= 0.06 && v2 <= 0.14, `v2 got ${(v2 * 100).toFixed(1)}%`);
  });

  test("switching weights moves traffic without a restart (blue-green)", async () => {
    await applyRoute({ service: "pricing", rules: [{ backends: [{ version: "v1", weight: 0 }, { version: "v2", weight: 1 }] }] });
    assert.equal(count(await send("pricing", 50), "v2"), 50);
    await applyRoute({ service: "pricing", rules: [{ backends: [{ version: "v1", weight: 1 }, { version: "v2", weight: 0 }] }] });
    assert.equal(count(await send("pricing", 50), "v1"), 50);
  });

  test("header, exact path, path prefix and method rules; first match wins", async () => {
    await applyRoute({
      service: "pricing",
      rules: [
        { match: { headers: { "x-canary": "true" } }, backends: [{ version: "v2" }] },
        { match: { path: "/exact" }, backends: [{ version: "v2" }] },
        { match: { pathPrefix: "/beta", methods: ["POST"] }, backends: [{ version: "v2" }] },
        { match: { headersRegex: { "user-agent": "^tester/\\d+$" } }, backends: [{ version: "v2" }] },
        { backends: [{ version: "v1" }] },
      ],
    });
    const body = async (path: string, opts: Parameters<typeof call>[3] = {}) => (await call(callerPort, "pricing", path, opts)).body.text();
    assert.equal(await body("/", { headers: { "x-canary": "true" } }), "v2");
    assert.equal(await body("/", { headers: { "x-canary": "false" } }), "v1");
    assert.equal(await body("/exact?q=1"), "v2");
    assert.equal(await body("/exact/more"), "v1");
    assert.equal(await body("/beta/x", { method: "POST" }), "v2");
    assert.equal(await body("/beta/x", { method: "GET" }), "v1");
    assert.equal(await body("/betamax", { method: "POST" }), "v1", "a prefix matches whole segments");
    assert.equal(await body("/", { headers: { "user-agent": "tester/42" } }), "v2");
  });
});

describe("faults and mirroring", () => {
  test("fault.abort answers its status for about its percentage, marked fault_injected", async () => {
    const { app } = await provider("faulty", "v1");
    await applyRoute({ service: "faulty", rules: [{ fault: { abort: { status: 418, percent: 30 } } }] });
    const results = await send("faulty", 1000);
    const aborted = results.filter((r) => r.status === 418);
    assert.ok(aborted.every((r) => r.meshError === "fault_injected"));
    // Binomial(1000, 0.3): mean 300, sd 14.5; ±5 sd never fails by chance.
    assert.ok(aborted.length > 228 && aborted.length < 372, `${aborted.length} aborted`);
    assert.equal(app.seen.length, 1000 - aborted.length, "aborted requests never reach the app");
    // Barrier: without the fault, a later request on the same path reaches the app; no aborted one came before it.
    await applyRoute({ service: "faulty" });
    assert.equal((await send("faulty", 1))[0]!.status, 200);
    assert.equal(app.seen.length, 1000 - aborted.length + 1, "aborted requests never reach the app");
  });

  test("fault.delay delays requests (here past the route's deadline)", async () => {
    await provider("sleepy", "v1");
    await applyRoute({ service: "sleepy", timeoutMs: 100, rules: [{ fault: { delay: { ms: 5000, percent: 100 } } }] });
    const [r] = await send("sleepy", 1);
    assert.equal(r!.meshError, "timeout");
  });

  test("a mirror gets copies, and its slowness or absence never touches the caller", async () => {
    const held: ServerResponse[] = [];
    const { app: mirrorApp } = await provider("shop", "v3", (_req, res) => void held.push(res));
    const { app: primary } = await provider("shop", "v1");
    await applyRoute({ service: "shop", rules: [{ backends: [{ version: "v1" }], mirror: { version: "v3", percent: 100 } }] });
    const results = await send("shop", 20);
    assert.equal(count(results, "v1"), 20, "answered by the primary while the mirror holds every copy");
    await eventually(async () => mirrorApp.seen.length === 20);
    assert.ok(mirrorApp.seen.every((r) => r.headers["x-mesh-mirror"] === "true"));
    assert.equal(primary.seen.length, 20);
    for (const res of held) res.end("late");

    await applyRoute({ service: "shop", rules: [{ backends: [{ version: "v1" }], mirror: { version: "nobody", percent: 100 } }] });
    assert.equal(count(await send("shop", 20), "v1"), 20, "a mirror with no instance changes nothing");
  });
});

describe("retries", () => {
  test("an instance killed mid-run: zero failed GETs", async () => {
    const appA = await startApp((_req, res) => void setTimeout(() => res.end("a"), 5)); // why: requests in flight when the victim is killed
    const appB = await startApp((_req, res) => void setTimeout(() => res.end("b"), 5)); // why: as slow as appA, so both stay busy
    const victim = await spawnSidecar(["--service", "orders", "--app", appA.url, "--nats", nats.urls.join(",")]);
    await startTestSidecar({ service: "orders", app: appB.url, nats: nats.urls });
    await applyRoute({ service: "orders", retries: { attempts: 3, perTryTimeoutMs: 500, on: ["unavailable", "timeout", "app_unreachable"] } });
    await eventually(async () => count(await send("orders", 20), "a") > 0);
    const run = send("orders", 600, {}, 8);
    await eventually(async () => appA.seen.length > 100);
    victim.process.kill("SIGKILL");
    const results = await run;
    assert.equal(results.filter((r) => r.status !== 200).length, 0, JSON.stringify(results.find((r) => r.status !== 200)));
    assert.ok(count(results, "b") > 0 && count(results, "a") > 0);
  });

  test("a failing POST reaches the app exactly once; a GET is retried", async () => {
    const { app } = await provider("payments", "v1", (_req, res) => {
      res.statusCode = 500;
      res.end("boom");
    });
    await applyRoute({ service: "payments", retries: { attempts: 2, on: ["5xx"] } });
    const post = await call(callerPort, "payments", "/charge", { method: "POST", body: "x" });
    assert.equal(post.statusCode, 500);
    await post.body.dump();
    assert.equal(app.seen.filter((r) => r.method === "POST").length, 1);
    await (await call(callerPort, "payments", "/status")).body.dump();
    assert.equal(app.seen.filter((r) => r.method === "GET").length, 3, "1 try + 2 retries");
    // The GET, sent after the POST on the same path, is the barrier: no late retry of the POST arrived before it.
    assert.equal(app.seen.filter((r) => r.method === "POST").length, 1);
  });

  test("the retry budget caps retries when every instance fails", async () => {
    const { app } = await provider("doomed", "v1", (_req, res) => {
      res.statusCode = 503;
      res.end();
    });
    await applyRoute({ service: "doomed", retries: { attempts: 3, on: ["5xx"], budgetPercent: 20 } });
    const started = performance.now();
    await send("doomed", 100, {}, 4);
    // 100 first tries; retries ≤ 20% of them plus the floor of 10 per window (3 per request would be 300).
    // The bound follows from the budget, not from how fast this machine is: the sliding window always
    // covers its last 9/10, so a run within that counts every try in one window (20 + 10 retries); a
    // slower run, cut into k such spans, allows each span its floor and counts each first try in at most
    // two windows (k * 11 + 2 * 20, the 1 for rounding up).
    const spans = Math.ceil((performance.now() - started) / (0.9 * DEFAULT_BUDGET_WINDOW_MS));
    const maxRetries = spans <= 1 ? 20 + 10 : spans * 11 + 2 * 20;
    assert.ok(app.seen.length <= 100 + maxRetries, `${app.seen.length} requests reached the app (${spans} spans)`);
    assert.ok(app.seen.length > 100, "some retries happened");
    const metrics = await caller.registry.metrics();
    assert.match(metrics, /mesh_retries_total\{source="frontend",destination="doomed"\} \d+/);
  });
});

describe("circuit breaker", () => {
  test("opens after consecutive failures, half-opens after openMs, closes on success", async () => {
    let healthy = false;
    const { app } = await provider("fragile", "v1", (_req, res) => {
      res.statusCode = healthy ? 200 : 500;
      res.end(healthy ? "ok" : "fail");
    });
    // openMs is long enough that the five refusals below, a few ms of work, fall inside it on a stalled machine too
    await applyRoute({ service: "fragile", circuitBreaker: { consecutiveFailures: 3, openMs: 2_000 } });
    const gauge = async () => /mesh_circuit_breaker_state\{destination="fragile",version="_"\} (\d)/.exec(await caller.registry.metrics())?.[1];
    for (let i = 0; i < 3; i++) assert.equal((await send("fragile", 1))[0]!.status, 500);
    assert.equal(await gauge(), "1", "open");
    const refused = await send("fragile", 5, {}, 1);
    assert.ok(refused.every((r) => r.status === 503 && r.meshError === "circuit_open"));
    assert.equal(app.seen.length, 3, "refused calls were never sent");
    healthy = true;
    await eventually(async () => (await send("fragile", 1))[0]!.status === 200, 15_000, 100);
    assert.equal(app.seen.length, 4, "the probe was the first call sent since the circuit opened");
    assert.equal(await gauge(), "0", "closed again");
    assert.ok((await send("fragile", 10)).every((r) => r.status === 200));
  });
});

/**
 * How much slower one instance answers in the p2c-ewma test. Every sidecar
 * and app of this file share one event loop, so on a loaded machine all
 * latencies carry tens of ms of queueing, and peak-EWMA believes a spike at
 * once: a difference of 40 ms can drown in that; 200 ms stands clear of it.
 */
const SLOWER_MS = 200;

describe("balancing, deadlines and overload", () => {
  test(`p2c-ewma sends well under a third of requests to an instance ${SLOWER_MS} ms slower`, async () => {
    const apps: TestApp[] = [];
    for (const delay of [0, 0, SLOWER_MS]) {
      const app = await startApp((_req, res) => void setTimeout(() => res.end(String(delay)), delay)); // why: an instance that answers slowly is the subject
      apps.push(app);
      await startTestSidecar({ service: "latency", app: app.url, nats: nats.urls });
    }
    await applyRoute({ service: "latency", loadBalancer: "p2c-ewma" });
    // Until the slow instance has answered once: the caller knows all three and has measured it.
    await eventually(async () => (await send("latency", 3)).length === 3 && apps[2]!.seen.length > 0);
    const results = await send("latency", 600, {}, 4);
    const slow = count(results, String(SLOWER_MS));
    assert.equal(results.filter((r) => r.status !== 200).length, 0);
    assert.ok(slow < 600 / 6, `the slow instance got ${slow} of 600`);
  });

  test("a deadline crosses two hops: the nested call inherits what is left", async () => {
    const deepApp = await startApp((_req, res) => void setTimeout(() => res.end("deep"), 2000)); // why: slower than the 300 ms deadline, which is the subject
    await startTestSidecar({ service: "deep", app: deepApp.url, nats: nats.urls });
    let middlePort = 0;
    const middleApp = await startApp(async (req, res) => {
      // The app forwards the deadline header like it forwards traceparent.
      const nested = await call(middlePort, "deep", "/", { headers: { "x-mesh-deadline-ms": String(req.headers["x-mesh-deadline-ms"]) } });
      res.statusCode = nested.statusCode;
      res.end(await nested.body.text());
    });
    middlePort = (await startTestSidecar({ service: "middle", app: middleApp.url, nats: nats.urls })).outbound.port;
    const res = await call(callerPort, "middle", "/", { headers: { "x-mesh-timeout-ms": "300" } });
    assert.equal(res.statusCode, 504);
    await res.body.dump();
    const toMiddle = Number(middleApp.seen.at(-1)!.headers["x-mesh-deadline-ms"]);
    const toDeep = Number(deepApp.seen.at(-1)!.headers["x-mesh-deadline-ms"]);
    assert.ok(toMiddle > 0 && toMiddle <= 300, `middle got ${toMiddle}`);
    assert.ok(toDeep > 0 && toDeep <= toMiddle, `deep got ${toDeep}`);
  });

  test("a request whose deadline has passed is answered timeout without calling the app", async () => {
    const { app } = await provider("punctual", "v1");
    const h = natsHeaders();
    h.set(Wire.method, "GET");
    h.set(Wire.path, "/");
    h.set(Wire.deadline, String(Date.now() - 1000));
    await eventually(async () => (await meshRequest(nc, rpcSubject("punctual", "_", "frontend"), { headers: h, timeoutMs: 1000 })).headers?.get(Wire.error) === "timeout");
    assert.equal(app.seen.length, 0);
  });

  test("overload: beyond maxConcurrent the answer is 503 overloaded at once", async () => {
    const held: ServerResponse[] = [];
    const { app } = await provider("busy", "v1", (_req, res) => void held.push(res), { maxConcurrent: 2 });
    const answered: Array<{ status: number; meshError: unknown }> = [];
    const pending = Array.from({ length: 5 }, () =>
      call(callerPort, "busy", "/").then(async (r) => {
        await r.body.dump();
        answered.push({ status: r.statusCode, meshError: r.headers["mesh-error"] });
      }),
    );
    // Three answers arrive while the app still holds two requests: nothing waits in a queue.
    // (The two it holds may reach it after the three refusals are answered: wait for both.)
    await eventually(async () => answered.length === 3 && held.length === 2);
    assert.equal(app.seen.length, 2);
    assert.ok(answered.every((a) => a.status === 503 && a.meshError === "overloaded"));
    for (const res of held) res.end("done");
    await Promise.all(pending);
    assert.equal(answered.filter((a) => a.status === 200).length, 2);
  });

  test("a provider whose app stops answering leaves its queue groups until it answers again", async () => {
    const first = await provider("flaky", "v1", (_req, res) => void res.end("first"));
    await provider("flaky", "v1", (_req, res) => void res.end("second"));
    await eventually(async () => count(await send("flaky", 20), "first") > 0);
    const port = first.app.port;
    await first.app.close();
    await eventually(async () => (await fetch(`http://127.0.0.1:${first.sidecar.admin.port}/readyz`)).status === 503);
    // /readyz turns 503 as the sidecar starts to leave; the barrier is the server no longer holding its queue subscription.
    await eventually(async () => !(await subscriptionsOf(first.sidecar)).some((s) => s.startsWith("mesh.rpc.flaky.")));
    const while_down = await send("flaky", 20);
    assert.equal(count(while_down, "second"), 20, "nothing is sent to the instance whose app is down");
    await startApp((_req, res) => void res.end("first"), port);
    await eventually(async () => count(await send("flaky", 20), "first") > 0);
    assert.equal((await fetch(`http://127.0.0.1:${first.sidecar.admin.port}/readyz`)).status, 200);
  });
});
