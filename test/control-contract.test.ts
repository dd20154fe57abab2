import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import type { NatsConnection } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import pino from "pino";
import { CliError, Exit, controlRequest } from "../cli/client.ts";
import { ControlUnreachableError, requestControl } from "../control/client.ts";
import controlKeysRequest from "../schemas/control-keys-request.schema.json" with { type: "json" };
import { ACCESS_STREAM } from "../control/index.ts";
import { LEASE_BUCKET } from "../control/telemetry-lease.ts";
import {
  CONTROL_VERBS,
  POLICY_BUCKETS,
  QUOTA_COUNTER_BUCKETS,
  READABLE_BUCKETS,
  checkControlReply,
  ctlSubject,
  keysSubject,
  kvStream,
  quotaLeaseSubject,
  quotaWindow,
  registerSubject,
  checkTelemetryReport,
  validatePolicy,
  type ControlErrorReply,
  type ControlVerb,
  type QuotaPolicy,
} from "../schemas/index.ts";
import { createQuotaGate, type QuotaOutcome } from "../sidecar/inbound/quota-gate.ts";
import { RegistryHeartbeat } from "../sidecar/inbound/registry-heartbeat.ts";
import { startTestControl, type TestControl } from "./helpers/control.ts";
import { captureLogs } from "./helpers/logs.ts";
import { eventually } from "./helpers/mesh.ts";
import { metricSum } from "./helpers/observability.ts";
import { connectClient, startNats, type NatsCluster } from "./helpers/nats.ts";

/**
 * Every document that crosses a process boundary is checked against its
 * schema by its receiver: control checks each verb's request (and answers
 * bad_request with JSON paths), sidecars and the CLI check control's replies.
 */
let nats: NatsCluster;
let control: TestControl;
let nc: NatsConnection;
/** A server without control, where a test answers control's subjects itself. */
let fakeNats: NatsCluster;

before(async () => {
  [nats, fakeNats] = await Promise.all([startNats({ nodes: 1 }), startNats({ nodes: 1 })]);
  control = await startTestControl(nats.urls);
  nc = await connectClient(nats.urls);
});

const entry = { service: "svc", version: "v1", instance: "svc-1", app: "http://127.0.0.1:1", state: "ready", host: "h", startedAt: "2026-01-01T00:00:00.000Z", heartbeatAt: "2026-01-01T00:00:00.000Z" };
const lease = { service: "svc", caller: "frontend", per: "minute", window: quotaWindow("minute", Date.now()), limit: 100, want: 1 };

/** One malformed body per verb, and the JSON path its problem must name. */
const MALFORMED: Record<ControlVerb, { body: unknown; path: string; subject?: string }> = {
  apply: { body: { documents: "route.yaml" }, path: "documents" },
  validate: { body: { documents: [], dryRun: true }, path: "dryRun" },
  get: { body: { kind: "Routes" }, path: "kind" },
  delete: { body: { kind: "Route" }, path: "service" },
  history: { body: { kind: "Route", service: "Bad_Name" }, path: "service" },
  rollback: { body: { kind: "Route", service: "pricing", to: 0 }, path: "to" },
  services: { body: { all: true }, path: "all" },
  quota: { body: { ...lease, per: "week" }, path: "per", subject: quotaLeaseSubject("svc") },
  register: { body: { entry: { ...entry, state: "asleep" } }, path: "entry.state", subject: registerSubject("svc") },
  stats: { body: { windowSeconds: "30" }, path: "windowSeconds" },
  logs: { body: { since: -5 }, path: "since" },
  info: { body: { admin: true }, path: "admin" },
  keys: { body: { bucket: QUOTA_COUNTER_BUCKETS.minute }, path: "bucket", subject: keysSubject("svc") },
};

async function ask(subject: string, body: string): Promise<ControlErrorReply> {
  return (await nc.request(subject, body, { timeout: 5_000 })).json<ControlErrorReply>();
}

describe("control checks every request against its verb's schema", () => {
  for (const verb of CONTROL_VERBS) {
    const { body, path, subject = ctlSubject(verb) } = MALFORMED[verb];
    test(`${verb}: a malformed body is bad_request, naming ${path}`, async () => {
      const before = await metricSum(control.registry, "mesh_control_requests_total", { verb, outcome: "bad_request" });
      const reply = await ask(subject, JSON.stringify(body));
      assert.equal(reply.ok, false);
      assert.equal(reply.error.code, "bad_request");
      assert.ok(reply.error.problems?.some((p) => p.path === path && p.document === -1), JSON.stringify(reply.error));
      assert.match(reply.error.message, new RegExp(`^bad ${verb} request: .*${path.replace(".", "\\.")}: `));
      assert.equal(await metricSum(control.registry, "mesh_control_requests_total", { verb, outcome: "bad_request" }), before + 1);
    });
  }

  test("a body that is not JSON, or not an object, is bad_request at (root)", async () => {
    for (const body of ["{not json", "[1,2]", "42"]) {
      const reply = await ask(ctlSubject("get"), body);
      assert.equal(reply.error.code, "bad_request", body);
      assert.equal(reply.error.problems?.[0]?.path, "(root)", body);
    }
  });

  test("a problem quotes the offending value; a valid request on the same verb is served", async () => {
    const reply = await ask(ctlSubject("rollback"), JSON.stringify(MALFORMED.rollback.body));
    assert.deepEqual(reply.error.problems, [{ document: -1, path: "to", message: "must be >= 1, got 0" }]);
    // The barrier: the verb itself works.
    await assert.rejects(requestControl(nc, "rollback", { kind: "Route", service: "pricing" }), /no Route history for 'pricing'/);
  });

  test("the CLI reports a bad request as rejected input (exit 1)", async () => {
    await assert.rejects(controlRequest(nc, "get", { kind: "Route", service: "Not_A_Name" }), (err: CliError) => {
      assert.equal(err.exitCode, Exit.rejected);
      assert.match(err.message, /^bad get request: service: must be a service name/);
      return true;
    });
  });
});

/** One page of the keys verb, as a sidecar asks for it; the reply checked against its schema. */
async function keysPage(body: unknown, service = "svc") {
  const msg = await nc.request(keysSubject(service), JSON.stringify(body), { timeout: 5_000 });
  const checked = checkControlReply("keys", msg.json<unknown>());
  assert.ok(checked.ok, JSON.stringify(checked));
  return checked.value;
}

describe("the keys verb: control lists a readable bucket's keys for a sidecar", () => {
  test("pages of at most 1000 keys in byte order, each naming the next; a filter narrows them", async () => {
    const kv = await new Kvm(control.nc).open(POLICY_BUCKETS.Quota);
    const written = Array.from({ length: 1005 }, (_, i) => `paged.k${String(i).padStart(4, "0")}`);
    await Promise.all(written.map((k) => kv.put(k, "{}")));
    await kv.put("other", "{}");
    const first = await keysPage({ bucket: POLICY_BUCKETS.Quota, filter: "paged.*" });
    assert.ok(first.ok);
    assert.deepEqual(first.keys, written.slice(0, 1000));
    assert.equal(first.next, 1000);
    assert.equal(first.source, "home");
    const second = await keysPage({ bucket: POLICY_BUCKETS.Quota, filter: "paged.*", offset: first.next });
    assert.ok(second.ok);
    assert.deepEqual(second.keys, written.slice(1000));
    assert.equal(second.next, undefined, "the last page");
    // Without a filter, every key: `other` sorts first, so each page starts one key earlier.
    const pages: string[][] = [];
    for (let offset: number | undefined = 0; offset !== undefined; ) {
      const page = await keysPage({ bucket: POLICY_BUCKETS.Quota, offset });
      assert.ok(page.ok);
      pages.push(page.keys);
      offset = page.next;
    }
    assert.deepEqual(pages, [["other", ...written.slice(0, 999)], written.slice(999)]);
  });

  test("with values, each key's newest revision from the same stream; a page is bounded in bytes too", async () => {
    const kv = await new Kvm(control.nc).open(POLICY_BUCKETS.Quota);
    // An eighth of max_payload each, a sixth in base64: four fit in a page's three quarters.
    const big = "x".repeat(nats.maxPayload / 8);
    const revisions = new Map<string, number>();
    for (let i = 0; i < 12; i++) revisions.set(`big.k${String(i).padStart(2, "0")}`, await kv.put(`big.k${String(i).padStart(2, "0")}`, `${i}${big}`));
    await kv.delete("big.k11");
    const entries: Array<{ key: string; revision: number; operation: string; value: string }> = [];
    let pages = 0;
    for (let offset: number | undefined = 0; offset !== undefined; pages++) {
      const page = await keysPage({ bucket: POLICY_BUCKETS.Quota, filter: "big.*", offset, values: true });
      assert.ok(page.ok && page.entries);
      assert.deepEqual(page.entries.map((e) => e.key), page.keys);
      assert.ok(JSON.stringify(page).length < 0.75 * nats.maxPayload, `page ${pages} is ${JSON.stringify(page).length} bytes`);
      entries.push(...page.entries);
      offset = page.next;
    }
    assert.ok(pages >= 3, `${pages} pages`);
    assert.deepEqual(entries.map((e) => e.key), [...revisions.keys()]);
    for (const e of entries.slice(0, 11)) {
      assert.equal(e.revision, revisions.get(e.key));
      assert.equal(e.operation, "PUT");
      assert.equal(Buffer.from(e.value, "base64").toString(), `${Number(e.key.slice(5))}${big}`);
    }
    assert.equal(entries[11]!.operation, "DEL", "a deleted key's newest revision is its deletion");
  });

  test("only the buckets a sidecar may read: the request schema and READABLE_BUCKETS agree", async () => {
    assert.deepEqual(controlKeysRequest.properties.bucket.enum, [...READABLE_BUCKETS]);
    for (const bucket of [QUOTA_COUNTER_BUCKETS.minute, QUOTA_COUNTER_BUCKETS.day, LEASE_BUCKET, ACCESS_STREAM, kvStream(POLICY_BUCKETS.Route), "mesh_routes.>"]) {
      const reply = await ask(keysSubject("svc"), JSON.stringify({ bucket }));
      assert.equal(reply.error.code, "bad_request", bucket);
      assert.deepEqual(reply.error.problems?.map((p) => p.path), ["bucket"], bucket);
    }
    // No way to name a stream, or to reach beyond the bucket's own subjects.
    for (const [body, path] of [
      [{ bucket: POLICY_BUCKETS.Route, stream: ACCESS_STREAM }, "stream"],
      [{ bucket: POLICY_BUCKETS.Route, filter: "$KV.mesh_quota_minute.>" }, "filter"],
      [{ bucket: POLICY_BUCKETS.Route, filter: "a..b" }, "filter"],
      [{ bucket: POLICY_BUCKETS.Route, filter: ">.a" }, "filter"],
    ] as const) {
      const reply = await ask(keysSubject("svc"), JSON.stringify(body));
      assert.equal(reply.error.code, "bad_request", JSON.stringify(body));
      assert.deepEqual(reply.error.problems?.map((p) => p.path), [path], JSON.stringify(body));
    }
    // The barrier: a readable bucket on the same subject is listed.
    assert.ok((await keysPage({ bucket: POLICY_BUCKETS.Route })).ok);
  });

  test("served only on mesh.ctl.v1.keys.<service>", async () => {
    const bare = await ask(ctlSubject("keys"), JSON.stringify({ bucket: POLICY_BUCKETS.Route }));
    assert.equal(bare.error.code, "bad_request");
    assert.match(bare.error.message, /no control verb is served on mesh\.ctl\.v1\.keys$/);
    const odd = await ask(keysSubject("Not_A_Service"), JSON.stringify({ bucket: POLICY_BUCKETS.Route }));
    assert.equal(odd.error.code, "bad_request");
    assert.match(odd.error.message, /keys are asked on mesh\.ctl\.v1\.keys\.<service>, not mesh\.ctl\.v1\.keys\.Not_A_Service/);
  });
});

/** Answers `subject` on the fake server with `answer()` until the test file ends. */
async function fakeControl(subject: string, answer: () => unknown): Promise<NatsConnection> {
  const conn = await connectClient(fakeNats.urls);
  conn.subscribe(subject, { callback: (_err, msg) => void msg.respond(JSON.stringify(answer())) });
  await conn.flush();
  return conn;
}

describe("the sidecar checks control's replies", () => {
  test("a quota lease reply that does not fit its schema is control unavailable: onUnavailable decides", async () => {
    let answer: unknown = {};
    await fakeControl(quotaLeaseSubject("leased"), () => answer);
    let clock = Date.now();
    const decisions: QuotaOutcome[] = [];
    const gate = createQuotaGate({
      nc: await connectClient(fakeNats.urls),
      service: "leased",
      logger: pino({ level: "silent" }),
      now: () => clock,
      onDecision: (_caller, d) => decisions.push(d),
    });
    const policy = validatePolicy({ kind: "Quota", service: "leased", limits: [{ caller: "frontend", requests: 100, per: "minute" }], onUnavailable: "deny" });
    assert.ok(policy.ok);
    gate.setPolicy(policy.value as QuotaPolicy);
    const invalid = [
      { ok: true, granted: "lots", remaining: 5 },
      { ok: true, granted: 5 },
      { ok: true, granted: 5, remaining: 95, bonus: 1 },
      { ok: false, error: { code: "sorry", message: "no" } },
      "granted",
    ];
    for (const reply of invalid) {
      answer = reply;
      clock += 60_000; // a new window, and past the time onUnavailable decides without asking
      const decision = await gate.admit("frontend");
      assert.equal(decision.allowed, false, JSON.stringify(reply));
      assert.equal(decisions.at(-1), "unavailable_denied", JSON.stringify(reply));
    }
    // The barrier: the same path with a valid grant admits.
    answer = { ok: true, granted: 5, remaining: 95 };
    clock += 60_000;
    assert.equal((await gate.admit("frontend")).allowed, true);
    assert.equal(decisions.at(-1), "allowed");
    await gate.close();
  });

  test("a register reply that does not fit its schema is a failed heartbeat", async () => {
    let answer: unknown = { ok: true };
    await fakeControl(registerSubject("beating"), () => answer);
    const logs = captureLogs();
    const heartbeat = new RegistryHeartbeat(await connectClient(fakeNats.urls), logs.logger, { service: "beating", version: "v1", instance: "b-1", app: "http://127.0.0.1:1" });
    await heartbeat.start();
    const failed = logs.lines.find((l) => l.msg.startsWith("registry heartbeat failed"));
    assert.match(String(failed?.err?.message), /invalid register reply: revision: is required/);
    // The barrier: a valid reply is accepted again.
    answer = { ok: true, revision: 7 };
    await heartbeat.beat();
    assert.ok(logs.lines.some((l) => l.msg === "registry heartbeats accepted again"));
    await heartbeat.stop();
  });
});

describe("the CLI checks control's replies", () => {
  test("a reply that does not fit the verb's schema is control unreachable (exit 3), naming the path", async () => {
    let answer: unknown = { ok: true, items: [{ kind: "Routes", service: "pricing", revision: 1, created: "x", operation: "PUT" }] };
    await fakeControl(ctlSubject("get"), () => answer);
    const cli = await connectClient(fakeNats.urls);
    await assert.rejects(requestControl(cli, "get", { kind: "Route" }), (err: Error) => {
      assert.ok(err instanceof ControlUnreachableError);
      assert.match(err.message, /invalid reply: items\[0\]\.kind: must be one of Route, Authz, Quota/);
      return true;
    });
    answer = { ok: false, error: { code: "internal" } };
    await assert.rejects(controlRequest(cli, "get", { kind: "Route" }), (err: CliError) => err.exitCode === Exit.unreachable && /error\.message: is required/.test(err.message));
    // The barrier: a valid reply from the same responder is returned.
    answer = { ok: true, items: [] };
    assert.deepEqual(await requestControl(cli, "get", { kind: "Route" }), { ok: true, items: [] });
  });
});

describe("control checks telemetry reports", () => {
  const report = () => ({
    v: 1, service: "frontend", version: "v1", instance: "f-1", boot: "b", seq: 1, at: 1, intervalMs: 2000, le: [0.1, 1],
    requests: [["outbound", "frontend", "pricing", "v1", "GET", "200", 3, 0.3, [1, 2, 0]]],
    counters: [["retries", ["frontend", "pricing"], 2]], gauges: [["breaker_state", ["frontend", "pricing", "v1"], 1]],
    droppedSeries: 0, final: false,
  });

  test("problems name the JSON path: the schema's, and the catalog's and histogram's", () => {
    const cases: Array<[(r: any) => void, string]> = [
      [(r) => (r.seq = 0), "seq"],
      [(r) => (r.requests[0][6] = "3"), "requests[0][6]"],
      [(r) => (r.requests[0][8] = [1, 2]), "requests[0][8]"],
      [(r) => (r.counters[0][0] = "bogus"), "counters[0][0]"],
      [(r) => (r.gauges[0][1] = ["frontend"]), "gauges[0][1]"],
      [(r) => (r.extra = true), "extra"],
    ];
    assert.ok(checkTelemetryReport(report()).ok);
    for (const [spoil, path] of cases) {
      const r = report();
      spoil(r);
      const checked = checkTelemetryReport(r);
      assert.equal(checked.ok, false, path);
      assert.ok(!checked.ok && checked.problems.some((p) => p.path === path), `${path}: ${JSON.stringify(checked)}`);
    }
  });

  test("a malformed report on the wire is counted, not merged", async () => {
    const before = await metricSum(control.registry, "mesh_telemetry_reports_total", { outcome: "malformed" });
    const bad = report();
    (bad.requests[0] as unknown[])[8] = [1];
    nc.publish("mesh.telemetry.frontend.f-1", JSON.stringify(bad));
    // The barrier: the same report, well-formed, right after it on the same subject.
    nc.publish("mesh.telemetry.frontend.f-1", JSON.stringify(report()));
    const requests = () => metricSum(control.registry, "mesh_requests_total", { source: "frontend" });
    await eventually(async () => (await requests()) > 0);
    assert.equal(await requests(), 3, "only the well-formed report's requests");
    assert.equal(await metricSum(control.registry, "mesh_telemetry_reports_total", { outcome: "malformed" }), before + 1);
  });
});
