import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { before, describe, test } from "node:test";
import { connect, nkeys, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { controlRequest } from "../cli/client.ts";
import { formatAccessRecord } from "../cli/commands/logs.ts";
import { type AccessRecord } from "../schemas/index.ts";
import { authenticatorFromFile } from "../runtime/index.ts";
import { onFileEnd, tempDir } from "./helpers/cleanup.ts";
import { startTestControl, type TestControl } from "./helpers/control.ts";
import { eventually, runMesh } from "./helpers/mesh.ts";
import { startNats, type NatsCluster } from "./helpers/nats.ts";
import { metricSum } from "./helpers/observability.ts";

/**
 * `mesh logs` through control, against hostile records: a server where the
 * CLI's key may only talk to control (no JetStream at all), and a writer
 * holding a key that may publish anything into MESH_ACCESS.
 */
let nats: NatsCluster;
let control: TestControl;
let writer: NatsConnection;
let dir: string;
const key = (name: string) => join(dir, `${name}.nk`);

before(async () => {
  dir = await tempDir("natsmesh-logs-");
  const users: string[] = [];
  for (const [name, permissions] of [
    ["control", ""],
    ["writer", ""],
    ["cli", `permissions: { publish: { allow: ["mesh.ctl.v1.>"] }, subscribe: { allow: ["_INBOX.>"] } }`],
  ] as const) {
    const kp = nkeys.createUser();
    await writeFile(key(name), `${new TextDecoder().decode(kp.getSeed())}\n`, { mode: 0o600 });
    users.push(`{ nkey: ${kp.getPublicKey()}${permissions ? `, ${permissions}` : ""} }`);
  }
  nats = await startNats({ extraConfig: `authorization { users: [\n${users.join("\n")}\n] }` });
  control = await startTestControl(nats.urls, undefined, { creds: key("control") });
  writer = await connect({ servers: nats.urls, authenticator: await authenticatorFromFile(key("writer")), noAsyncTraces: true });
  onFileEnd(() => writer.close());
});

const MESH = fileURLToPath(new URL("../bin/mesh.js", import.meta.url));
const asCli = () => ({ env: { NATS_URL: nats.urls.join(","), NATS_CREDS: key("cli") } });

function record(over: Partial<AccessRecord> = {}): AccessRecord {
  return {
    time: new Date().toISOString(), requestId: crypto.randomUUID(), traceId: "", spanId: "", direction: "outbound", source: "thief", destination: "stock",
    version: "v1", instance: "stock-a", method: "GET", path: "/items", status: 200, code: "200", durationMs: 1.5, attempts: 1, meshError: null, reporter: "thief/t-1",
    ...over,
  };
}

/** Stores records as one batch (JSON lines) on `subject` and waits for the stream's ack. */
async function store(subject: string, ...lines: Array<AccessRecord | Record<string, unknown> | string>): Promise<number> {
  const ack = await jetstream(writer).publish(subject, lines.map((l) => (typeof l === "string" ? l : JSON.stringify(l))).join("\n"));
  return ack.seq;
}

describe("mesh logs goes through control", () => {
  test("the CLI's key has no JetStream permission, and mesh logs still works", async () => {
    const cli = await connect({ servers: nats.urls, authenticator: await authenticatorFromFile(key("cli")), noAsyncTraces: true, timeout: 3_000 });
    onFileEnd(() => cli.close());
    const jsm = await jetstreamManager(cli, { timeout: 1_000 }).catch((err: Error) => err);
    assert.ok(jsm instanceof Error, "the CLI cannot even reach the JetStream API");
    const r = record({ source: "okcaller", destination: "okstock", reporter: "okcaller/o-1" });
    await store("mesh.access.okstock.okcaller.outbound", r);
    const out = await runMesh(["logs", "okstock", "-o", "json"], asCli());
    assert.equal(out.code, 0, out.stderr);
    assert.deepEqual(out.stdout.trim().split("\n").map((l) => JSON.parse(l).requestId), [r.requestId]);
  });

  test("records that disagree with their subject, do not validate, or are not JSON are dropped; the rest print escaped and in time order", async () => {
    const dropped = () => metricSum(control.registry, "mesh_access_records_rejected_total");
    const before = await dropped();
    const t0 = Date.now() - 10_000;
    const later = record({ time: new Date(t0 + 2_000).toISOString(), path: "/a\u001b[2J\r\nFORGED 200 attempts=1", requestId: "req\u001b]0;title\u0007" });
    const earlier = record({ time: new Date(t0).toISOString() });
    const spoofed = record({ source: "victim", reporter: "victim/v-1" });
    const wrongSide = record({ direction: "inbound" });
    const badDuration = { ...record(), durationMs: "soon" };
    const extra = { ...record(), injected: true };
    await store("mesh.access.stock.thief.outbound", later, spoofed, wrongSide, badDuration, extra, "not json", earlier);
    const json = await runMesh(["logs", "stock", "-o", "json"], asCli());
    assert.equal(json.code, 0, json.stderr);
    const got = json.stdout.trim().split("\n").map((l) => JSON.parse(l) as AccessRecord);
    assert.deepEqual(got.map((r) => r.requestId), [earlier.requestId, later.requestId], "only the valid records, earliest first");
    assert.equal(await dropped(), before + 5);

    const text = await runMesh(["logs", "stock"], asCli());
    assert.equal(text.code, 0, text.stderr);
    const lines = text.stdout.trimEnd().split("\n");
    assert.equal(lines.length, 2, "a CR/LF in a field cannot forge a line");
    assert.ok(!/[\u0000-\u0008\u000b-\u001f\u007f]/.test(text.stdout), "no control character reaches the terminal");
    assert.match(lines[1]!, /\/a\\u001b\[2J\\u000d\\u000aFORGED/);
    assert.match(lines[1]!, /req\\u001b\]0;title\\u0007/);
  });

  test("a page is bounded; afterSeq reads on from a stream sequence", async () => {
    const seqs: number[] = [];
    for (let k = 0; k < 3; k++) seqs.push(await store("mesh.access.paged.thief.outbound", record({ destination: "paged" }), record({ destination: "paged" })));
    const first = await controlRequest(writer, "logs", { service: "paged", since: 0, limit: 1 });
    assert.equal(first.records.length, 2, "whole batches: the page ends with the batch that reached the limit");
    assert.equal(first.lastSeq, seqs[0]);
    assert.equal(first.more, true);
    const rest = await controlRequest(writer, "logs", { service: "paged", afterSeq: first.lastSeq });
    assert.deepEqual([...new Set(rest.records.map((e) => e.seq))], seqs.slice(1));
    assert.equal(rest.more, false);
    await assert.rejects(controlRequest(writer, "logs", { service: "Bad_Name" } as never), /service: must be a service name/);
    await assert.rejects(controlRequest(writer, "logs", { limit: -1 }), /limit: must be >= 1, got -1/);
  });

  test("--follow polls control with the last sequence and prints what arrives, until interrupted", async () => {
    const child = spawn(process.execPath, [MESH, "logs", "followed", "--follow", "-o", "json"], { env: { ...process.env, ...asCli().env }, stdio: ["ignore", "pipe", "pipe"] });
    onFileEnd(() => void (child.exitCode === null && child.kill("SIGKILL")));
    const seen: string[] = [];
    createInterface({ input: child.stdout }).on("line", (line) => seen.push((JSON.parse(line) as AccessRecord).requestId));
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    const sent: string[] = [];
    // The follower may start after the first store: keep storing until the first shows up, then once more.
    await eventually(async () => {
      const r = record({ destination: "followed" });
      sent.push(r.requestId);
      await store("mesh.access.followed.thief.outbound", r);
      return seen.length > 0;
    });
    const last = record({ destination: "followed" });
    await store("mesh.access.followed.thief.outbound", last);
    await eventually(async () => seen.includes(last.requestId));
    assert.equal(new Set(seen).size, seen.length, "nothing printed twice");
    assert.ok(seen.every((id) => sent.includes(id) || id === last.requestId));
    child.kill("SIGINT");
    assert.equal(await exited, 0);
  });
});

describe("printing", () => {
  test("a record whose durationMs is not a number prints without crashing", () => {
    const line = formatAccessRecord({ ...record(), durationMs: "x" as unknown as number, status: "\u001b[31m" as unknown as number });
    assert.match(line, / \\u001b\[31m - attempts=1$/);
  });
});
