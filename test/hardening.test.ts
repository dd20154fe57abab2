import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { headers as natsHeaders, type NatsConnection } from "@nats-io/transport-node";
import { controlRequest } from "../cli/client.ts";
import { startApp } from "./helpers/apps.ts";
import { startTestControl } from "./helpers/control.ts";
import { call, eventually, meshRequest, startTestSidecar } from "./helpers/mesh.ts";
import { connectClient, startNats, type NatsCluster } from "./helpers/nats.ts";
import { metricSum, samples } from "./helpers/observability.ts";
import { RawConnection } from "./helpers/raw-http.ts";
import { RawNatsClient } from "./helpers/raw-nats.ts";
import { captureLogs } from "./helpers/logs.ts";
import { LABEL_LIMITS, OVERFLOW_LABEL } from "../sidecar/observability/labels.ts";

/** Hostile input at the data plane: one NATS server with JetStream, control, a caller sidecar, providers as tests need them. */
let nats: NatsCluster;
let nc: NatsConnection;
let caller: Awaited<ReturnType<typeof startTestSidecar>>;

before(async () => {
  nats = await startNats({ nodes: 1 });
  await startTestControl(nats.urls);
  nc = await connectClient(nats.urls);
  caller = await startTestSidecar({ service: "frontend", nats: nats.urls });
});

/** A provider of `service`/`version` whose app answers with its version unless told otherwise. */
async function provider(service: string, version: string, handler?: Parameters<typeof startApp>[0], extra: Record<string, unknown> = {}) {
  const app = await startApp(handler ?? ((_req, res) => void res.end(version)));
  const sidecar = await startTestSidecar({ service, version, app: app.url, nats: nats.urls, ...extra });
  return { app, sidecar };
}

/** Applies a Route through control and waits until the caller sidecar has it. */
async function applyRoute(doc: Record<string, unknown>): Promise<void> {
  const { applied } = await controlRequest(nc, "apply", { documents: [{ kind: "Route", ...doc }] });
  const revision = applied[0]!.revision;
  await eventually(async () => {
    const config = (await (await fetch(`http://127.0.0.1:${caller.admin.port}/config`)).json()) as { policies: Array<{ key: string; revision: number }> };
    return config.policies.some((p) => p.key === doc.service && p.revision === revision);
  });
}

describe("ReDoS: header regexes cannot freeze the caller", () => {
  before(async () => {
    await provider("regexed", "v1");
    await provider("regexed", "v2");
    await provider("bystander", "v1", (_req, res) => void res.end("bystander"));
  });

  test("the evil route through real sidecars: a long 'aaaa…!' header is answered, and so is a concurrent call to another service", async () => {
    await applyRoute({ service: "regexed", rules: [{ match: { headersRegex: { "x-k": "^(a+)+$" } }, backends: [{ version: "v2" }] }, { backends: [{ version: "v1" }] }] });
    // Backtracking needs ~2^n steps on n a's and a '!': 40 would take RegExp hours, 5000 forever.
    const evil = call(caller.outbound.port, "regexed", "/", { headers: { "x-k": `${"a".repeat(5_000)}!` } });
    // Sent after the evil request: with a blocked event loop neither would ever be answered.
    const bystander = call(caller.outbound.port, "bystander", "/");
    const [e, b] = await Promise.all([evil, bystander]);
    assert.equal(e.statusCode, 200);
    assert.equal(await e.body.text(), "v1", "no match: the second rule");
    assert.equal(b.statusCode, 200);
    assert.equal(await b.body.text(), "bystander");
    const matching = await call(caller.outbound.port, "regexed", "/", { headers: { "x-k": "aaaa" } });
    assert.equal(await matching.body.text(), "v2", "the rule still matches what it should");
  });
});

describe("response framing at the caller: a lying provider cannot desync the application's connection", () => {
  /** What the raw provider answers, chosen per request by its `x-lie` header. */
  const SMUGGLED = "HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\nsmuggled";
  const LIES: Record<string, { headers: Array<[string, string]>; body?: string }> = {
    "short-length": { headers: [["@status", "200"], ["content-length", "5"]], body: `hello${SMUGGLED}`.padEnd(120, ".") },
    "short-length-upper": { headers: [["@status", "200"], ["Content-Length", "5"]], body: `hello${SMUGGLED}` },
    "chunked-upper": { headers: [["@status", "200"], ["TRANSFER-ENCODING", "chunked"]], body: `5\r\nhello\r\n0\r\n\r\n${SMUGGLED}` },
    "hop-by-hop": {
      headers: [["@status", "200"], ["Connection", "close, x-private"], ["x-private", "1"], ["Keep-Alive", "timeout=1"], ["upgrade", "h2c"], ["te", "trailers"], ["Trailer", "x-t"], ["proxy-authenticate", "Basic"], ["Proxy-Foo", "1"], ["mesh-error", "forbidden"], ["x-kept", "yes"]],
      body: "fine",
    },
    "status-101": { headers: [["@status", "101"], ["upgrade", "websocket"]] },
    "status-199": { headers: [["@status", "199"]] },
    "status-600": { headers: [["@status", "600"]] },
    "status-fraction": { headers: [["@status", "200.5"]] },
    "status-text": { headers: [["@status", "abc"]] },
    "status-missing": { headers: [["x-a", "1"]] },
    "bad-header-value": { headers: [["@status", "200"], ["x-nul", "a\u0000b"]] },
    "bad-header-name": { headers: [["@status", "200"], ["x(bad)", "1"]] },
    "random-version": { headers: [["@status", "200"], ["@version", "vRANDOM"], ["@instance", "i-RANDOM"]], body: "ok" },
    "bad-version": { headers: [["@status", "200"], ["@version", "v1.2/\u001b"], ["@instance", "no spaces allowed"]], body: "ok" },
    "unknown-error": { headers: [["@status", "503"], ["@error", "made_up_RANDOM"]], body: "no" },
  };

  before(async () => {
    const liar = await connectClient(nats.urls);
    liar.subscribe("mesh.rpc.liar._.*", {
      queue: "liar",
      callback: (_err, msg) => {
        const lie = LIES[msg.headers?.get("x-lie") ?? ""]!;
        const h = natsHeaders();
        for (const [k, v] of lie.headers) h.append(k, v.replace("RANDOM", crypto.randomUUID().slice(0, 8)));
        // A provider's sidecar answers on `<reply>.<its service>`.
        liar.publish(`${msg.reply}.liar`, lie.body ?? "", { headers: h });
      },
    });
    await liar.flush();
    await provider("honest", "v1", (_req, res) => void res.end("honest"));
  });

  /** Two requests on one keep-alive connection: a lie, then an honest call. */
  async function lieThenTruth(lie: string) {
    const conn = await RawConnection.open(caller.outbound.port);
    conn.write(`GET /lie HTTP/1.1\r\nHost: liar\r\nx-lie: ${lie}\r\n\r\n`);
    const first = await conn.readResponse();
    conn.write("GET /truth HTTP/1.1\r\nHost: honest\r\n\r\n");
    const second = await conn.readResponse();
    return { first, second, conn };
  }

  for (const lie of ["short-length", "short-length-upper", "chunked-upper"]) {
    test(`${lie}: the length is that of the bytes written, and the next answer on the connection is the true one`, async () => {
      const { first, second, conn } = await lieThenTruth(lie);
      assert.equal(first.status, 200);
      assert.equal(first.body.toString(), LIES[lie]!.body);
      assert.equal(first.headers["content-length"], String(Buffer.byteLength(LIES[lie]!.body!)));
      assert.equal(first.headers["transfer-encoding"], undefined);
      assert.equal(second.status, 200);
      assert.equal(second.body.toString(), "honest");
      assert.equal(conn.leftover.length, 0);
    });
  }

  test("hop-by-hop and framing headers of the provider are dropped whatever their case; a forged mesh-error too", async () => {
    const { first, second } = await lieThenTruth("hop-by-hop");
    assert.equal(first.status, 200);
    assert.equal(first.body.toString(), "fine");
    assert.notEqual(first.headers["keep-alive"], "timeout=1", "the sidecar's own keep-alive, not the provider's");
    for (const name of ["x-private", "upgrade", "te", "trailer", "proxy-authenticate", "proxy-foo", "mesh-error"]) {
      assert.equal(first.headers[name], undefined, name);
    }
    assert.notEqual(first.headers.connection, "close");
    assert.equal(first.headers["x-kept"], "yes");
    assert.equal(second.body.toString(), "honest", "the connection was kept open");
  });

  for (const lie of ["status-101", "status-199", "status-600", "status-fraction", "status-text", "status-missing", "bad-header-value", "bad-header-name"]) {
    test(`${lie}: answered 502 bad_response, and the sidecar serves the next request`, async () => {
      const { first, second } = await lieThenTruth(lie);
      assert.equal(first.status, 502);
      assert.equal(first.headers["mesh-error"], "bad_response");
      assert.equal(JSON.parse(first.body.toString()).error, "bad_response");
      assert.equal(second.body.toString(), "honest");
    });
  }
});

describe("labels a provider chooses are bounded at the caller", () => {
  const labelled = async (labels: Record<string, string>) => samples(caller.registry, "mesh_requests_total", { direction: "outbound", destination: "liar", ...labels });

  test("versions per destination are capped; past the cap they count as _other", async () => {
    const overflowBefore = await metricSum(caller.registry, "mesh_label_overflow_total", { label: "version" });
    const n = LABEL_LIMITS.versionsPerDestination + 10;
    for (let i = 0; i < n; i++) {
      const res = await call(caller.outbound.port, "liar", "/", { headers: { "x-lie": "random-version" } });
      assert.match(String(res.headers["x-mesh-version"]), /^v[0-9a-f]{8}$/, "the application still sees what answered");
      await res.body.dump();
    }
    const versions = new Set((await labelled({})).map((s) => String(s.labels.version)));
    assert.ok(versions.size <= LABEL_LIMITS.versionsPerDestination + 1, `${versions.size} versions`);
    assert.ok(versions.has(OVERFLOW_LABEL));
    assert.ok((await metricSum(caller.registry, "mesh_label_overflow_total", { label: "version" })) >= overflowBefore + 10);
  });

  test("a version or instance that is not a name is not believed; an unknown @error counts as unknown_error", async () => {
    const bad = await call(caller.outbound.port, "liar", "/", { headers: { "x-lie": "bad-version" } });
    assert.equal(bad.headers["x-mesh-version"], undefined);
    await bad.body.dump();
    assert.deepEqual((await labelled({ version: "v1.2/\u001b" })).length, 0);
    for (let i = 0; i < 5; i++) {
      const res = await call(caller.outbound.port, "liar", "/", { headers: { "x-lie": "unknown-error" } });
      assert.equal(res.statusCode, 503);
      assert.equal(res.headers["mesh-error"], undefined, "not a mesh error code: not presented as one");
      await res.body.dump();
    }
    const codes = new Set((await labelled({})).map((s) => String(s.labels.code)));
    assert.ok(codes.has("unknown_error"));
    assert.ok(![...codes].some((c) => c.startsWith("made_up")), [...codes].join(","));
  });
});

describe("limits at the outbound listener", () => {
  let impatient: Awaited<ReturnType<typeof startTestSidecar>>;
  let app: Awaited<ReturnType<typeof startApp>>;

  before(async () => {
    app = (await provider("patient", "v1", (req, res) => void res.end(req.body))).app;
    // Short timeouts so the test does not wait 10 s; what is asserted is the answer, not when it came.
    impatient = await startTestSidecar({ service: "impatient", nats: nats.urls, headersTimeoutMs: 300, bodyIdleTimeoutMs: 300 });
  });

  test("a body that stalls gets 408 request_timeout and the connection is closed; the app never sees it", async () => {
    const conn = await RawConnection.open(impatient.outbound.port);
    conn.write("POST /stalled HTTP/1.1\r\nHost: patient\r\nContent-Length: 100\r\n\r\n0123456789");
    const res = await conn.readResponse();
    assert.equal(res.status, 408);
    assert.equal(res.headers["mesh-error"], "request_timeout");
    assert.equal(JSON.parse(res.body.toString()).error, "request_timeout");
    await conn.waitClosed();
    // The barrier: a complete request after it reaches the app; the stalled one never did.
    const ok = await call(impatient.outbound.port, "patient", "/complete", { method: "POST", body: "done" });
    assert.equal(await ok.body.text(), "done");
    assert.ok(!app.seen.some((r) => r.url === "/stalled"));
  });

  test("headers that stall get 408 request_timeout as a mesh error", async () => {
    const conn = await RawConnection.open(impatient.outbound.port);
    conn.write("GET /slow HTTP/1.1\r\nHost: pati");
    const res = await conn.readResponse();
    assert.equal(res.status, 408);
    assert.equal(res.headers["mesh-error"], "request_timeout");
    await conn.waitClosed();
    // The barrier: a complete request after it reaches the app; the stalled one never did.
    const ok = await call(impatient.outbound.port, "patient", "/after-stall", { method: "POST", body: "done" });
    assert.equal(await ok.body.text(), "done");
    assert.ok(!app.seen.some((r) => r.url === "/slow"));
  });

  test("Expect: 100-continue with a 2 MiB body: the caller's sidecar answers 100, the body crosses, expect is not forwarded", async () => {
    const body = Buffer.alloc(2 * 1024 * 1024, "x");
    const conn = await RawConnection.open(caller.outbound.port);
    conn.write(`POST /upload HTTP/1.1\r\nHost: patient\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\n\r\n`);
    const interim = await conn.readResponse();
    assert.equal(interim.status, 100);
    conn.write(body);
    const res = await conn.readResponse();
    assert.equal(res.status, 200);
    assert.equal(res.body.length, body.length);
    const seen = app.seen.find((r) => r.url === "/upload")!;
    assert.equal(seen.body.length, body.length);
    assert.equal(seen.headers.expect, undefined);
  });

  test("Expect: 100-continue with a declared length over maxBodyBytes: 413 at once, the body is never read", async () => {
    const conn = await RawConnection.open(caller.outbound.port);
    conn.write(`POST /huge HTTP/1.1\r\nHost: patient\r\nContent-Length: ${caller.config.maxBodyBytes + 1}\r\nExpect: 100-continue\r\n\r\n`);
    const res = await conn.readResponse();
    assert.equal(res.status, 413);
    assert.equal(res.headers["mesh-error"], "payload_too_large");
    await conn.waitClosed();
    // The barrier: a request after it on the same caller reaches the app; the refused one never did.
    const ok = await call(caller.outbound.port, "patient", "/after-huge", { method: "POST", body: "done" });
    assert.equal(await ok.body.text(), "done");
    assert.ok(!app.seen.some((r) => r.url === "/huge"));
  });
});

describe("limits at the provider", () => {
  test("a caller's far deadline is capped at maxDeadlineMs", async () => {
    const { sidecar } = await provider("deadlined", "v1", (req, res) => void res.end(String(req.headers["x-mesh-deadline-ms"])), { maxDeadlineMs: 60_000 });
    const h = natsHeaders();
    h.set("@method", "GET");
    h.set("@path", "/");
    h.set("@deadline", String(Date.now() + 365 * 24 * 3600_000));
    const reply = await meshRequest(nc, "mesh.rpc.deadlined._.frontend", { headers: h, timeoutMs: 5_000 });
    const left = Number(reply.string());
    assert.ok(left > 0 && left <= 60_000, `the app was given ${left} ms`);
    assert.equal(sidecar.config.maxDeadlineMs, 60_000);
  });

  test("a request with a malformed header block is dropped, counted and logged once per interval", async () => {
    const logs = captureLogs("warn");
    const app = await startApp((_req, res) => void res.end("fine"));
    const sidecar = await startTestSidecar({ service: "strict", app: app.url, nats: nats.urls }, logs.logger);
    // nats.js refuses to build such a block, so this speaks the protocol itself.
    const raw = await RawNatsClient.open(nats.servers[0]!.clientPort);
    const block = "NATS/1.0\r\n@method: GET\r\nbad key: x\r\n\r\n";
    for (let i = 0; i < 5; i++) raw.hpub("mesh.rpc.strict._.frontend", "_INBOX.frontend.raw1", block, "");
    await raw.flush();
    await eventually(async () => (await metricSum(sidecar.registry, "mesh_inbound_malformed_total")) === 5);
    const warnings = logs.lines.filter((l) => l.msg === "dropped requests with a malformed header block");
    assert.equal(warnings.length, 1, "rate-limited");
    assert.equal(warnings[0]!.subject, "mesh.rpc.strict._.frontend");
    const ok = await call(caller.outbound.port, "strict", "/");
    assert.equal(await ok.body.text(), "fine", "the sidecar serves on");
    assert.equal(app.seen.length, 1);
  });
});

describe("authz: Tomcat-style path parameters", () => {
  test("/public/..;/admin does not pass as /public/**: 403, and the app never sees it", async () => {
    const { app, sidecar } = await provider("guarded", "v1", (_req, res) => void res.end("served"));
    const { applied } = await controlRequest(nc, "apply", { documents: [{ kind: "Authz", service: "guarded", default: "deny", rules: [{ from: ["frontend"], paths: ["/public/**"] }] }] });
    const revision = applied[0]!.revision;
    for (const admin of [caller.admin.port, sidecar.admin.port]) {
      await eventually(async () => {
        const config = (await (await fetch(`http://127.0.0.1:${admin}/config`)).json()) as { policies: Array<{ key: string; revision: number }> };
        return config.policies.some((p) => p.key === "guarded" && p.revision === revision);
      });
    }
    // A raw NATS request skips the caller's fail-fast check: the provider's own check is the one tested.
    for (const path of ["/public/..;/admin", "/public/..;jsessionid=1/admin"]) {
      const res = await rawCallMesh(caller.outbound.port, "guarded", path);
      assert.equal(res.status, 403, path);
      const h = natsHeaders();
      h.set("@method", "GET");
      h.set("@path", path);
      const reply = await meshRequest(nc, "mesh.rpc.guarded._.frontend", { headers: h, timeoutMs: 5_000 });
      assert.equal(reply.headers?.get("@error"), "forbidden", path);
    }
    const ok = await call(caller.outbound.port, "guarded", "/public/page");
    assert.equal(await ok.body.text(), "served");
    assert.deepEqual(app.seen.map((r) => r.url), ["/public/page"]);
  });
});

/** A request whose target is sent byte for byte (undici and fetch would normalise `..;`). */
async function rawCallMesh(port: number, service: string, target: string) {
  const conn = await RawConnection.open(port);
  conn.write(`GET ${target} HTTP/1.1\r\nHost: ${service}\r\nConnection: close\r\n\r\n`);
  return conn.readResponse();
}

describe("answers are taken only from the service called", () => {
  test("an answer signed by another service, or a bare one that is not the server's no-responders, is ignored", async () => {
    // Without secure mode anyone may read a caller's inbox and sign as anyone; secure mode's
    // permissions stop both (test/security.test.ts). What is left is the caller's own check.
    let forged!: () => void;
    const forgeriesSent = new Promise<void>((resolve) => (forged = resolve));
    await provider("honestly", "v1", async (_req, res) => {
      await forgeriesSent; // the real answer leaves only after the forgeries have reached the caller's sidecar
      res.end("real");
    });
    const snoop = await connectClient(nats.urls);
    snoop.subscribe("mesh.rpc.honestly.>", {
      callback: (_e, m) => {
        const h = natsHeaders();
        h.set("@status", "200");
        snoop.publish(`${m.reply}.orders`, "forged by orders", { headers: h });
        snoop.publish(m.reply!, "forged bare", { headers: h });
        void snoop.flush().then(() => caller.nc.flush()).then(forged);
      },
    });
    await snoop.flush();
    const res = await call(caller.outbound.port, "honestly", "/");
    assert.equal(res.statusCode, 200);
    assert.equal(await res.body.text(), "real");
  });
});

describe("what a caller sends in NATS headers is not all passed on", () => {
  test("hop-by-hop and mesh-owned headers from a raw caller, in any case, never reach the app; the call still succeeds", async () => {
    const { app } = await provider("tidy", "v1", (_req, res) => void res.end("tidy"));
    const h = natsHeaders();
    h.set("@method", "GET");
    h.set("@path", "/");
    for (const [k, v] of [["Transfer-Encoding", "chunked"], ["CONNECTION", "close"], ["te", "trailers"], ["Upgrade", "websocket"], ["x-mesh-caller", "admin"], ["Content-Length", "99"], ["x-fine", "yes"]]) h.set(k!, v!);
    const reply = await meshRequest(nc, "mesh.rpc.tidy._.frontend", { headers: h });
    assert.equal(reply.headers?.get("@status"), "200");
    assert.equal(reply.string(), "tidy");
    const seen = app.seen.at(-1)!;
    for (const name of ["transfer-encoding", "te", "upgrade"]) assert.equal(seen.headers[name], undefined, name);
    assert.equal(seen.headers["x-mesh-caller"], "frontend");
    assert.equal(seen.headers["x-fine"], "yes");
  });
});
