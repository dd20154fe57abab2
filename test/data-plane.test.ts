import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { before, describe, test } from "node:test";
import { startNats, type NatsCluster } from "./helpers/nats.ts";
import { header, startApp, type TestApp } from "./helpers/apps.ts";
import { call, rawCall, startTestSidecar } from "./helpers/mesh.ts";

/** One NATS server, one app behind a provider sidecar, one caller sidecar. */
let nats: NatsCluster;
let app: TestApp;
let callerPort: number;
let maxPayload: number;

before(async () => {
  nats = await startNats({ nodes: 1, jetstream: false });
  maxPayload = nats.maxPayload;
  app = await startApp();
  await startTestSidecar({ service: "echo", app: app.url, nats: nats.urls });
  const caller = await startTestSidecar({ service: "frontend", nats: nats.urls });
  callerPort = caller.outbound.port;
});

const sha = (b: Buffer | Uint8Array) => createHash("sha256").update(b).digest("hex");

describe("addressing", () => {
  test("by Host header: bare name, .mesh and .localhost", async () => {
    for (const host of ["echo", "echo.mesh", "echo.localhost:15001"]) {
      const res = await call(callerPort, host, "/hello");
      assert.equal(res.statusCode, 200, host);
      await res.body.dump();
      assert.equal(app.seen.at(-1)!.url, "/hello");
    }
  });

  test("as an HTTP proxy (absolute-form target)", async () => {
    const res = await rawCall(callerPort, "http://echo/via/proxy?q=1");
    assert.equal(res.status, 200);
    assert.equal(app.seen.at(-1)!.url, "/via/proxy?q=1");
  });
});

describe("HTTP semantics cross the mesh unchanged", () => {
  for (const size of [0, 1, 1024 * 1024]) {
    test(`binary body of ${size} bytes, both ways`, async () => {
      const body = randomBytes(size);
      const res = await call(callerPort, "echo", "/bytes", { method: "POST", body });
      assert.equal(res.statusCode, 200);
      const back = Buffer.from(await res.body.arrayBuffer());
      assert.equal(back.length, size);
      assert.equal(sha(back), sha(body));
      assert.equal(sha(app.seen.at(-1)!.body), sha(body));
    });
  }

  // The cluster's max_payload no longer limits a body (issue 11): one that does not fit a message streams.
  test("a body one byte over max_payload crosses whole (it streams), both ways", async () => {
    const body = randomBytes(maxPayload + 1);
    const res = await call(callerPort, "echo", "/big", { method: "POST", body });
    assert.equal(res.statusCode, 200);
    assert.equal(sha(Buffer.from(await res.body.arrayBuffer())), sha(body));
    assert.equal(sha(app.seen.at(-1)!.body), sha(body));
  });

  test("a body that fits max_payload only without headers crosses too", async () => {
    const body = randomBytes(maxPayload - 10);
    const res = await call(callerPort, "echo", "/big", { method: "PUT", body });
    assert.equal(res.statusCode, 200);
    assert.equal(sha(Buffer.from(await res.body.arrayBuffer())), sha(body));
  });

  test("a body over the sidecar's maxBodyBytes is refused with payload_too_large; the app never sees it", async () => {
    const strict = await startTestSidecar({ service: "strict-caller", nats: nats.urls, maxBodyBytes: 4096 });
    const before = app.seen.length;
    const res = await call(strict.outbound.port, "echo", "/big", { method: "POST", body: Buffer.alloc(4097) });
    assert.equal(res.statusCode, 413);
    assert.equal(res.headers["mesh-error"], "payload_too_large");
    assert.equal(((await res.body.json()) as { error: string }).error, "payload_too_large");
    assert.equal(app.seen.length, before, "the app never saw it");
    // Barrier: a body that fits, sent after it on the same path, is the next request the app sees.
    await (await call(callerPort, "echo", "/big", { method: "POST", body: "fits" })).body.dump();
    assert.equal(app.seen.length, before + 1, "the app never saw it");
    assert.equal(app.seen.at(-1)!.body.toString(), "fits");
  });

  test("100 header names round-trip in requests and responses, repeats kept", async () => {
    const sent: Record<string, string | string[]> = {};
    for (let i = 0; i < 100; i++) sent[`x-test-${i}`] = `value ${i}; with=punctuation, "quotes"`;
    sent["x-repeated"] = ["one", "two"];
    app.handler = (req, res) => {
      const out: string[] = [];
      for (let i = 0; i < req.rawHeaders.length; i += 2) {
        if (req.rawHeaders[i]!.toLowerCase().startsWith("x-")) out.push(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
      }
      res.writeHead(200, out);
      res.end();
    };
    try {
      const res = await call(callerPort, "echo", "/headers", { headers: sent });
      await res.body.dump();
      for (let i = 0; i < 100; i++) assert.equal(res.headers[`x-test-${i}`], sent[`x-test-${i}`]);
      const seen = app.seen.at(-1)!;
      for (let i = 0; i < 100; i++) assert.equal(header(seen, `x-test-${i}`), sent[`x-test-${i}`]);
      assert.equal(seen.headers["x-repeated"], "one, two");
      assert.deepEqual(res.headers["x-repeated"], ["one", "two"]);
    } finally {
      app.handler = (await import("./helpers/apps.ts")).echo;
    }
  });

  test("method, raw path and unicode query arrive exactly as sent", async () => {
    const paths = [
      "/caf%C3%A9/%E2%9C%93?name=J%C3%BCrgen&emoji=%F0%9F%9A%80&a=1&a=2",
      "/a%2Fb/../c?x=%20y+z&empty=&=odd",
      "/?",
    ];
    for (const path of paths) {
      for (const method of ["GET", "DELETE", "PATCH", "OPTIONS"] as const) {
        const res = await rawCall(callerPort, path, { method, headers: { host: "echo" } });
        assert.equal(res.status, 200);
        assert.equal(app.seen.at(-1)!.url, path);
        assert.equal(app.seen.at(-1)!.method, method);
      }
    }
  });

  test("statuses pass through untouched, with their bodies and headers", async () => {
    app.handler = (req, res) => {
      const status = Number(req.url.slice(1));
      const headers: Record<string, string> = { "x-status": String(status) };
      if (status === 301) headers.location = "/elsewhere";
      res.writeHead(status, headers);
      res.end(status === 204 ? undefined : `status ${status}`);
    };
    try {
      for (const status of [200, 201, 204, 301, 404, 418, 500]) {
        const res = await call(callerPort, "echo", `/${status}`);
        const text = await res.body.text();
        assert.equal(res.statusCode, status);
        assert.equal(res.headers["x-status"], String(status));
        assert.equal(res.headers["mesh-error"], undefined, "an app's error is not a mesh error");
        assert.equal(text, status === 204 ? "" : `status ${status}`);
        if (status === 301) assert.equal(res.headers.location, "/elsewhere");
      }
    } finally {
      app.handler = (await import("./helpers/apps.ts")).echo;
    }
  });

  test("HEAD and 304 answers carry no body; content-length of HEAD is kept", async () => {
    app.handler = (req, res) => {
      if (req.url === "/cached") {
        res.writeHead(304, { etag: '"abc"' });
        return void res.end();
      }
      res.writeHead(200, { "content-length": "11", "content-type": "text/plain" });
      res.end(req.method === "HEAD" ? undefined : "hello world");
    };
    try {
      const head = await call(callerPort, "echo", "/doc", { method: "HEAD" });
      assert.equal(head.statusCode, 200);
      assert.equal(head.headers["content-length"], "11");
      assert.equal((await head.body.arrayBuffer()).byteLength, 0);
      const cached = await call(callerPort, "echo", "/cached", { headers: { "if-none-match": '"abc"' } });
      assert.equal(cached.statusCode, 304);
      assert.equal(cached.headers.etag, '"abc"');
      assert.equal((await cached.body.arrayBuffer()).byteLength, 0);
    } finally {
      app.handler = (await import("./helpers/apps.ts")).echo;
    }
  });

  test("hop-by-hop headers are dropped", async () => {
    await rawCall(callerPort, "/hop", {
      headers: { host: "echo", connection: "keep-alive, x-private", "x-private": "secret", te: "trailers", "proxy-authorization": "Basic eA==" },
    });
    const seen = app.seen.at(-1)!;
    assert.equal(seen.headers["x-private"], undefined);
    assert.equal(seen.headers["te"], undefined);
    assert.equal(seen.headers["proxy-authorization"], undefined);
  });
});

describe("identity and tracing headers are the mesh's", () => {
  test("a forged x-mesh-caller, x-request-id and traceparent are replaced", async () => {
    const forgedTrace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const res = await call(callerPort, "echo", "/who", {
      headers: { "x-mesh-caller": "admin", "x-request-id": "forged-id", traceparent: forgedTrace },
    });
    await res.body.dump();
    const seen = app.seen.at(-1)!;
    assert.equal(seen.headers["x-mesh-caller"], "frontend");
    assert.match(String(seen.headers["x-request-id"]), /^[0-9a-f-]{36}$/);
    assert.notEqual(seen.headers["traceparent"], forgedTrace);
    assert.match(String(seen.headers["traceparent"]), /^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/);
  });

  test("without a traceparent the mesh starts a trace", async () => {
    const res = await call(callerPort, "echo", "/trace");
    await res.body.dump();
    assert.match(String(app.seen.at(-1)!.headers["traceparent"]), /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  });
});
