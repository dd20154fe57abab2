// The web dashboard in a real browser (Debian's chromium driven by
// playwright-core, no browser download) against the demo mesh with live
// traffic: the Proof list of issue 14 (docs/dashboard.md §Tests).
// Screenshots of the topology and a service page go to test-artifacts/.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdir, readFile } from "node:fs/promises";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { chromium, type Browser, type Page } from "playwright-core";
import { requestControl } from "../control/index.ts";
import { ensureChromium } from "../local/chromium-binary.ts";
import { parsePolicyText } from "../schemas/index.ts";
import { demoServices, examplePolicies, startDemoApp, stopDemoApp, waitForHttp } from "../services/manifest.ts";
import { startApp } from "./helpers/apps.ts";
import { onFileEnd } from "./helpers/cleanup.ts";
import { call, eventually, freePort, rawCall, runMesh, startTestSidecar } from "./helpers/mesh.ts";
import { connectClient, startNats, type NatsCluster } from "./helpers/nats.ts";

const MESH_BIN = fileURLToPath(new URL("../bin/mesh.js", import.meta.url));
const ARTIFACTS = fileURLToPath(new URL("../test-artifacts/", import.meta.url));
/** A bound on waits for what must happen (a page update, a restart), to fail with a message before the file's timeout. */
const WAIT_MS = 30_000;
/** The path of the request whose record must show as text: run as HTML it would set window.__xss. */
const SCRIPT_PATH = "/items/<script>window.__xss=1</script>";

let nats: NatsCluster;
let control: ChildProcess;
let adminPort: number;
let dashboard: string;
let ingressPort: number;
let browser: Browser;
/** The "flaky" app answers 500 while this is true. */
let failing = false;
let traffic: NodeJS.Timeout | undefined;
/** Uncaught errors in the page; every test ends by checking there were none (closed). */
const pageErrors: string[] = [];

/** `mesh control` as its own process on a fixed admin port, so that a restart keeps the dashboard's URL. */
async function startControl(): Promise<ChildProcess> {
  const child = spawn(process.execPath, [MESH_BIN, "control", "--nats", nats.urls.join(","), "--admin", `127.0.0.1:${adminPort}`, "--log-level", "warn"], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  onFileEnd(() => {
    if (child.exitCode === null) child.kill("SIGKILL");
  });
  await eventually(async () => (await fetch(`http://127.0.0.1:${adminPort}/readyz`)).ok, WAIT_MS);
  return child;
}

before(async () => {
  nats = await startNats({ nodes: 3 });
  adminPort = await freePort();
  dashboard = `http://127.0.0.1:${adminPort}/dashboard/`;
  control = await startControl();
  const nc = await connectClient(nats.urls);
  const policies = parsePolicyText(await readFile(examplePolicies, "utf8"));
  assert.ok(policies.ok);
  await requestControl(nc, "apply", { documents: [...policies.documents] });

  // The demo: every app behind its own sidecar, spread over the nodes.
  for (const [i, svc] of demoServices.entries()) {
    const appPort = await freePort();
    const sidecar = await startTestSidecar({ service: svc.service, version: svc.version, app: `http://127.0.0.1:${appPort}`, nats: [nats.urls[i % 3]!] });
    const child = startDemoApp(svc, { port: appPort, outbound: `http://127.0.0.1:${sidecar.outbound.port}` });
    onFileEnd(() => stopDemoApp(child));
    await waitForHttp(`http://127.0.0.1:${appPort}${svc.healthPath}`, 15_000, child);
  }
  const flaky = await startApp((_req, res) => {
    res.writeHead(failing ? 500 : 200, { "content-type": "text/plain" });
    res.end(failing ? "broken" : "fine");
  });
  await startTestSidecar({ service: "flaky", version: "v1", app: flaky.url, nats: nats.urls });
  ingressPort = (await startTestSidecar({ service: "ingress", nats: nats.urls })).outbound.port;
  await eventually(async () => (await call(ingressPort, "frontend", "/products")).statusCode === 200, WAIT_MS);

  // Live traffic for the whole file: the demo's entry, catalog directly, and the flaky app.
  const once = async (service: string, path: string) => void (await call(ingressPort, service, path).then((r) => r.body.dump(), () => undefined));
  let busy = false;
  traffic = setInterval(() => {
    if (busy) return;
    busy = true;
    void Promise.all([once("frontend", "/products"), once("catalog", "/items"), once("flaky", "/work")]).finally(() => (busy = false));
  }, 100);
  onFileEnd(() => clearInterval(traffic));

  browser = await chromium.launch({ executablePath: await ensureChromium(), args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
  onFileEnd(() => browser.close());
  await mkdir(ARTIFACTS, { recursive: true });
});

after(() => clearInterval(traffic));

async function open(hash: string): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  page.on("pageerror", (err) => pageErrors.push(`${hash}: ${err.message}`));
  await page.goto(`${dashboard}${hash}`);
  return page;
}

/** Closes a page, then: no uncaught error happened in it. */
async function closed(page: Page): Promise<void> {
  await page.close();
  assert.deepEqual(pageErrors, []);
}

const edgeRow = (page: Page, from: string, to: string) => page.locator(`[data-testid=edges] tr[data-edge="${from}->${to}"][data-kind=call]`);

describe("dashboard", () => {
  test("the topology shows the demo's services and edges with non-zero rates that change while traffic runs", { timeout: 120_000 }, async () => {
    const opened = Date.now();
    const page = await open("#/?window=10");
    try {
      await edgeRow(page, "ingress", "frontend").waitFor({ timeout: WAIT_MS });
      console.log(`measured: page open to first edge on screen ${Date.now() - opened} ms`);
      for (const [from, to] of [["ingress", "frontend"], ["frontend", "catalog"], ["frontend", "pricing"], ["ingress", "catalog"]] as const) {
        await edgeRow(page, from, to).waitFor({ timeout: WAIT_MS });
      }
      const requests = edgeRow(page, "frontend", "pricing").locator("[data-field=requests]");
      const rps = Number.parseFloat(await edgeRow(page, "frontend", "pricing").locator("[data-field=rps]").innerText());
      assert.ok(rps > 0, `frontend -> pricing at ${rps} rps`);
      const first = await requests.innerText();
      // The barrier: the figure on screen changes by itself, without a reload.
      await page.waitForFunction(([sel, was]) => document.querySelector(sel)?.textContent !== was, [`[data-testid=edges] tr[data-edge="frontend->pricing"][data-kind=call] [data-field=requests]`, first] as const, { timeout: WAIT_MS });
      const nodes = await page.evaluate(() => (window as any).meshDashboard.cy.nodes().map((n: any) => `${n.id()}|${n.data("label")}`) as string[]);
      for (const service of ["frontend", "catalog", "pricing", "ingress", "flaky"]) assert.ok(nodes.some((n) => n.startsWith(`${service}|`)), nodes.join("\n"));
      const pricing = nodes.find((n) => n.startsWith("pricing|"))!;
      assert.match(pricing, /v1 1\/1 ready/);
      assert.match(pricing, /v2 1\/1 ready/);
      // The warm-up's 503s (before interest crossed the cluster) have left the window.
      await page.locator(`[data-testid=edges] tr[data-edge="ingress->frontend"][data-state=ok]`).waitFor({ timeout: WAIT_MS });
      await page.screenshot({ path: `${ARTIFACTS}dashboard-topology.png`, fullPage: true });
    } finally {
      await closed(page);
    }
  });

  test("a service page shows instances, charts with data points and the current policies", { timeout: 120_000 }, async () => {
    // A second Route revision, so that the history has two to diff.
    const nc = await connectClient(nats.urls);
    const route = (await requestControl(nc, "get", { kind: "Route", service: "pricing" })).items[0]!;
    const applied = await requestControl(nc, "apply", { documents: [{ ...(route.document as object), timeoutMs: 2500 }] });
    const page = await open("#/service/pricing");
    try {
      await page.locator("[data-testid=instances] tr[data-instance]").nth(1).waitFor({ timeout: WAIT_MS });
      const instances = await page.locator("[data-testid=instances] tbody tr").allInnerTexts();
      assert.equal(instances.length, 2, instances.join("\n"));
      assert.ok(instances.some((r) => /\bv1\b.*\bready\b/.test(r)) && instances.some((r) => /\bv2\b.*\bready\b/.test(r)), instances.join("\n"));
      await page.locator("[data-testid=policies] [data-kind=Route][data-revision]").waitFor({ timeout: WAIT_MS });
      await page.locator("[data-testid=policies] [data-kind=Authz][data-revision]").waitFor({ timeout: WAIT_MS });
      assert.match(await page.locator("[data-testid=policies] [data-kind=Route] pre").innerText(), /"weight": 90/);
      for (const chart of ["rate", "success", "latency"]) {
        await page.waitForFunction((c) => Number(document.querySelector(`[data-chart=${c}]`)?.getAttribute("data-points")) > 0, chart, { timeout: WAIT_MS });
      }
      // A line, not a dot, in the screenshot: a second point comes with the next sample.
      await page.waitForFunction(() => Number(document.querySelector("[data-chart=rate]")?.getAttribute("data-points")) >= 2, undefined, { timeout: WAIT_MS });
      await page.locator("[data-testid=inbound] tr[data-edge='frontend->pricing']").waitFor({ timeout: WAIT_MS });
      await page.locator("[data-testid=tail] tbody tr").first().waitFor({ timeout: WAIT_MS });
      await page.locator(`[data-testid=policies] [data-kind=Route][data-revision="${applied.applied[0]!.revision}"]`).waitFor({ timeout: WAIT_MS });
      await page.locator("[data-testid=diff] .added", { hasText: '"timeoutMs": 2500' }).waitFor({ timeout: WAIT_MS });
      await page.locator("[data-testid=diff] .removed", { hasText: '"timeoutMs": 2000' }).waitFor({ timeout: WAIT_MS });
      await page.screenshot({ path: `${ARTIFACTS}dashboard-service-pricing.png`, fullPage: true });
    } finally {
      await closed(page);
    }
  });

  test("a pasted invalid document shows its JSON-path errors", { timeout: 60_000 }, async () => {
    const nc = await connectClient(nats.urls);
    const before = (await requestControl(nc, "get", { kind: "Route", service: "pricing" })).items[0]!;
    const page = await open("#/policy");
    try {
      await page.locator("[data-testid=policy-text]").fill("kind: Route\nservice: pricing\ntimeoutMs: -5\nrules:\n  - backends: [{ version: v1, wieght: 150 }]\n");
      await page.locator("[data-testid=policy-validate]").click();
      await page.locator("[data-testid=policy-result] [data-state=invalid]").waitFor({ timeout: WAIT_MS });
      const paths = await page.locator("[data-testid=policy-result] li[data-path]").evaluateAll((els) => els.map((e) => e.getAttribute("data-path")));
      assert.ok(paths.includes("timeoutMs"), paths.join(", "));
      assert.ok(paths.includes("rules[0].backends[0].wieght"), paths.join(", "));
      // The barrier: a valid document on the same page is accepted, so the errors came from the check.
      await page.locator("[data-testid=policy-text]").fill("kind: Route\nservice: pricing\ntimeoutMs: 1500\n");
      await page.locator("[data-testid=policy-validate]").click();
      await page.locator("[data-testid=policy-result] [data-state=valid]").waitFor({ timeout: WAIT_MS });
      const after = (await requestControl(nc, "get", { kind: "Route", service: "pricing" })).items[0]!;
      assert.deepEqual([after.revision, after.document], [before.revision, before.document], "validate applied nothing");
    } finally {
      await closed(page);
    }
  });

  test("an app that returns 500s turns its edge into an error state", { timeout: 120_000 }, async () => {
    const page = await open("#/?window=10");
    try {
      await page.locator(`[data-testid=edges] tr[data-edge="ingress->flaky"][data-state=ok]`).waitFor({ timeout: WAIT_MS });
      failing = true;
      const broke = Date.now();
      const row = page.locator(`[data-testid=edges] tr[data-edge="ingress->flaky"][data-state=error]`);
      await row.waitFor({ timeout: WAIT_MS });
      console.log(`measured: first 500s to error edge on screen ${Date.now() - broke} ms (10 s window, error under 95% success)`);
      assert.match(await row.locator("[data-field=state]").innerText(), /ERROR/, "labelled, not colour alone");
      const edge = await page.evaluate(() => {
        const e = (window as any).meshDashboard.cy.getElementById("call:ingress->flaky");
        return { error: e.hasClass("error") as boolean, label: e.data("label") as string, color: e.style("line-color") as string };
      });
      assert.ok(edge.error, JSON.stringify(edge));
      assert.match(edge.label, /^ERROR /);
      assert.match(edge.color, /217, ?48, ?37|#d93025/i);
      await page.screenshot({ path: `${ARTIFACTS}dashboard-topology-error.png`, fullPage: true });
    } finally {
      failing = false;
      await closed(page);
    }
  });

  test("a request path containing <script> is shown as text", { timeout: 120_000 }, async () => {
    const res = await rawCall(ingressPort, SCRIPT_PATH, { headers: { host: "catalog" } });
    assert.ok(res.status > 0);
    const page = await open("#/service/catalog");
    try {
      // The tail's own filters find it among the live traffic's records.
      await page.locator("[data-filter=path]").fill("<script>");
      await page.locator("[data-filter=caller]").fill("ingress");
      const cell = page.locator("[data-testid=tail] td.path", { hasText: "<script>" }).first();
      await cell.waitFor({ timeout: WAIT_MS });
      assert.equal(await cell.innerText(), SCRIPT_PATH);
      assert.equal(await page.locator("[data-testid=tail] script").count(), 0);
      assert.equal(await page.evaluate(() => (window as any).__xss), undefined);
    } finally {
      await closed(page);
    }
  });

  test("mesh dashboard prints the URL control serves it at", { timeout: 60_000 }, async () => {
    const r = await runMesh(["dashboard", "--no-open", "--nats", nats.urls.join(",")]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), dashboard);
    const page = await fetch(r.stdout.trim());
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-security-policy") ?? "", /script-src 'self'/);
    const nobody = await runMesh(["dashboard", "--no-open", "--nats", `nats://127.0.0.1:${await freePort()}`]);
    assert.equal(nobody.code, 3, "NATS unreachable");
  });

  test("bad input is refused with a message, and nothing but the page's own files is served", { timeout: 60_000 }, async () => {
    const get = async (path: string, init?: RequestInit) => {
      const res = await fetch(`${dashboard}${path}`, init);
      return { status: res.status, body: await res.text() };
    };
    for (const [path, status, message] of [
      ["api/service?name=Not_A_Name", 400, /name must be a service name, got 'Not_A_Name'/],
      ["api/topology?window=0", 400, /window must be whole seconds from 1 to 60/],
      ["api/history?kind=Nope&service=pricing", 400, /kind must be Route, Authz or Quota/],
      ["api/logs?service=pricing&afterSeq=-1", 400, /afterSeq must be a stream sequence/],
      ["api/nothing", 404, /no dashboard endpoint/],
      ["..%2f..%2fpackage.json", 404, /no dashboard file/],
      ["index.html", 404, /no dashboard file/],
    ] as const) {
      const r = await get(path);
      assert.equal(r.status, status, `${path}: ${r.body}`);
      assert.match(r.body, message, path);
    }
    assert.equal((await get("api/topology", { method: "POST" })).status, 405, "read-only");
    const big = await get("api/validate", { method: "POST", body: "x".repeat(1024 * 1024 + 1) });
    assert.equal(big.status, 400);
    assert.match(big.body, /larger than 1048576 bytes/);
    const rebound = await rawCall(adminPort, "/dashboard/api/topology", { headers: { host: `attacker.example:${adminPort}` } });
    assert.equal(rebound.status, 403, "a loopback listener answers loopback names only (DNS rebinding)");
    const local = await rawCall(adminPort, "/dashboard/api/topology", { headers: { host: `localhost:${adminPort}` } });
    assert.equal(local.status, 200);
    assert.equal((await get("api/topology")).status, 200, "the barrier: a good request is served");
  });

  test("the page reconnects by itself after control restarts", { timeout: 120_000 }, async () => {
    const page = await open("#/?window=10");
    try {
      const status = page.locator("#status");
      await page.locator("#status[data-state=live]").waitFor({ timeout: WAIT_MS });
      await edgeRow(page, "ingress", "frontend").waitFor({ timeout: WAIT_MS });
      const exited = new Promise((resolve) => control.once("exit", resolve));
      control.kill("SIGTERM");
      await page.locator("#status[data-state=reconnecting]").waitFor({ timeout: WAIT_MS });
      assert.match(await status.innerText(), /reconnecting/);
      await exited;
      control = await startControl();
      const restarted = Date.now();
      await page.locator("#status[data-state=live]").waitFor({ timeout: WAIT_MS });
      console.log(`measured: new control ready to page live again ${Date.now() - restarted} ms`);
      // Fed by the new replica: its first telemetry reports reach the page without a reload.
      const at = await page.locator("[data-testid=topology-at]").innerText();
      await page.waitForFunction((was) => document.querySelector("[data-testid=topology-at]")?.textContent !== was, at, { timeout: WAIT_MS });
      await edgeRow(page, "ingress", "frontend").waitFor({ timeout: WAIT_MS });
    } finally {
      await closed(page);
    }
  });
});
