import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { headers as natsHeaders, type NatsConnection } from "@nats-io/transport-node";
import { controlRequest } from "../cli/client.ts";
import { Wire, rpcSubject } from "../schemas/index.ts";
import { startApp, type TestApp } from "./helpers/apps.ts";
import { startTestControl } from "./helpers/control.ts";
import { call, eventually, meshRequest, startTestSidecar } from "./helpers/mesh.ts";
import { connectClient, startNats, type NatsCluster } from "./helpers/nats.ts";

let nats: NatsCluster;
let nc: NatsConnection;
let orders: TestApp;
let provider: Awaited<ReturnType<typeof startTestSidecar>>;
const callers: Record<string, number> = {};

before(async () => {
  nats = await startNats({ nodes: 1 });
  await startTestControl(nats.urls);
  nc = await connectClient(nats.urls);
  orders = await startApp((_req, res) => void res.end("ok"));
  provider = await startTestSidecar({ service: "orders", app: orders.url, nats: nats.urls });
  for (const name of ["frontend", "admin-tool", "billing"]) callers[name] = (await startTestSidecar({ service: name, nats: nats.urls })).outbound.port;
  const { applied } = await controlRequest(nc, "apply", {
    documents: [
      {
        kind: "Authz",
        service: "orders",
        default: "deny",
        rules: [
          { from: ["frontend", "admin-*"], methods: ["GET", "POST"], paths: ["/orders", "/orders/*"] },
          { from: ["billing"], methods: ["GET"], paths: ["/orders/**"] },
        ],
      },
    ],
  });
  // Every sidecar has the document once the provider does and one denial shows at a caller.
  await eventually(async () => (await call(callers.billing!, "orders", "/orders", { method: "DELETE" })).statusCode === 403);
  void applied;
});

async function status(callerName: string, method: string, path: string): Promise<number> {
  const res = await call(callers[callerName]!, "orders", path, { method: method as "GET" });
  await res.body.dump();
  if (res.statusCode === 403) assert.equal(res.headers["mesh-error"], "forbidden");
  return res.statusCode;
}

describe("authorization", () => {
  test("allowed and denied by caller, caller glob, method and path", async () => {
    assert.equal(await status("frontend", "GET", "/orders"), 200);
    assert.equal(await status("frontend", "POST", "/orders/42"), 200);
    assert.equal(await status("admin-tool", "GET", "/orders/1"), 200);
    assert.equal(await status("frontend", "DELETE", "/orders/42"), 403, "method not allowed");
    assert.equal(await status("frontend", "GET", "/orders/42/items"), 403, "* stays within one segment");
    assert.equal(await status("billing", "GET", "/orders/42/items"), 200, "** crosses segments");
    assert.equal(await status("billing", "POST", "/orders"), 403);
    assert.equal(await status("frontend", "GET", "/admin"), 403, "path not allowed");
  });

  test("the provider's check counts: a request that skips the caller's check is refused too", async () => {
    const before = orders.seen.length;
    const h = natsHeaders();
    h.set(Wire.method, "DELETE");
    h.set(Wire.path, "/orders/1");
    const reply = await meshRequest(nc, rpcSubject("orders", "_", "frontend"), { headers: h });
    assert.equal(reply.headers?.get(Wire.error), "forbidden");
    assert.equal(reply.headers?.get(Wire.status), "403");
    assert.equal(orders.seen.length, before, "the app never saw it");
  });

  test("decisions are counted in mesh_authz_decisions_total", async () => {
    const metrics = await provider.registry.metrics();
    assert.match(metrics, /mesh_authz_decisions_total\{service="orders",caller="frontend",decision="allow"\} [1-9]/);
    assert.match(metrics, /mesh_authz_decisions_total\{service="orders",caller="frontend",decision="deny"\} [1-9]/);
  });

  test("deleting the Authz document allows every caller again", async () => {
    await controlRequest(nc, "delete", { kind: "Authz", service: "orders" });
    await eventually(async () => (await status("billing", "DELETE", "/anything")) === 200);
  });
});

describe("quota through the sidecars", () => {
  test("over the limit: 429 quota_exceeded with Retry-After and RateLimit headers; another caller unaffected", async () => {
    await controlRequest(nc, "apply", { documents: [{ kind: "Quota", service: "orders", limits: [{ caller: "frontend", requests: 5, per: "hour" }] }] });
    await eventually(async () => {
      const res = await call(callers.frontend!, "orders", "/orders");
      await res.body.dump();
      return res.statusCode === 429;
    });
    const res = await call(callers.frontend!, "orders", "/orders");
    assert.equal(res.statusCode, 429);
    assert.equal(res.headers["mesh-error"], "quota_exceeded");
    assert.ok(Number(res.headers["retry-after"]) > 0);
    assert.equal(res.headers["ratelimit-limit"], "5");
    assert.equal(res.headers["ratelimit-remaining"], "0");
    assert.ok(Number(res.headers["ratelimit-reset"]) > 0);
    await res.body.dump();
    assert.equal(await status("billing", "GET", "/orders"), 200);
  });
});
