// `mesh check`: the live mesh, one check per line (docs/run.md "mesh check").
// NATS first; what needs NATS, JetStream or control is skipped, with a line
// saying so, when those are not there. Expected bucket settings come from
// control's own table (bucketSpecs), never restated here.
import { basename } from "node:path";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager, type JetStreamManager, type StreamInfo } from "@nats-io/jetstream";
import { ACCESS_STREAM, ACCESS_STREAM_LIMITS, bucketSpecs, LEASE_BUCKET, requestControl, TELEMETRY_LEASE_KEY, type BucketSpec } from "../../control/index.ts";
import { authenticatorFromFile, natsUnreachable } from "../../runtime/index.ts";
import { HEARTBEAT_INTERVAL_MS, inboxPrefixFor, kvStream, POLICY_KINDS, type ControlReplies } from "../../schemas/index.ts";
import { CliError, Exit } from "../client.ts";
import { listed, type CheckResult } from "./report.ts";

export interface MeshCheckOptions {
  servers: string[];
  creds?: string;
}

/** Clocks further apart than this fail the check: quota and telemetry windows assume agreeing clocks. */
export const MAX_CLOCK_SKEW_MS = 2_000;
const REQUEST_TIMEOUT_MS = 3_000;
/** Permission errors kept for the report. */
const MAX_PERMISSION_ERRORS = 20;

interface Session {
  nc: NatsConnection;
  identity: string | undefined;
  secure: boolean;
  clusterSize: number;
  permissionErrors: string[];
  /** undefined: JetStream not visible to this identity or not enabled */
  jsm?: JetStreamManager;
  /** control's services reply, when control answered */
  services?: ControlReplies["services"]["services"];
}

export async function meshChecks(opts: MeshCheckOptions): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  const identity = opts.creds ? basename(opts.creds).replace(/\.(nk|creds)$/, "") : undefined;
  const nc = await connectOrReport(opts, identity, results);
  if (!nc) {
    results.push({ category: "NATS", status: "skip", detail: "the other checks need NATS" });
    return results;
  }
  const s: Session = { nc, identity, secure: nc.info?.auth_required === true, clusterSize: nc.info?.connect_urls?.length || 1, permissionErrors: [] };
  void followPermissionErrors(s);
  try {
    results.push(serverVersion(nc));
    results.push(...(await jetStreamChecks(s)));
    results.push(...(await controlChecks(s)));
    await nc.flush().catch(() => undefined);
    results.push(securityCheck(s));
    results.push(await clockCheck(s));
  } finally {
    await nc.close().catch(() => undefined);
  }
  return results;
}

async function connectOrReport(opts: MeshCheckOptions, identity: string | undefined, results: CheckResult[]): Promise<NatsConnection | undefined> {
  let authenticator;
  if (opts.creds) {
    try {
      authenticator = await authenticatorFromFile(opts.creds);
    } catch (err) {
      throw new CliError(Exit.usage, `--creds: ${(err as Error).message}`);
    }
  }
  const where = opts.servers.join(",");
  try {
    const nc = await connect({
      servers: opts.servers,
      name: "mesh-check",
      // Control's identity may use only control's inboxes; every other one is checked as the CLI.
      inboxPrefix: inboxPrefixFor(identity === "control" ? "control" : "admin"),
      noAsyncTraces: true,
      timeout: REQUEST_TIMEOUT_MS,
      maxReconnectAttempts: 0,
      ...(authenticator ? { authenticator } : {}),
    });
    results.push({ category: "NATS", status: "ok", detail: `reachable at ${where}${nc.info?.cluster ? ` (cluster ${nc.info.cluster})` : ""}` });
    return nc;
  } catch (err) {
    const reason = (err as Error).message;
    if (/authori[sz]ation|authentication/i.test(reason)) {
      results.push({
        category: "NATS",
        status: "fail",
        detail: `NATS at ${where} refused ${identity ? `the key of '${identity}'` : "a client without a key"}: ${reason}`,
        hint: "pass --creds with a key mesh creds wrote for this mesh (mesh up --secure: --creds .mesh/creds/admin.nk)",
      });
    } else {
      results.push({ category: "NATS", status: "fail", detail: `${natsUnreachable(opts.servers)}: ${reason}`, hint: "start NATS (npx mesh up), or point --nats / NATS_URL at it" });
    }
    return undefined;
  }
}

async function followPermissionErrors(s: Session): Promise<void> {
  for await (const status of s.nc.status()) {
    if (status.type !== "error") continue;
    const message = String(status.error?.message ?? status.error);
    if (/permission/i.test(message) && s.permissionErrors.length < MAX_PERMISSION_ERRORS) s.permissionErrors.push(message);
  }
}

function serverVersion(nc: NatsConnection): CheckResult {
  const version = nc.info?.version ?? "unknown";
  const [major = 0, minor = 0] = version.split(".").map(Number);
  const ok = major > 2 || (major === 2 && minor >= 9);
  return ok
    ? { category: "NATS", status: "ok", detail: `nats-server ${version} (>= 2.9)` }
    : { category: "NATS", status: "fail", detail: `nats-server ${version} is older than 2.9`, hint: "upgrade nats-server to 2.9 or newer" };
}

async function jetStreamChecks(s: Session): Promise<CheckResult[]> {
  const category = "JetStream";
  if (s.secure && s.identity !== "control") {
    const detail = `not visible to ${s.identity ? `identity '${s.identity}'` : "a client without a key"}: in secure mode JetStream is in control's account`;
    return [{ category, status: "skip", detail: `${detail}; --creds <dir>/control.nk checks buckets and streams` }];
  }
  try {
    s.jsm = await jetstreamManager(s.nc, { timeout: REQUEST_TIMEOUT_MS });
    const account = await s.jsm.getAccountInfo();
    const results: CheckResult[] = [{ category, status: "ok", detail: `enabled: ${account.streams} stream(s), ${s.clusterSize} node(s)` }];
    for (const spec of bucketSpecs()) results.push(await bucketCheck(s, spec));
    results.push(await accessStreamCheck(s.jsm));
    return results;
  } catch (err) {
    s.jsm = undefined;
    return [{ category, status: "fail", detail: `JetStream is not enabled: ${(err as Error).message}`, hint: "start nats-server with -js, or jetstream {} in its config (nats.conf has it)" }];
  }
}

async function streamInfo(jsm: JetStreamManager, stream: string): Promise<StreamInfo | undefined> {
  try {
    return await jsm.streams.info(stream);
  } catch (err) {
    if (/not found/i.test((err as Error).message)) return undefined;
    throw err;
  }
}

const MISSING_HINT = "control creates it at start: start (or restart) mesh control";

async function bucketCheck(s: Session, spec: BucketSpec): Promise<CheckResult> {
  const category = "JetStream";
  const info = await streamInfo(s.jsm!, kvStream(spec.bucket));
  if (!info) return { category, status: "fail", detail: `bucket ${spec.bucket} is missing`, hint: MISSING_HINT };
  const c = info.config;
  const replicas = spec.replicated ? Math.min(3, s.clusterSize) : 1;
  const ttlMs = c.max_age ? c.max_age / 1e6 : undefined;
  const wrong: string[] = [];
  if (c.max_msgs_per_subject !== spec.history) wrong.push(`history ${c.max_msgs_per_subject} (expected ${spec.history})`);
  if (ttlMs !== spec.ttlMs) wrong.push(`ttl ${ttlMs ?? "none"} ms (expected ${spec.ttlMs ?? "none"})`);
  if (c.num_replicas !== replicas) wrong.push(`replicas ${c.num_replicas} (expected ${replicas} on ${s.clusterSize} node(s))`);
  const republish = c.republish;
  if (spec.republish && (republish?.dest !== spec.republish.dest || Boolean(republish.headers_only) !== Boolean(spec.republish.headers_only))) {
    wrong.push(`republish ${republish?.dest ?? "none"} (expected ${spec.republish.dest}${spec.republish.headers_only ? ", headers only" : ""})`);
  }
  if (wrong.length) return { category, status: "fail", detail: `bucket ${spec.bucket}: ${wrong.join(", ")}`, hint: `made by hand or another version: remove it (nats kv del ${spec.bucket}) and restart control` };
  const leader = info.cluster?.leader ? `, leader ${info.cluster.leader}` : "";
  return { category, status: "ok", detail: `bucket ${spec.bucket}: history ${spec.history}, replicas ${c.num_replicas}${ttlMs ? `, ttl ${ttlMs} ms` : ""}${leader}` };
}

async function accessStreamCheck(jsm: JetStreamManager): Promise<CheckResult> {
  const category = "JetStream";
  const info = await streamInfo(jsm, ACCESS_STREAM);
  if (!info) return { category, status: "fail", detail: `stream ${ACCESS_STREAM} is missing (access records are dropped)`, hint: MISSING_HINT };
  const c = info.config;
  const changed = c.max_age / 1e6 !== ACCESS_STREAM_LIMITS.maxAgeMs || c.max_bytes !== ACCESS_STREAM_LIMITS.maxBytes ? " (limits changed by an operator)" : "";
  return { category, status: "ok", detail: `stream ${ACCESS_STREAM}: ${info.state.messages} record(s), replicas ${c.num_replicas}${changed}` };
}

async function controlChecks(s: Session): Promise<CheckResult[]> {
  let services;
  try {
    services = (await requestControl(s.nc, "services", {}, REQUEST_TIMEOUT_MS)).services;
  } catch (err) {
    return [
      { category: "Control", status: "fail", detail: `control does not answer: ${(err as Error).message}`, hint: "start it: npx mesh control --nats URLS (mesh up starts one)" },
      { category: "Control", status: "skip", detail: "registry and policy checks need control" },
    ];
  }
  s.services = services;
  return [await controlAnswers(s), registryCheck(services), ...(await policyChecks(s))];
}

async function controlAnswers(s: Session): Promise<CheckResult> {
  const category = "Control";
  if (!s.jsm) return { category, status: "ok", detail: "control answers on mesh.ctl.v1.* (telemetry lease not visible to this identity)" };
  const entry = await s.jsm.streams
    .getMessage(kvStream(LEASE_BUCKET), { last_by_subj: `$KV.${LEASE_BUCKET}.${TELEMETRY_LEASE_KEY}` })
    .catch(() => null);
  const holder = entry && entry.data.length ? entry.string() : undefined;
  if (!holder) return { category, status: "fail", detail: "control answers, but no replica holds the telemetry lease", hint: "a replica takes it within seconds; if this stays, see control's log" };
  return { category, status: "ok", detail: `control answers on mesh.ctl.v1.*; telemetry lease held by ${holder}` };
}

function registryCheck(services: ControlReplies["services"]["services"]): CheckResult {
  const category = "Registry";
  const total = services.reduce((n, s) => n + s.instances, 0);
  if (total === 0) return { category, status: "ok", detail: "no instance registered" };
  const notReady = services.filter((s) => s.unready > 0).map((s) => `${s.service} ${s.version} (${s.unready} unready)`);
  const ready = services.reduce((n, s) => n + s.ready, 0);
  const draining = services.reduce((n, s) => n + s.draining, 0);
  const summary = `${total} instance(s) of ${new Set(services.map((s) => s.service)).size} service(s): ${ready} ready${draining ? `, ${draining} draining` : ""}`;
  if (notReady.length === 0) return { category, status: "ok", detail: summary };
  return { category, status: "fail", detail: `${summary}; not ready: ${listed(notReady)}`, hint: "their applications do not answer their sidecars: see each sidecar's /readyz" };
}

async function policyChecks(s: Session): Promise<CheckResult[]> {
  const category = "Policy";
  const inForce: string[] = [];
  const rejected: string[] = [];
  const unreadable: string[] = [];
  for (const kind of POLICY_KINDS) {
    const items = await requestControl(s.nc, "get", { kind }, REQUEST_TIMEOUT_MS).then(
      (r) => r.items,
      (err: Error) => (unreadable.push(`${kind}: ${err.message}`), []),
    );
    for (const item of items) {
      if (item.noneValid) rejected.push(`${kind} ${item.service}: no valid revision (r${item.revision} rejected)`);
      else {
        inForce.push(`${kind} ${item.service} r${item.revision}`);
        if (item.rejected) rejected.push(`${kind} ${item.service}: r${item.rejected.revision} rejected, r${item.revision} in force`);
      }
    }
  }
  const results: CheckResult[] = [{ category, status: "ok", detail: inForce.length ? `${inForce.length} document(s) in force: ${listed(inForce)}` : "no policy documents: defaults everywhere" }];
  if (unreadable.length) {
    results.push({ category, status: "fail", detail: `control cannot read policy: ${listed(unreadable, 3)}`, hint: "see the JetStream checks above and control's log" });
  }
  if (rejected.length) {
    results.push({ category, status: "fail", detail: `invalid revisions: ${listed(rejected)}`, hint: "mesh get KIND SERVICE shows the problems; fix and mesh apply, or mesh rollback" });
  }
  return results;
}

function securityCheck(s: Session): CheckResult {
  const category = "Security";
  if (!s.secure) return { category, status: "skip", detail: "open mode: NATS asks no key (mesh up --secure gives every process its own)" };
  const who = s.identity ? `identity '${s.identity}'` : "this client";
  if (s.permissionErrors.length === 0 && s.services) return { category, status: "ok", detail: `secure mode: ${who} has the permissions the CLI needs` };
  const lacks = s.permissionErrors.map((e) => e.replace(/^.*Permissions Violation for /i, "").replace(/"/g, "'"));
  return {
    category,
    status: "fail",
    detail: `secure mode: ${who} lacks ${lacks.length ? listed(lacks, 3) : "the right to ask control"}`,
    hint: "the CLI needs the admin key: --creds <dir>/admin.nk (a sidecar's key may use only its own subjects)",
  };
}

/**
 * Host clock against the server's: nats-server 2.10+ stamps stream info
 * (`ts`); on 2.9 the registry's last write (a heartbeat every 2 s while an
 * instance lives) bounds it.
 */
async function clockCheck(s: Session): Promise<CheckResult> {
  const category = "Clock";
  if (!s.jsm) return { category, status: "skip", detail: "clock skew: needs JetStream, not visible here" };
  const sent = Date.now();
  const info = await streamInfo(s.jsm, kvStream(bucketSpecs()[0]!.bucket)).catch(() => undefined);
  const received = Date.now();
  const stamped = (info as (StreamInfo & { ts?: string }) | undefined)?.ts;
  const bad = (skew: number, how: string): CheckResult => ({ category, status: "fail", detail: `clock skew ${how}: ${Math.round(skew)} ms`, hint: "sync the clocks (chrony, systemd-timesyncd): quota and telemetry windows assume they agree" });
  if (stamped) {
    const skew = Date.parse(stamped) - (sent + received) / 2;
    return Math.abs(skew) > MAX_CLOCK_SKEW_MS ? bad(skew, "host vs server") : { category, status: "ok", detail: `clock skew host vs server: ${Math.round(skew)} ms` };
  }
  const last = info?.state.last_ts ? Date.parse(info.state.last_ts) : NaN;
  const live = (s.services ?? []).some((x) => x.instances > 0);
  if (!live || Number.isNaN(last)) return { category, status: "skip", detail: "clock skew: nats-server before 2.10 tells its time only in writes, and no instance is writing" };
  const behind = received - last;
  if (behind < -MAX_CLOCK_SKEW_MS) return bad(-behind, "(server ahead of host)");
  if (behind > HEARTBEAT_INTERVAL_MS + MAX_CLOCK_SKEW_MS) return bad(behind - HEARTBEAT_INTERVAL_MS, "(host ahead of server, at least)");
  return { category, status: "ok", detail: `clock skew host vs server: within ${MAX_CLOCK_SKEW_MS} ms (last registry write ${behind} ms ago)` };
}
