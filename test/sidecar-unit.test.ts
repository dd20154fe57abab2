import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { headers } from "@nats-io/transport-node";
import { parseRpcSubject, providerSubscriptions, rpcSubject } from "../schemas/index.ts";
import { MeshError, childSpan, childTraceparent, resolveTarget } from "../sidecar/index.ts";
import { natsHeadersToFlat, requestHeadersToNats, responseHeadersToNats } from "../sidecar/http-wire.ts";
import { SIDECAR_V8_FLAGS, capsYoungGeneration, sidecarV8Flags } from "../sidecar/v8-flags.ts";
import { readinessOf } from "../sidecar/sidecar.ts";

describe("resolveTarget", () => {
  test("absolute-form request targets name the service", () => {
    assert.deepEqual(resolveTarget("http://orders/api/1?x=2", undefined), { service: "orders", path: "/api/1?x=2" });
    assert.deepEqual(resolveTarget("http://orders:8080", undefined), { service: "orders", path: "/" });
    assert.deepEqual(resolveTarget("http://orders.mesh/a", "ignored"), { service: "orders", path: "/a" });
  });

  test("Host header forms: bare, .mesh, .localhost, with a port", () => {
    for (const host of ["orders", "orders.mesh", "orders.localhost", "orders.localhost:15001", "ORDERS"]) {
      assert.deepEqual(resolveTarget("/api/1", host), { service: "orders", path: "/api/1" }, host);
    }
  });

  test("anything else is bad_target", () => {
    for (const [url, host] of [
      ["/x", undefined],
      ["/x", "127.0.0.1:15001"],
      ["/x", "orders.example.com"],
      ["/x", "-bad"],
      ["https://orders/x", undefined],
      ["*", "orders"],
    ] as const) {
      const r = resolveTarget(url, host);
      assert.ok(r instanceof MeshError, `${url} ${host}`);
      assert.equal(r.code, "bad_target");
      assert.equal(r.status, 400);
    }
  });
});

describe("subjects", () => {
  test("request subjects carry the caller and parse back", () => {
    const s = rpcSubject("pricing", "v2", "frontend");
    assert.equal(s, "mesh.rpc.pricing.v2.frontend");
    assert.deepEqual(parseRpcSubject(s), { service: "pricing", version: "v2", caller: "frontend" });
    assert.equal(parseRpcSubject("mesh.ctl.v1.apply"), undefined);
  });

  test("a provider joins its version's group and the any-version group", () => {
    assert.deepEqual(providerSubscriptions("pricing", "v1"), [
      { subject: "mesh.rpc.pricing.v1.*", queue: "pricing.v1" },
      { subject: "mesh.rpc.pricing._.*", queue: "pricing" },
    ]);
  });
});

describe("traceparent", () => {
  test("continues the application's trace with a new span", () => {
    const parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const child = childTraceparent(parent);
    assert.match(child, /^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/);
    assert.notEqual(child, parent);
  });

  test("names the incoming span as the parent, or none for a new trace", () => {
    assert.equal(childSpan("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").parentSpanId, "b7ad6b7169203331");
    assert.equal(childSpan(undefined).parentSpanId, undefined);
  });

  test("starts a new trace when none or a malformed one is given", () => {
    for (const bad of [undefined, "garbage", "00-00000000000000000000000000000000-b7ad6b7169203331-01"]) {
      assert.match(childTraceparent(bad), /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    }
  });
});

describe("header conversion", () => {
  test("drops hop-by-hop headers, those named by Connection, and mesh-owned ones; keeps repeats", () => {
    const h = requestHeadersToNats([
      "Host", "orders",
      "Connection", "keep-alive, X-Secret",
      "X-Secret", "1",
      "Transfer-Encoding", "chunked",
      "X-Mesh-Caller", "forged",
      "traceparent", "00-x",
      "Accept", "a",
      "Accept", "b",
    ]);
    assert.deepEqual(natsHeadersToFlat(h), ["host", "orders", "accept", "a", "accept", "b"]);
  });

  test("response headers keep repeats and drop hop-by-hop ones and a forged mesh-error", () => {
    const h = responseHeadersToNats(headers(), {
      "set-cookie": ["a=1", "b=2"],
      "keep-alive": "timeout=5",
      "mesh-error": "forbidden",
      "x-one": "1",
    });
    assert.deepEqual(natsHeadersToFlat(h), ["set-cookie", "a=1", "set-cookie", "b=2", "x-one", "1"]);
  });

  test("mesh fields never reach an application", () => {
    const h = headers();
    h.set("@method", "GET");
    h.set("x-app", "1");
    assert.deepEqual(natsHeadersToFlat(h), ["x-app", "1"]);
  });
});

describe("V8 flags of a sidecar process", () => {
  test("all of them by default; one given on node's command line, in any form, is left to it", () => {
    assert.deepEqual(sidecarV8Flags([]), [...SIDECAR_V8_FLAGS]);
    assert.deepEqual(sidecarV8Flags(["--enable-source-maps"]), [...SIDECAR_V8_FLAGS]);
    assert.deepEqual(sidecarV8Flags(["--heap-growing-percent=20"]), ["--liftoff-only"]);
    assert.deepEqual(sidecarV8Flags(["--no-liftoff-only"]), ["--heap-growing-percent=50"]);
    assert.deepEqual(sidecarV8Flags(["--liftoff-only", "--heap-growing-percent=100"]), []);
    assert.deepEqual(sidecarV8Flags(["--heap_growing_percent=20", "--liftoff_only"]), []);
  });

  test("the young generation is capped unless node's command line sizes it, in any form", () => {
    for (const args of [[], ["--enable-source-maps"], ["--max-old-space-size=100"], ["--max-semi-space-sizes=1"]]) {
      assert.equal(capsYoungGeneration(args), true, args.join(" "));
    }
    for (const args of [
      ["--max-semi-space-size=16"],
      ["--max_semi_space_size=2"],
      ["--enable-source-maps", "--min-semi-space-size=8"],
      ["--semi-space-growth-factor=4"],
      ["--semi_space_growth_factor=1"],
    ]) {
      assert.equal(capsYoungGeneration(args), false, args.join(" "));
    }
  });
});

describe("readiness", () => {
  const base = { state: {}, connected: () => true, policies: { loaded: true } };
  const of = (provider: { health: { up: boolean }; inbound: { joined: boolean } } | undefined) => readinessOf({ app: "http://127.0.0.1:1" }, { ...base, provider });

  test("a provider whose app answers is not ready until the server has its subscriptions", async () => {
    // The window this closes: health turned up, and the queue-group subscriptions were not flushed yet,
    // so a caller's request found no responders (503 "no instance") right after /readyz said 200.
    assert.deepEqual(await of({ health: { up: true }, inbound: { joined: false } }), { ready: false, reasons: ["not in its queue groups yet"] });
    assert.deepEqual(await of({ health: { up: true }, inbound: { joined: true } }), { ready: true, reasons: [] });
    assert.deepEqual(await of({ health: { up: false }, inbound: { joined: false } }), { ready: false, reasons: ["application at 'http://127.0.0.1:1' does not answer"] });
  });

  test("a caller-only sidecar needs NATS and policy only", async () => {
    assert.deepEqual(await of(undefined), { ready: true, reasons: [] });
    assert.deepEqual(await readinessOf({}, { ...base, connected: () => false, provider: undefined }), { ready: false, reasons: ["nats disconnected"] });
  });
});
