// Every admin listener lists its endpoints at `/`; control serves `/config`
// with secrets redacted; process logs are JSON in files and pipes and pretty
// on request (docs/cli.md "Admin endpoints", "Logs"). Real NATS, a real
// sidecar and a real `mesh control` process.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { redactUrl } from "../control/config-view.ts";
import { logFormat, startAdmin } from "../runtime/index.ts";
import { Registry } from "prom-client";
import { startApp } from "./helpers/apps.ts";
import { onFileEnd } from "./helpers/cleanup.ts";
import { startTestSidecar } from "./helpers/mesh.ts";
import { startNats, type NatsCluster } from "./helpers/nats.ts";

const MESH_BIN = fileURLToPath(new URL("../bin/mesh.js", import.meta.url));
let nats: NatsCluster;
before(async () => {
  nats = await startNats();
});

const getJson = async (port: number, path: string) => {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: (await res.json()) as Record<string, any> };
};

/** `mesh control` as its own process; resolves with its admin port and every line it printed, once it serves. */
function spawnControl(nats: string, env: NodeJS.ProcessEnv = {}): Promise<{ adminPort?: number; lines: string[] }> {
  const child = spawn(process.execPath, [MESH_BIN, "control", "--nats", nats, "--admin", "127.0.0.1:0"], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "inherit"] });
  onFileEnd(() => {
    if (child.exitCode === null) child.kill("SIGKILL");
  });
  const lines: string[] = [];
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout! }).on("line", (line) => {
      lines.push(line);
      if (/control started/.test(line)) {
        const port = /"port":(\d+)/.exec(line)?.[1];
        resolve({ adminPort: port ? Number(port) : undefined, lines });
      }
    });
    child.once("exit", (code) => reject(new Error(`mesh control exited with ${code}: ${lines.join("\n")}`)));
  });
}

describe("admin listeners", () => {
  test("a sidecar's / lists its endpoints with one line each, /config among them", async () => {
    const app = await startApp();
    const sidecar = await startTestSidecar({ service: "echo", app: app.url, nats: nats.urls });
    const { status, body } = await getJson(sidecar.admin.port, "/");
    assert.equal(status, 200);
    assert.match(body.process, /^sidecar of echo v1, instance /);
    assert.deepEqual(Object.keys(body.endpoints), ["/config", "/healthz", "/metrics", "/readyz"]);
    for (const line of Object.values(body.endpoints)) assert.match(String(line), /^\S.{10,}$/);
    const missing = await getJson(sidecar.admin.port, "/nope");
    assert.equal(missing.status, 404);
    assert.match(missing.body.message, /\/ lists them/);
  });

  test("endpoints registered later are listed and served, a prefix/ for everything under it", async () => {
    const admin = await startAdmin({ host: "127.0.0.1", port: 0, registry: new Registry(), readiness: async () => ({ ready: true, reasons: [] }) });
    onFileEnd(() => new Promise((r) => admin.server.close(r)));
    admin.register("/dashboard/", { description: "the dashboard", handle: (req, res) => void res.end(`page ${req.url}`) });
    const { body } = await getJson(admin.address.port, "/");
    assert.equal(body.endpoints["/dashboard/"], "the dashboard");
    assert.equal(await (await fetch(`http://127.0.0.1:${admin.address.port}/dashboard/app.js`)).text(), "page /dashboard/app.js");
  });

  test("control serves /config: its configuration and limits, with the password in a NATS URL redacted", async () => {
    const url = nats.urls[0]!.replace("nats://", "nats://me:s3cret@");
    const control = await spawnControl(url);
    const index = await getJson(control.adminPort!, "/");
    assert.ok("/config" in index.body.endpoints, JSON.stringify(index.body));
    const { status, body } = await getJson(control.adminPort!, "/config");
    assert.equal(status, 200);
    assert.deepEqual(body.nats, [nats.urls[0]!.replace("nats://", "nats://me:***@")]);
    assert.equal(body.limits.statsMaxWindowSeconds, 60);
    assert.doesNotMatch(JSON.stringify(body), /s3cret/);
  });
});

describe("process logs", () => {
  test("JSON when stdout is a pipe or a file; pretty on a terminal or with MESH_LOG_FORMAT=pretty", async () => {
    assert.equal(logFormat(undefined, false), "json");
    assert.equal(logFormat(undefined, true), "pretty");
    assert.equal(logFormat("json", true), "json");
    const json = await spawnControl(nats.urls.join(","));
    assert.ok(json.lines.every((l) => JSON.parse(l).level >= 10), json.lines.join("\n"));
    const pretty = await spawnControl(nats.urls.join(","), { MESH_LOG_FORMAT: "pretty" });
    const started = pretty.lines.find((l) => /control started/.test(l))!;
    assert.match(started, /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: control mesh-control: control started \{"admin":\{/);
    assert.doesNotMatch(started, /\x1b\[/, "no colours outside a terminal");
  });

  test("redactUrl hides passwords and tokens only", () => {
    assert.equal(redactUrl("nats://a:b@h:1"), "nats://a:***@h:1");
    assert.equal(redactUrl("tls://tok@h:1"), "tls://***@h:1");
    assert.equal(redactUrl("nats://h:1"), "nats://h:1");
  });
});
