// Streamed bodies through real sidecars and a real nats-server (issue 11):
// large downloads and uploads checked by sha256 with sidecar memory flat,
// server-sent events as they come, slow readers that slow the producing app,
// aborts both ways, a provider that dies mid-stream, WebSocket tunnels, limits,
// and policy and observability on streams.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { connect as netConnect } from "node:net";
import { before, describe, test } from "node:test";
import { Readable } from "node:stream";
import { request as undiciRequest } from "undici";
import { WebSocket, WebSocketServer } from "ws";
import { controlRequest } from "../cli/client.ts";
import { startStreamingApp } from "./helpers/apps.ts";
import { startTestControl } from "./helpers/control.ts";
import { captureLogs } from "./helpers/logs.ts";
import { call, eventually, runMesh, spawnSidecar, startTestSidecar, type ChildSidecar } from "./helpers/mesh.ts";
import { connectClient, startNats, type NatsCluster } from "./helpers/nats.ts";
import { metricSum, startOtlpReceiver } from "./helpers/observability.ts";
import type { NatsConnection } from "@nats-io/transport-node";

let nats: NatsCluster;
let nc: NatsConnection;
let caller: Awaited<ReturnType<typeof startTestSidecar>>;

const MiB = 1024 * 1024;
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

before(async () => {
  nats = await startNats();
  await startTestControl(nats.urls);
  nc = await connectClient(nats.urls);
  caller = await startTestSidecar({ service: "client", nats: nats.urls });
});

/** A provider of `service` (in this process) in front of a streaming app. */
async function provider(service: string, handler: Parameters<typeof startStreamingApp>[0], extra: Record<string, unknown> = {}) {
  const app = await startStreamingApp(handler);
  const sidecar = await startTestSidecar({ service, app: app.url, nats: nats.urls, ...extra });
  return { app, sidecar };
}

/** A request through the caller's sidecar with node:http, handed back as soon as its head arrives. */
function open(port: number, service: string, path: string, opts: { method?: string; headers?: Record<string, string>; writing?: boolean } = {}) {
  const req = httpRequest({ host: "127.0.0.1", port, path, method: opts.method ?? "GET", headers: { host: service, ...opts.headers }, agent: false });
  if (!opts.writing) req.end();
  const res = new Promise<IncomingMessage>((resolve, reject) => {
    req.once("response", resolve);
    req.once("error", reject);
  });
  return { req, res };
}

/** Writes `total` bytes of `fill` in 1 MiB chunks, waiting for drain: a producer that respects backpressure. Returns its running count. */
function produce(res: NodeJS.WritableStream & { once(e: "drain", l: () => void): unknown }, total: number, fill: Buffer, onEnd?: () => void) {
  const state = { written: 0 };
  const pump = () => {
    while (state.written < total) {
      const n = Math.min(fill.length, total - state.written);
      state.written += n;
      if (!res.write(n === fill.length ? fill : fill.subarray(0, n))) return void res.once("drain", pump);
    }
    res.end();
    onEnd?.();
  };
  pump();
  return state;
}

/** Resident memory of a process, MiB. */
const rssMiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) / 1024;

describe("large bodies stream with memory flat", () => {
  /**
   * The per-stream bound is the flow-control window: 1 MiB in flight per
   * direction, plus a chunk in hand at each end. What a process's RSS shows
   * beyond it is the garbage collector's slack, which does not grow with the
   * body: a sidecar that held a body whole would grow by all of it.
   */
  const GROWTH_BOUND_MIB = 48;
  let prov: ChildSidecar;
  let call: ChildSidecar;
  const body = randomBytes(MiB);
  const SIZE = 200 * MiB;

  before(async () => {
    const app = await startStreamingApp((req, res) => {
      if (req.method === "POST") {
        const h = createHash("sha256");
        let n = 0;
        req.on("data", (c: Buffer) => ((n += c.length), h.update(c)));
        req.on("end", () => res.end(JSON.stringify({ bytes: n, sha: h.digest("hex") })));
        return;
      }
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": SIZE });
      produce(res, SIZE, body);
    });
    prov = await spawnSidecar(["--service", "bulk", "--app", app.url, "--nats", nats.urls.join(",")]);
    call = await spawnSidecar(["--service", "bulky", "--nats", nats.urls.join(",")]);
  });

  /** Runs `transfer` while sampling both sidecars' RSS; returns the largest growth over the idle level (warmed up by `warm`). */
  async function growth(warm: () => Promise<unknown>, transfer: () => Promise<void>) {
    await warm();
    const base = [rssMiB(call.process.pid!), rssMiB(prov.process.pid!)];
    let max = [...base];
    const sampler = setInterval(() => (max = [Math.max(max[0]!, rssMiB(call.process.pid!)), Math.max(max[1]!, rssMiB(prov.process.pid!))]), 20);
    try {
      await transfer();
    } finally {
      clearInterval(sampler);
    }
    return { caller: max[0]! - base[0]!, provider: max[1]! - base[1]! };
  }

  const fullDownload = async (path: string) => {
    const res = await undiciRequest(`http://127.0.0.1:${call.outboundPort}${path}`, { headers: { host: "bulk" } });
    const h = createHash("sha256");
    let n = 0;
    for await (const c of res.body) (n += c.length), h.update(c);
    return { status: res.statusCode, n, sha: h.digest("hex"), length: res.headers["content-length"] };
  };

  test("a 200 MiB download arrives whole (sha256), its length declared; neither sidecar grows with it", async () => {
    const expected = createHash("sha256");
    for (let i = 0; i < SIZE / MiB; i++) expected.update(body);
    let got: Awaited<ReturnType<typeof fullDownload>> | undefined;
    const g = await growth(() => fullDownload("/warm"), async () => void (got = await fullDownload("/big")));
    assert.deepEqual(got, { status: 200, n: SIZE, sha: expected.digest("hex"), length: String(SIZE) });
    assert.ok(g.caller < GROWTH_BOUND_MIB && g.provider < GROWTH_BOUND_MIB, `RSS growth ${JSON.stringify(g)} MiB`);
  });

  test("a 200 MiB chunked upload arrives whole (sha256); neither sidecar grows with it", async () => {
    const upload = (mib: number) =>
      undiciRequest(`http://127.0.0.1:${call.outboundPort}/up`, {
        method: "POST",
        headers: { host: "bulk" },
        body: Readable.from(
          (async function* () {
            for (let i = 0; i < mib; i++) yield body;
          })(),
        ),
      }).then((r) => r.body.json() as Promise<{ bytes: number; sha: string }>);
    const expected = createHash("sha256");
    for (let i = 0; i < SIZE / MiB; i++) expected.update(body);
    let got: { bytes: number; sha: string } | undefined;
    const g = await growth(() => upload(4), async () => void (got = await upload(SIZE / MiB)));
    assert.deepEqual(got, { bytes: SIZE, sha: expected.digest("hex") });
    assert.ok(g.caller < GROWTH_BOUND_MIB && g.provider < GROWTH_BOUND_MIB, `RSS growth ${JSON.stringify(g)} MiB`);
  });
});

describe("bytes move as they are produced, and as fast as they are read", () => {
  test("server-sent events: the first event arrives before the second is produced", async () => {
    let second!: () => void;
    const produced = new Promise<void>((r) => (second = r));
    await provider("ticker", async (_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write("data: one\n\n");
      await produced;
      res.end("data: two\n\n");
    });
    const { res } = open(caller.outbound.port, "ticker", "/");
    const head = await res;
    assert.equal(head.headers["content-type"], "text/event-stream", `${head.statusCode} ${head.headers["mesh-error"]}`);
    const first = await new Promise<string>((r) => head.once("data", (c: Buffer) => r(c.toString())));
    assert.equal(first, "data: one\n\n");
    second();
    let rest = "";
    for await (const c of head) rest += c;
    assert.equal(rest, "data: two\n\n");
  });

  test("a slow reader slows the writer back to the producing app's socket; every byte arrives in order", async () => {
    const TOTAL = 64 * MiB;
    const fill = Buffer.alloc(MiB);
    for (let i = 0; i < fill.length; i++) fill[i] = i % 251;
    let producer!: { written: number };
    await provider("firehose", (_req, res) => {
      res.writeHead(200, { "content-type": "application/octet-stream" });
      producer = produce(res, TOTAL, fill);
    });
    const { res } = open(caller.outbound.port, "firehose", "/");
    const head = await res;
    head.pause();
    // The reader stops. Barrier: the producer stops too, far short of the whole (its writes wait for drain).
    let stalled = -1;
    await eventually(async () => {
      const now = producer.written;
      const same = now === stalled;
      stalled = now;
      await new Promise((r) => setTimeout(r, 200)); // why: "no progress for 200 ms" is what a stalled producer looks like
      return same && now > 0;
    });
    assert.ok(producer.written < TOTAL / 4, `the app wrote ${producer.written} bytes while nobody read`);
    // The reader reads, slowly: everything arrives, in order.
    let n = 0;
    let ok = true;
    for await (const c of head as AsyncIterable<Buffer>) {
      for (let i = 0; i < c.length; i++) ok &&= c[i] === ((n + i) % MiB) % 251;
      n += c.length;
    }
    assert.equal(n, TOTAL);
    assert.ok(ok, "bytes arrived in order");
  });
});

describe("a stream ends at both ends, never half", () => {
  test("the client leaves a download: the provider's request to its app ends at once", async () => {
    let appSawClose!: () => void;
    const closed = new Promise<void>((r) => (appSawClose = r));
    await provider("endless", (_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      const timer = setInterval(() => res.write("data: tick\n\n"), 20);
      res.once("close", () => (clearInterval(timer), appSawClose()));
    });
    const { req, res } = open(caller.outbound.port, "endless", "/");
    const head = await res;
    await new Promise((r) => head.once("data", r));
    req.destroy();
    await closed;
  });

  test("the client leaves an upload: the app's request is aborted, not ended", async () => {
    let outcome!: (how: string) => void;
    let arrived!: () => void;
    const seen = new Promise<string>((r) => (outcome = r));
    const firstBytes = new Promise<void>((r) => (arrived = r));
    await provider("patient-sink", (req, res) => {
      req.on("data", () => arrived());
      req.once("end", () => (outcome("end"), res.end("ok")));
      req.once("aborted", () => outcome("aborted"));
      req.once("error", () => outcome("aborted"));
    });
    const { req, res } = open(caller.outbound.port, "patient-sink", "/", { method: "POST", headers: { "transfer-encoding": "chunked" }, writing: true });
    res.catch(() => undefined); // the client goes before any answer
    req.write(Buffer.alloc(512 * 1024));
    await firstBytes;
    req.destroy();
    assert.equal(await seen, "aborted");
  });

  test("the provider's app dies mid-stream: the client sees a reset, never a whole-looking body; records say stream_aborted", async () => {
    const logs = captureLogs();
    void logs;
    await provider("fragile", (_req, res) => {
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": 10 * MiB });
      res.write(Buffer.alloc(MiB), () => res.socket?.destroy());
    });
    const { res } = open(caller.outbound.port, "fragile", "/");
    const head = await res;
    assert.equal(head.statusCode, 200);
    let got = 0;
    const ended = await new Promise<string>((resolve) => {
      head.on("data", (c: Buffer) => (got += c.length));
      head.once("end", () => resolve("end"));
      head.once("aborted", () => resolve("aborted"));
      head.once("error", () => resolve("aborted"));
    });
    assert.equal(ended, "aborted");
    assert.ok(got < 10 * MiB);
    await eventually(async () => (await metricSum(caller.registry, "mesh_requests_total", { destination: "fragile", code: "stream_aborted" })) === 1);
  });
});

describe("limits", () => {
  test("over a route's maxBodyBytes: 413 payload_too_large, declared or streamed, and the app sees no whole body", async () => {
    let whole = 0;
    await provider("small-only", (req, res) => {
      req.resume();
      req.once("end", () => (whole++, res.end("ok")));
    });
    const { applied } = await controlRequest(nc, "apply", { documents: [{ kind: "Route", service: "small-only", maxBodyBytes: 100_000 }] });
    await eventually(async () => {
      const config = (await (await fetch(`http://127.0.0.1:${caller.admin.port}/config`)).json()) as { policies: Array<{ key: string; revision: number }> };
      return config.policies.some((p) => p.key === "small-only" && p.revision === applied[0]!.revision);
    });
    const declared = await call(caller.outbound.port, "small-only", "/", { method: "POST", body: Buffer.alloc(100_001) });
    assert.equal(declared.statusCode, 413);
    assert.equal(declared.headers["mesh-error"], "payload_too_large");
    await declared.body.dump();
    const streamed = await undiciRequest(`http://127.0.0.1:${caller.outbound.port}/`, {
      method: "POST",
      headers: { host: "small-only" },
      body: Readable.from(
        (async function* () {
          for (let i = 0; i < 10; i++) yield Buffer.alloc(50_000);
        })(),
      ),
    });
    assert.equal(streamed.statusCode, 413);
    assert.equal(streamed.headers["mesh-error"], "payload_too_large");
    await streamed.body.dump();
    assert.equal(whole, 0, "the app never got a whole body");
    const fits = await call(caller.outbound.port, "small-only", "/", { method: "POST", body: Buffer.alloc(100_000) });
    assert.equal(await fits.body.text(), "ok");
  });

  test("timeoutMs bounds the time to the answer's head, not the stream: an event stream outlives it", async () => {
    await provider("long-stream", (_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      let n = 0;
      const timer = setInterval(() => (++n === 6 ? (clearInterval(timer), res.end("data: last\n\n")) : res.write(`data: ${n}\n\n`)), 100);
    });
    await provider("slow-head", (_req, res) => void setTimeout(() => res.end("late"), 1_000));
    await controlRequest(nc, "apply", {
      documents: [
        { kind: "Route", service: "long-stream", timeoutMs: 300 },
        { kind: "Route", service: "slow-head", timeoutMs: 300 },
      ],
    });
    await eventually(async () => (await call(caller.outbound.port, "slow-head", "/")).headers["mesh-error"] === "timeout");
    const res = await call(caller.outbound.port, "long-stream", "/");
    assert.equal(res.statusCode, 200);
    assert.match(await res.body.text(), /data: 5\n\ndata: last\n\n$/);
  });

  test("a stream that moves no data for streamIdleTimeoutMs ends, at both sidecars", async () => {
    let appClosed!: () => void;
    const closed = new Promise<void>((r) => (appClosed = r));
    await provider("quiet", (_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write("data: hello\n\n");
      res.once("close", () => appClosed());
    });
    await controlRequest(nc, "apply", { documents: [{ kind: "Route", service: "quiet", streamIdleTimeoutMs: 300 }] });
    await eventually(async () => {
      const config = (await (await fetch(`http://127.0.0.1:${caller.admin.port}/config`)).json()) as { policies: Array<{ key: string; document: { streamIdleTimeoutMs?: number } }> };
      return config.policies.some((p) => p.key === "quiet" && p.document.streamIdleTimeoutMs === 300);
    });
    const { res } = open(caller.outbound.port, "quiet", "/");
    const head = await res;
    const how = await new Promise<string>((resolve) => {
      head.resume();
      head.once("end", () => resolve("end"));
      head.once("aborted", () => resolve("aborted"));
      head.once("error", () => resolve("aborted"));
    });
    assert.equal(how, "aborted");
    await closed;
  });
});

describe("retries and policy apply to streams", () => {
  test("a request whose body has partly streamed is not retried; a small one still is", async () => {
    let attempts = 0;
    await provider("flaky-sink", (req, res) => {
      attempts++;
      req.resume();
      req.once("end", () => res.writeHead(503).end("down"));
    });
    await controlRequest(nc, "apply", {
      documents: [{ kind: "Route", service: "flaky-sink", retries: { attempts: 2, on: ["5xx"], retryNonIdempotent: true, budgetPercent: 100 } }],
    });
    await eventually(async () => {
      const before = attempts;
      const small = await call(caller.outbound.port, "flaky-sink", "/", { method: "POST", body: "x" });
      await small.body.dump();
      return attempts - before === 3;
    });
    const before = attempts;
    const big = await call(caller.outbound.port, "flaky-sink", "/", { method: "POST", body: Buffer.alloc(2 * MiB) });
    assert.equal(big.statusCode, 503);
    await big.body.dump();
    assert.equal(attempts - before, 1, "a streamed body is sent once");
  });

  test("authz is decided on the head: a denied upload is refused before a byte of its body reaches the app", async () => {
    let reached = 0;
    await provider("vault", (req, res) => {
      if (req.method === "PUT") reached++; // the GETs below may reach it before the Authz does
      req.resume();
      req.once("end", () => res.end("stored"));
    });
    await controlRequest(nc, "apply", { documents: [{ kind: "Authz", service: "vault", default: "deny", rules: [{ from: ["trusted"] }] }] });
    await eventually(async () => (await call(caller.outbound.port, "vault", "/")).statusCode === 403);
    const res = await call(caller.outbound.port, "vault", "/", { method: "PUT", body: Buffer.alloc(4 * MiB) });
    assert.equal(res.statusCode, 403);
    await res.body.dump();
    assert.equal(reached, 0);
  });

  test("quota counts a stream once; a fault on the head applies to a stream", async () => {
    await provider("metered", (_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.end("data: one\n\n");
    });
    await controlRequest(nc, "apply", {
      documents: [
        { kind: "Quota", service: "metered", limits: [{ caller: "client", requests: 2, per: "hour" }] },
        { kind: "Route", service: "faulty", rules: [{ fault: { abort: { status: 503, percent: 100 } } }] },
      ],
    });
    await eventually(async () => (await call(caller.outbound.port, "metered", "/")).headers["ratelimit-limit"] === "2");
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await call(caller.outbound.port, "metered", "/");
      statuses.push(r.statusCode);
      await r.body.dump();
    }
    assert.deepEqual(statuses, [200, 429, 429], "the first call above used one permit, this one the other");
    await provider("faulty", (_req, res) => void res.writeHead(200, { "content-type": "text/event-stream" }).end("data: x\n\n"));
    await eventually(async () => (await call(caller.outbound.port, "faulty", "/")).headers["mesh-error"] === "fault_injected");
  });
});

describe("observability counts a stream once, with its bytes", () => {
  test("access records, metrics, traces and mesh top of a streamed call; mesh logs prints its bytes", async () => {
    const collector = await startOtlpReceiver();
    const traced = await startTestSidecar({ service: "traced", nats: nats.urls, otlp: collector.url });
    await provider("reporter", (req, res) => {
      req.resume();
      req.once("end", () => {
        res.writeHead(200, { "content-type": "application/octet-stream" });
        res.end(Buffer.alloc(3 * MiB));
      });
    });
    const res = await call(caller.outbound.port, "reporter", "/upload", { method: "POST", body: Buffer.alloc(2 * MiB) });
    assert.equal((await res.body.arrayBuffer()).byteLength, 3 * MiB);
    await eventually(async () => (await metricSum(caller.registry, "mesh_stream_bytes_total", { destination: "reporter", flow: "response" })) === 3 * MiB);
    assert.equal(await metricSum(caller.registry, "mesh_stream_bytes_total", { destination: "reporter", flow: "request" }), 2 * MiB);
    assert.equal(await metricSum(caller.registry, "mesh_requests_total", { direction: "outbound", destination: "reporter" }), 1);
    await eventually(async () => {
      const r = await runMesh(["logs", "reporter", "--nats", nats.urls.join(",")]);
      return /out client -> reporter .* POST \/upload 200 .* bytes=3145728\/2097152/.test(r.stdout) && /in  client -> reporter .* bytes=2097152\/3145728/.test(r.stdout);
    });
    await eventually(async () => {
      const r = await runMesh(["top", "--once", "--nats", nats.urls.join(",")]);
      return /client\s+reporter\s.*\s\d+(\.\d)?[kMG]?B\/s\s*$/m.test(r.stdout);
    });

    const head = await call(traced.outbound.port, "reporter", "/download");
    assert.equal((await head.body.arrayBuffer()).byteLength, 3 * MiB);
    await eventually(async () => collector.spans().some((s) => s.service === "traced" && s.attributes.some((a) => a.key === "mesh.stream.bytes_in" && a.value.intValue === String(3 * MiB))));
  });
});

describe("WebSocket", () => {
  let wsPort: number;

  before(async () => {
    const { app } = await provider("chat", (_req, res) => void res.end("plain http"));
    const wss = new WebSocketServer({ server: app.server });
    wss.on("connection", (ws, req) => {
      if (req.url === "/bye") return void ws.close(4002, "the app says bye");
      ws.send(`hello ${req.headers["x-mesh-caller"]}`);
      ws.on("message", (data, binary) => ws.send(data, { binary }));
      ws.on("ping", (d) => ws.send(`ping ${d.toString()}`));
    });
    wsPort = caller.outbound.port;
  });

  type Message = { data: Buffer; binary: boolean };
  /** Messages queue from the moment the socket exists: the app's greeting may arrive with the upgrade's answer. */
  const inboxes = new WeakMap<WebSocket, { queued: Message[]; waiting: ((m: Message) => void)[] }>();

  const connect = (path = "/chat") =>
    new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${wsPort}${path}`, { headers: { host: "chat" } });
      const inbox = { queued: [] as Message[], waiting: [] as ((m: Message) => void)[] };
      inboxes.set(ws, inbox);
      ws.on("message", (data, binary) => {
        const m = { data: data as Buffer, binary };
        const waiter = inbox.waiting.shift();
        if (waiter) waiter(m);
        else inbox.queued.push(m);
      });
      ws.once("open", () => resolve(ws));
      ws.once("error", reject);
    });

  const next = (ws: WebSocket) =>
    new Promise<Message>((resolve) => {
      const inbox = inboxes.get(ws)!;
      const m = inbox.queued.shift();
      if (m) resolve(m);
      else inbox.waiting.push(resolve);
    });

  test("text and binary frames, a 10 MiB frame, ping and the close handshake pass through", async () => {
    const ws = await connect();
    assert.deepEqual(String((await next(ws)).data), "hello client", "the caller NATS vouched for reached the app");
    ws.send("text frame");
    assert.deepEqual(await next(ws).then((m) => [String(m.data), m.binary]), ["text frame", false]);
    const big = randomBytes(10 * MiB);
    ws.send(big);
    const echoed = await next(ws);
    assert.equal(echoed.binary, true);
    assert.equal(sha(echoed.data), sha(big));
    ws.ping("are you there");
    assert.equal(String((await next(ws)).data), "ping are you there");
    const closed = new Promise<[number, string]>((r) => ws.once("close", (code, reason) => r([code, reason.toString()])));
    ws.close(4001, "bye");
    assert.deepEqual(await closed, [4001, "bye"]);
  });

  test("the app closing its side closes the client's, with its code and reason", async () => {
    const ws = await connect("/bye");
    const closed = await new Promise<[number, string]>((r) => ws.once("close", (code, reason) => r([code, reason.toString()])));
    assert.deepEqual(closed, [4002, "the app says bye"]);
  });

  test("authz is decided at the upgrade, on GET and the path", async () => {
    await controlRequest(nc, "apply", { documents: [{ kind: "Authz", service: "chat", default: "deny", rules: [{ from: ["client"], methods: ["GET"], paths: ["/chat"] }] }] });
    await eventually(async () => {
      const r = await call(caller.outbound.port, "chat", "/elsewhere");
      await r.body.dump();
      return r.statusCode === 403;
    });
    await assert.rejects(connect("/elsewhere"), /Unexpected server response: 403/);
    const ws = await connect("/chat");
    ws.close();
  });

  test("an app that does not switch protocols answers as usual", async () => {
    await provider("no-ws", (_req, res) => void res.writeHead(426, { "content-type": "text/plain" }).end("upgrade required elsewhere"));
    const raw = netConnect(caller.outbound.port, "127.0.0.1");
    raw.write("GET / HTTP/1.1\r\nHost: no-ws\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
    let text = "";
    for await (const c of raw) text += c;
    assert.match(text, /^HTTP\/1\.1 426 /);
    assert.match(text, /upgrade required elsewhere$/);
  });
});
