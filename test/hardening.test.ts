import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import type { NatsConnection } from "@nats-io/transport-node";
import { controlRequest } from "../control/client.ts";
import { startApp } from "./helpers/apps.ts";
import { startTestControl } from "./helpers/control.ts";
import { call, eventually, startTestSidecar } from "./helpers/mesh.ts";
import { connectClient, startNats, type NatsCluster } from "./helpers/nats.ts";

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
