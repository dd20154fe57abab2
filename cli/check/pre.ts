// `mesh check --pre`: what `mesh up` needs before anything is installed:
// nats-server 2.9+, Python 3 for the demo apps, and the demo's ports free.
import { execFile } from "node:child_process";
import { demoServices, findNatsServer, MIN_NATS_SERVER_VERSION, natsServerVersion, planUp, plannedPorts, tryListen, UP_DEFAULTS } from "../../local/index.ts";
import { listed, type CheckResult } from "./report.ts";

export async function preChecks(basePort: number = UP_DEFAULTS.basePort): Promise<CheckResult[]> {
  return [await natsServer(), await python(), await ports(basePort)];
}

async function natsServer(): Promise<CheckResult> {
  const category = "Before mesh up";
  const bin = await findNatsServer();
  const hint = "install it (Debian/Ubuntu: apt-get install nats-server; elsewhere https://github.com/nats-io/nats-server/releases) or set NATS_SERVER_BIN; npm start installs it when run as root on Debian";
  if (!bin) return { category, status: "fail", detail: "nats-server not found on PATH or in NATS_SERVER_BIN", hint };
  try {
    return { category, status: "ok", detail: `nats-server ${await natsServerVersion(bin)} at ${bin} (>= ${MIN_NATS_SERVER_VERSION})` };
  } catch (err) {
    return { category, status: "fail", detail: (err as Error).message, hint };
  }
}

function python(): Promise<CheckResult> {
  const category = "Before mesh up";
  return new Promise((resolve) =>
    execFile("python3", ["--version"], { timeout: 10_000 }, (err, stdout, stderr) =>
      resolve(
        err
          ? { category, status: "fail", detail: "python3 not found (the demo's catalog and pricing v2 are Python)", hint: "install Python 3, or run mesh up --no-demo" }
          : { category, status: "ok", detail: `${`${stdout}${stderr}`.trim()} for the demo's Python services` },
      ),
    ),
  );
}

async function ports(basePort: number): Promise<CheckResult> {
  const category = "Before mesh up";
  const planned = plannedPorts(planUp({ nodes: UP_DEFAULTS.nodes, demo: true, dataDir: "", basePort }, demoServices));
  const busy: string[] = [];
  for (const p of planned) {
    const problem = await tryListen(p.port);
    if (problem) busy.push(`${p.port} (${p.what}: ${problem})`);
  }
  if (busy.length === 0) return { category, status: "ok", detail: `the ${planned.length} ports of mesh up --base-port ${basePort} are free` };
  return { category, status: "fail", detail: `ports in use: ${listed(busy, 4)}`, hint: "stop what holds them (another mesh up?), or pass mesh up --base-port N" };
}
