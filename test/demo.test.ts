import assert from "node:assert/strict";
import { before, test } from "node:test";
import { demoServices, startDemoApp, stopDemoApp, waitForHttp } from "../services/manifest.ts";
import { onFileEnd } from "./helpers/cleanup.ts";
import { call, eventually, startTestSidecar, freePort } from "./helpers/mesh.ts";
import { startNats } from "./helpers/nats.ts";

let ingressPort: number;

/** The whole polyglot demo: every app behind its own in-process sidecar, on a 3-node cluster. */
before(async () => {
  const nats = await startNats({ nodes: 3 });
  for (const [i, svc] of demoServices.entries()) {
    const appPort = await freePort();
    // Spread the sidecars over the nodes, so calls cross cluster routes.
    const urls = [...nats.urls.slice(i % 3), ...nats.urls.slice(0, i % 3)];
    const sidecar = await startTestSidecar({ service: svc.service, version: svc.version, app: `http://127.0.0.1:${appPort}`, nats: [urls[0]!] });
    const child = startDemoApp(svc, { port: appPort, outbound: `http://127.0.0.1:${sidecar.outbound.port}` });
    onFileEnd(() => stopDemoApp(child));
    await waitForHttp(`http://127.0.0.1:${appPort}${svc.healthPath}`, 15_000, child);
  }
  ingressPort = (await startTestSidecar({ service: "ingress", nats: nats.urls })).outbound.port;
});

test("the Python catalog service answers through the mesh", async () => {
  await eventually(async () => (await call(ingressPort, "catalog", "/items")).statusCode === 200);
  const res = await call(ingressPort, "catalog", "/items");
  const items = (await res.body.json()) as Array<{ id: string; name: string }>;
  assert.ok(items.length > 0);
  assert.equal(res.headers["x-mesh-version"], "v1");
  const missing = await call(ingressPort, "catalog", "/items/nope");
  assert.equal(missing.statusCode, 404);
  assert.equal(missing.headers["mesh-error"], undefined, "the app's 404, not the mesh's");
  await missing.body.dump();
});

test("one request to the TypeScript frontend fans out to Python catalog and both pricing versions", async () => {
  const versions = new Set<string>();
  await eventually(async () => {
    const res = await call(ingressPort, "frontend", "/products");
    if (res.statusCode !== 200) {
      await res.body.dump();
      return false;
    }
    const body = (await res.body.json()) as { products: Array<{ name: string; price: number; pricedBy: string }> };
    assert.ok(body.products.length > 0);
    for (const p of body.products) {
      assert.equal(typeof p.price, "number");
      versions.add(p.pricedBy);
    }
    return versions.has("v1") && versions.has("v2");
  }, 20_000);
});
