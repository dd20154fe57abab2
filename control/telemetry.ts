import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { Counter, Gauge, type Registry } from "prom-client";
import {
  BREAKER_STATES,
  DURATION_BUCKETS_SECONDS,
  MESH_METRICS,
  TELEMETRY_COUNTERS,
  TELEMETRY_PREFIX,
  parseTelemetryReport,
  type ControlRequests,
  type MeshStats,
  type MetricSpec,
  type NamedRow,
  type PairStats,
  type TelemetryCounterName,
  type TelemetryReport,
} from "../schemas/index.ts";
import { MergedFamily, rebinner, type FamilyOptions } from "./merged-metrics.ts";
import { TELEMETRY_LIMITS, namedRowOwner, reportMatchesSubject, requestRowOwner, type RowRejection } from "./telemetry-limits.ts";
import { RecentTraffic } from "./recent-traffic.ts";
import { startLease, type Lease } from "./telemetry-lease.ts";
import { atMost } from "../runtime/lifecycle.ts";

/** label of merged request series naming the reporting sidecar's region */
const CLUSTER_LABEL = "cluster";
/** distinct cluster label values; more become OVERFLOW_CLUSTER (a supercluster has a handful) */
const MAX_CLUSTERS = 100;
const OVERFLOW_CLUSTER = "_other";
/** An instance's gauges count while it reported within this many of its intervals. */
const GAUGE_STALE_INTERVALS = 3;
/** Dedupe state of an instance silent this long is forgotten. */
const FORGET_INSTANCE_MS = 10 * 60_000;

export interface ControlTelemetryOptions {
  nc: NatsConnection;
  logger: Logger;
  registry: Registry;
  /** this replica's name in the telemetry lease */
  holder: string;
  now?: () => number;
}

export interface ControlTelemetry {
  /** true while this replica exposes the mesh-wide metrics */
  leader(): boolean;
  /** what the `stats` control verb answers; without `windowSeconds`, the last RECENT_DEFAULT_WINDOW_MS */
  stats(req: ControlRequests["stats"]): MeshStats;
  /** Per called service: its traffic over the last `windowMs` and running totals, for the dashboard (docs/dashboard.md). */
  sample(windowMs: number): Map<string, ServiceSample>;
  stop(): Promise<void>;
}

/** One service as the dashboard samples it: calls to it over a window, totals since this replica started, breakers now. */
export interface ServiceSample {
  traffic?: Omit<PairStats, "source" | "destination">;
  /** retries callers made towards it */
  retries: number;
  /** authz denials and quota rejections by its own sidecars */
  authzDenied: number;
  quotaRejected: number;
  /** calling sidecar instances whose breaker towards it is open or half-open, as last reported */
  breakersOpen: number;
}

interface InstanceState {
  boot: string;
  seq: number;
  seenAt: number;
  intervalMs: number;
  /** key -> [name, labels, value] */
  gauges: Map<string, NamedRow>;
  /** series this instance created in the merged families (TELEMETRY_LIMITS.seriesPerInstance) */
  created: number;
}

/** Help texts of the merged families of the catalog's counters. */
const COUNTER_HELP: Record<TelemetryCounterName, string> = {
  retries: "Retries made by calling sidecars, by caller and callee",
  authz: "Authorization decisions by provider sidecars (allow, deny), by service and caller",
  quota: "Quota decisions by provider sidecars (allowed, denied, unavailable_allowed, unavailable_denied), by service and caller",
  stream_bytes: "Body bytes of calls whose body streamed, as calling sidecars moved them: flow request (sent) or response (received)",
};

/**
 * Merges every sidecar's telemetry deltas into mesh-wide metrics on control's
 * registry and keeps the last minute per service pair for `mesh top`.
 */
export async function startTelemetry(opts: ControlTelemetryOptions): Promise<ControlTelemetry> {
  const telemetry = new MeshTelemetry(opts);
  await telemetry.start();
  return telemetry;
}

class MeshTelemetry implements ControlTelemetry {
  readonly #opts: ControlTelemetryOptions;
  readonly #now: () => number;
  readonly #instances = new Map<string, InstanceState>();
  readonly #recent: RecentTraffic;
  readonly #rebinners = new Map<string, (counts: readonly number[]) => number[]>();
  readonly #reports: Counter<"outcome">;
  readonly #lost: Counter;
  readonly #rejected: Counter<"reason">;
  readonly #leaderGauge: Gauge;
  readonly #requests: MergedFamily;
  /** cluster label values seen, at most MAX_CLUSTERS */
  readonly #clusters = new Set<string>();
  readonly #duration: MergedFamily;
  readonly #counters: Record<string, MergedFamily>;
  #lease: Lease | undefined;
  #sub: Subscription | undefined;
  #sweep: NodeJS.Timeout | undefined;

  constructor(opts: ControlTelemetryOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    this.#recent = new RecentTraffic(this.#now);
    const registers = [opts.registry];
    this.#reports = new Counter({ name: "mesh_telemetry_reports_total", help: "Telemetry reports received by this control replica, by outcome", labelNames: ["outcome"], registers });
    this.#lost = new Counter({ name: "mesh_telemetry_reports_lost_total", help: "Telemetry reports this replica never received (gaps in sidecars' sequence numbers)", registers });
    this.#rejected = new Counter({
      name: "mesh_telemetry_rows_rejected_total",
      help: "Telemetry rows this replica did not merge: not about the reporting service (not_own_service), or over a limit (report_limit, instance_limit, family_limit, gauge_limit)",
      labelNames: ["reason"],
      registers,
    });
    this.#leaderGauge = new Gauge({ name: "mesh_control_telemetry_leader", help: "1 on the control replica that exposes the mesh-wide metrics", registers });
    const visible = () => this.leader();
    const family = (metric: MetricSpec, help: string, collect?: FamilyOptions["collect"], optionalLabels?: string[]) =>
      new MergedFamily({ metric, help, visible, ...(collect ? { collect } : {}), ...(optionalLabels ? { optionalLabels } : {}) }).register(opts.registry);
    // Merged request series also say which region (NATS cluster) the reporting sidecar is in (docs/multi-region.md).
    const withCluster = (m: MetricSpec): MetricSpec => ({ ...m, labels: [...m.labels, CLUSTER_LABEL] });
    const help = "Requests through the mesh as each sidecar saw them, by direction, caller, callee, version, method, status or mesh error code, and the sidecar's cluster";
    this.#requests = family(withCluster(MESH_METRICS.requests), help, undefined, [CLUSTER_LABEL]);
    this.#duration = family(withCluster(MESH_METRICS.requestDuration), "Time from a sidecar receiving a request to it answering", undefined, [CLUSTER_LABEL]);
    this.#counters = Object.fromEntries(
      Object.entries(TELEMETRY_COUNTERS).map(([key, metric]) => [key, family(metric, COUNTER_HELP[key as TelemetryCounterName])]),
    );
    family(
      MESH_METRICS.circuitBreakers,
      "Calling sidecar instances whose circuit breaker for a destination version is in each state, as last reported",
      (f) => collectBreakers(f, this.#instances, this.#now()),
    );
  }

  async start(): Promise<void> {
    const { nc, logger } = this.#opts;
    this.#sub = nc.subscribe(`${TELEMETRY_PREFIX}.>`, {
      callback: (err, msg) => {
        if (err) logger.error({ err }, "telemetry subscription failed");
        else this.#onMessage(msg.subject, msg.data);
      },
    });
    this.#sweep = setInterval(() => forgetSilent(this.#instances, this.#now()), 60_000);
    this.#sweep.unref();
    this.#lease = await startLease(nc, this.#opts.holder, logger, (held) => this.#leaderGauge.set(held ? 1 : 0));
    this.#leaderGauge.set(this.#lease.held() ? 1 : 0);
    await nc.flush();
  }

  leader(): boolean {
    return this.#lease?.held() ?? false;
  }

  stats(req: ControlRequests["stats"]): MeshStats {
    return this.#recent.stats(req.windowSeconds === undefined ? undefined : req.windowSeconds * 1000, req.service);
  }

  sample(windowMs: number): Map<string, ServiceSample> {
    const out = new Map<string, ServiceSample>();
    const of = (service: string) => {
      let s = out.get(service);
      if (!s) out.set(service, (s = { retries: 0, authzDenied: 0, quotaRejected: 0, breakersOpen: 0 }));
      return s;
    };
    for (const [service, traffic] of this.#recent.destinations(windowMs)) of(service).traffic = traffic;
    for (const [labels, value] of this.#counters.retries!.entries()) of(labels.destination!).retries += value;
    for (const [labels, value] of this.#counters.authz!.entries()) if (labels.decision === "deny") of(labels.service!).authzDenied += value;
    for (const [labels, value] of this.#counters.quota!.entries()) if (QUOTA_REJECTIONS.has(labels.decision!)) of(labels.service!).quotaRejected += value;
    for (const [labels, n] of breakerCounts(this.#instances, this.#now())) if (labels[3] !== "closed") of(labels[1]!).breakersOpen += n;
    return out;
  }

  async stop(): Promise<void> {
    clearInterval(this.#sweep);
    if (this.#sub) await atMost(this.#sub.drain());
    if (this.#lease) await atMost(this.#lease.stop());
  }

  #onMessage(subject: string, data: Uint8Array): void {
    let report: TelemetryReport | undefined;
    try {
      report = parseTelemetryReport(JSON.parse(new TextDecoder().decode(data)));
    } catch {
      report = undefined;
    }
    // The subject is what secure mode binds to credentials: a report speaks only for the instance it names.
    const outcome = !report ? "malformed" : !reportMatchesSubject(report, subject) ? "wrong_subject" : this.#accept(report);
    this.#reports.inc({ outcome });
  }

  /** Dedupes by boot and sequence number, merges, and remembers the instance's gauges. */
  #accept(r: TelemetryReport): string {
    const key = `${r.service}.${r.instance}`;
    const prev = this.#instances.get(key);
    if (!prev && this.#instances.size >= TELEMETRY_LIMITS.instances) return "instance_limit";
    const sameBoot = prev !== undefined && prev.boot === r.boot;
    if (sameBoot && r.seq <= prev.seq) return "duplicate";
    if (sameBoot && r.seq > prev.seq + 1) this.#lost.inc(r.seq - prev.seq - 1);
    const state: InstanceState = sameBoot ? prev : { boot: r.boot, seq: 0, seenAt: 0, intervalMs: r.intervalMs, gauges: new Map(), created: prev?.created ?? 0 };
    this.#merge(r, state);
    if (r.final) {
      this.#instances.delete(key);
      return "accepted";
    }
    state.seq = r.seq;
    state.seenAt = this.#now();
    state.intervalMs = r.intervalMs;
    this.#instances.set(key, state);
    return "accepted";
  }

  #merge(r: TelemetryReport, state: InstanceState): void {
    const toControl = this.#rebinner(r.le);
    let budget: number = TELEMETRY_LIMITS.rowsPerReport;
    const cluster = this.#clusterLabel(r.region);
    for (const row of r.requests) {
      const labels = [...(row.slice(0, 6) as string[]), cluster];
      const rejected = budget-- <= 0 ? "report_limit" : requestRowOwner(row) !== r.service ? "not_own_service" : this.#admitSeries(this.#requests, labels, state);
      if (rejected) {
        this.#reject(rejected);
        continue;
      }
      const counts = toControl(row[8]);
      this.#requests.add(labels, row[6]);
      this.#duration.add(labels, row[7], counts);
      if (row[0] === "outbound") this.#recent.add(row[1], row[2], row[5], row[6], counts, cluster);
    }
    for (const row of r.counters) {
      const family = this.#counters[row[0]];
      if (!family) continue;
      const rejected = budget-- <= 0 ? "report_limit" : namedRowOwner(row) !== r.service ? "not_own_service" : this.#admitSeries(family, row[1], state);
      if (rejected) this.#reject(rejected);
      else {
        family.add(row[1], row[2]);
        if (row[0] === "stream_bytes") this.#recent.addStreamBytes(row[1][0]!, row[1][1]!, row[2], cluster);
      }
    }
    for (const g of r.gauges) {
      const key = `${g[0]}\u0001${g[1].join("\u0001")}`;
      const rejected = budget-- <= 0 ? "report_limit" : namedRowOwner(g) !== r.service ? "not_own_service" : !state.gauges.has(key) && state.gauges.size >= TELEMETRY_LIMITS.gaugesPerInstance ? "gauge_limit" : undefined;
      if (rejected) this.#reject(rejected);
      else state.gauges.set(key, g);
    }
  }

  /** The `cluster` label of a report: its region, "" for none, `_other` beyond MAX_CLUSTERS distinct ones. */
  #clusterLabel(region: string | undefined): string {
    if (region === undefined) return "";
    if (this.#clusters.has(region) || this.#clusters.size < MAX_CLUSTERS) {
      this.#clusters.add(region);
      return region;
    }
    return OVERFLOW_CLUSTER;
  }

  /** Undefined when `labels` is a series already, or one this instance may still create (counted); else why not. */
  #admitSeries(family: MergedFamily, labels: readonly string[], state: InstanceState): RowRejection | undefined {
    if (family.has(labels)) return undefined;
    if (state.created >= TELEMETRY_LIMITS.seriesPerInstance) return "instance_limit";
    if (family.size >= TELEMETRY_LIMITS.seriesPerFamily) return "family_limit";
    state.created++;
    return undefined;
  }

  #reject(reason: RowRejection): void {
    this.#rejected.inc({ reason });
  }

  #rebinner(le: number[]): (counts: readonly number[]) => number[] {
    const key = le.join(",");
    let f = this.#rebinners.get(key);
    if (!f) this.#rebinners.set(key, (f = rebinner(le, DURATION_BUCKETS_SECONDS)));
    return f;
  }
}

/** Quota decisions that turned a request away. */
const QUOTA_REJECTIONS: ReadonlySet<string> = new Set(["denied", "unavailable_denied"]);

/** Recomputes the breaker gauge: instances per state, from fresh reports only. */
function collectBreakers(family: MergedFamily, instances: Map<string, InstanceState>, now: number): void {
  family.clear();
  for (const [labels, n] of breakerCounts(instances, now)) family.set(labels, n);
}

/** Calling instances per (source, destination, version, state), from fresh reports only. */
function breakerCounts(instances: Map<string, InstanceState>, now: number): Array<[string[], number]> {
  const totals = new Map<string, { labels: string[]; n: number }>();
  for (const inst of instances.values()) {
    if (now - inst.seenAt > inst.intervalMs * GAUGE_STALE_INTERVALS + 1_000) continue;
    for (const [name, labels, value] of inst.gauges.values()) {
      if (name !== "breaker_state") continue;
      const full = [...labels, BREAKER_STATES[value] ?? "unknown"];
      const key = full.join("\u0001");
      const t = totals.get(key);
      if (t) t.n++;
      else totals.set(key, { labels: full, n: 1 });
    }
  }
  return [...totals.values()].map(({ labels, n }) => [labels, n]);
}

function forgetSilent(instances: Map<string, InstanceState>, now: number): void {
  for (const [key, inst] of instances) if (now - inst.seenAt > FORGET_INSTANCE_MS) instances.delete(key);
}
