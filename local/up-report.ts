// What `mesh up` prints once the mesh answers: first the one command a
// newcomer should try, then every other useful address.
import { relative } from "node:path";
import { Defaults } from "../schemas/index.ts";
import { DASHBOARD_PATH } from "../control/dashboard/paths.ts";
import { demoEntry, demoStream } from "../services/manifest.ts";
import type { NatsCluster } from "./nats-cluster.ts";
import { credsDirOf, HOST, type SidecarPlan, type UpOptions, type UpPlan } from "./up-plan.ts";

/** A path relative to the working directory when inside it, else absolute. */
export function displayPath(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel && !rel.startsWith("..") ? rel : path;
}

const pad = (s: string) => s.padEnd(18);

export function readyReport(plan: UpPlan, opts: UpOptions, cluster: NatsCluster, tookMs: number, policyNote?: string): string {
  const seconds = (tookMs / 1000).toFixed(1);
  const what = plan.apps.length ? `${plan.apps.length} demo apps behind sidecars` : "no demo apps";
  const lines = [
    "",
    `natsmesh is ready in ${seconds} s: ${cluster.servers.length} NATS node(s), ${what}, ingress on ${HOST}:${plan.ingress.listenPort}`,
    ...(policyNote ? [`Policy: ${policyNote}`] : []),
    "",
    ...tryIt(plan),
    "",
    `Dashboard (topology, services, policy; docs/dashboard.md): http://${HOST}:${plan.controlAdminPort}${DASHBOARD_PATH}`,
    "",
    "Policy (the control service; see mesh help):",
    `  npx mesh services${natsFlag(cluster)}${credsFlag(opts)}`,
    `  npx mesh apply -f FILE${natsFlag(cluster)}${credsFlag(opts)}`,
    "",
    "Admin endpoints (also /readyz, /healthz):",
    ...[plan.ingress, ...plan.apps.map((a) => a.sidecar)].map(
      (s: SidecarPlan) => `  ${pad(`${s.service} ${s.appPort === undefined ? "" : s.version}`)}http://${HOST}:${s.adminPort}/metrics`,
    ),
    `  ${pad("control")}http://${HOST}:${plan.controlAdminPort}/metrics`,
    ...(plan.apps.length ? ["Demo apps, directly (no mesh):"] : []),
    ...plan.apps.map((a) => `  ${pad(`${a.svc.service} ${a.svc.version}`)}http://${HOST}:${a.port}/`),
    `NATS (${cluster.urls.join(",")}) monitoring:`,
    ...cluster.servers.map((s) => `  ${pad(s.name)}http://${HOST}:${s.monitorPort}/varz  /jsz  /routez`),
    "",
    `Logs: ${displayPath(opts.dataDir)}/logs/<name>.log, NATS in ${displayPath(opts.dataDir)}/nats/<node>/nats.log; pids in ${displayPath(opts.dataDir)}/pids.json`,
    "Ctrl-C stops every process.",
    "",
  ];
  return `${lines.join("\n")}\n`;
}

function tryIt(plan: UpPlan): string[] {
  const port = plan.ingress.listenPort;
  if (!plan.apps.length) {
    return [
      "Send requests through the mesh via the ingress sidecar, naming the service by host:",
      `  curl http://SERVICE.localhost:${port}/`,
    ];
  }
  const others = [...new Set(plan.apps.map((a) => a.svc.service).filter((s) => s !== demoEntry.service))];
  return [
    `Try it (ingress sidecar -> ${demoEntry.service} -> ${others.join(", ")}, all over NATS):`,
    `  curl http://${demoEntry.service}.localhost:${port}${demoEntry.path}`,
    `  curl -x http://${HOST}:${port} http://${demoEntry.service}${demoEntry.path}    # same, with the ingress as HTTP proxy`,
    `  curl -N http://${demoStream.service}.localhost:${port}${demoStream.path}    # live price ticks: server-sent events, streamed over NATS`,
  ];
}

/** Secure mode: the CLI's own key (NATS refuses clients without one). */
function credsFlag(opts: UpOptions): string {
  return opts.secure ? ` --creds ${displayPath(credsDirOf(opts))}/admin.nk` : "";
}

/** The CLI defaults to nats://127.0.0.1:4222; say where NATS is when it is elsewhere. */
function natsFlag(cluster: NatsCluster): string {
  return cluster.urls[0] === Defaults.natsUrl ? "" : ` --nats ${cluster.urls.join(",")}`;
}
