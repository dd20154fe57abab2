// Real superclusters for the region tests (docs/multi-region.md): clusters
// joined by gateways, plus a leaf node, stopped when the test file ends.
import { connect, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { ensureNatsServer } from "../../local/nats-binary.ts";
import { type StartSuperclusterOptions, type Supercluster, startSupercluster } from "../../local/nats-supercluster.ts";
import { requestControl } from "../../control/index.ts";
import { JS_API, POLICY_BUCKETS, inboxPrefixFor, kvStream } from "../../schemas/index.ts";
import { onFileEnd } from "./cleanup.ts";
import { call, eventually } from "./mesh.ts";

export type { Supercluster } from "../../local/nats-supercluster.ts";

export async function startRegions(opts: Omit<StartSuperclusterOptions, "bin">): Promise<Supercluster> {
  const sc = await startSupercluster({ ...opts, bin: await ensureNatsServer() });
  onFileEnd(() => sc.stop());
  return sc;
}

/** A connection as the CLI makes it, closed when the file ends. */
export async function cliConnection(urls: string[]): Promise<NatsConnection> {
  const nc = await connect({ servers: urls, noAsyncTraces: true, inboxPrefix: inboxPrefixFor("admin"), maxReconnectAttempts: -1 });
  onFileEnd(() => nc.close());
  return nc;
}

/** Applies policy documents through control, as `mesh apply` does; the revisions written. */
export async function apply(nc: NatsConnection, ...documents: Array<Record<string, unknown>>): Promise<number[]> {
  const { applied } = await requestControl(nc, "apply", { documents } as Parameters<typeof requestControl<"apply">>[2]);
  return applied.map((a) => a.revision);
}

/** Status and body of one call through a sidecar. */
export async function served(port: number, service: string, path = "/"): Promise<{ status: number; body: string; error?: string }> {
  const res = await call(port, service, path);
  const body = await res.body.text();
  const error = res.headers["mesh-error"];
  return { status: res.statusCode, body, ...(typeof error === "string" ? { error } : {}) };
}

/** Bodies of `n` sequential GETs; throws on the first that is not 200. */
export async function bodiesOf(port: number, service: string, n = 20): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = await served(port, service);
    if (r.status !== 200) throw new Error(`call ${i + 1} of ${n} to '${service}' answered ${r.status} ${r.body}`);
    out.push(r.body);
  }
  return out;
}

/** Request subjects seen for `service` (a plain subscriber gets a copy of each, beside the queue groups). */
export function tapRequests(nc: NatsConnection, service: string): { subjects: string[]; sub: Subscription } {
  const subjects: string[] = [];
  const sub = nc.subscribe(`mesh.rpc.${service}.>`, { callback: (_err, msg) => void subjects.push(msg.subject) });
  onFileEnd(() => sub.unsubscribe());
  return { subjects, sub };
}

/** Whether a sidecar's /config shows policy `key` at `revision` (the change reached it). */
export async function follows(adminPort: number, key: string, revision: number): Promise<boolean> {
  return (await configOf(adminPort)).policies.some((p) => p.key === key && p.revision === revision);
}

/** Instances of `service` the registry lists in `region`, read through control. */
export async function instancesIn(nc: NatsConnection, service: string, region: string): Promise<number | undefined> {
  const { services } = await requestControl(nc, "services", {});
  return services.find((s) => s.service === service)?.regions?.[region];
}

/** A sidecar's /config. */
export async function configOf(adminPort: number): Promise<{ region: string | null; policies: Array<{ bucket: string; key: string; revision: number }> }> {
  return (await (await fetch(`http://127.0.0.1:${adminPort}/config`)).json()) as never;
}

/**
 * Waits until, with the buckets' home gone, the region's mirror no longer
 * answers direct gets by the bucket's name: nats-server drops a mirror's
 * `mirror_direct` subscription about 3 s after its origin stops answering
 * (the mirror "stalls") and takes it up again only once it has caught up.
 * `nc` is in the account of the streams (control's, in secure mode).
 */
export async function untilMirrorDirectGone(nc: NatsConnection): Promise<void> {
  const subject = `${JS_API}.DIRECT.GET.${kvStream(POLICY_BUCKETS.Route)}`;
  await eventually(async () => nc.request(subject, JSON.stringify({ seq: 1 }), { timeout: 500 }).then(() => false, () => true), 30_000);
}
