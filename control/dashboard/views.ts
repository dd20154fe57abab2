import type { Logger } from "pino";
import type { AccessLogPage, PairStats, PolicyKind, PolicyRevision, RegistryEntry } from "../../schemas/index.ts";
import type { AccessReader } from "../access-read.ts";
import { ControlError } from "../errors.ts";
import type { PolicyStore } from "../policy-store.ts";
import type { ControlTelemetry } from "../telemetry.ts";
import { HISTORY_LIMITS, ServiceHistory } from "./history.ts";
import type { ServiceView, Topology, TopologyEdge, TopologyNode } from "./model.ts";

/**
 * What the dashboard shows, assembled from what control already has: the
 * registry and policy (KV, through control's own connection and identity),
 * merged telemetry and the time series sampled from it, access records
 * (docs/dashboard.md). Read-only: nothing here writes.
 */

/** An edge's success rate below this is an error edge (coloured and labelled). */
export const ERROR_SUCCESS_RATE = 0.95;
/** The registry and policy are read at most this often, whatever the number of viewers. */
const KV_CACHE_MS = 1_000;
/** Access records the live tail sends per page; the first page reaches back this far. */
const TAIL_LIMIT = 200;
const TAIL_LOOKBACK_MS = 60_000;

const KINDS: readonly PolicyKind[] = ["Route", "Authz", "Quota"];

export class DashboardViews {
  readonly #store: PolicyStore;
  readonly #telemetry: ControlTelemetry;
  readonly #access: AccessReader;
  readonly #history = new ServiceHistory();
  readonly #sampler: NodeJS.Timeout;
  #instances: { at: number; value: Promise<RegistryEntry[]> } | undefined;
  #routes: { at: number; value: Promise<PolicyRevision[]> } | undefined;

  constructor(store: PolicyStore, telemetry: ControlTelemetry, access: AccessReader, logger: Logger) {
    this.#store = store;
    this.#telemetry = telemetry;
    this.#access = access;
    const sample = () => {
      try {
        this.#history.record(Date.now(), telemetry.sample(HISTORY_LIMITS.windowMs));
      } catch (err) {
        logger.error({ err }, "dashboard time series not sampled");
      }
    };
    sample();
    this.#sampler = setInterval(sample, HISTORY_LIMITS.sampleMs);
    this.#sampler.unref();
  }

  stop(): void {
    clearInterval(this.#sampler);
  }

  async topology(windowSeconds: number): Promise<Topology> {
    const stats = this.#telemetry.stats({ windowSeconds });
    const [instances, routes] = await Promise.all([this.#cachedInstances(), this.#cachedRoutes()]);
    const nodes = new Map<string, TopologyNode>();
    const node = (service: string) => {
      let n = nodes.get(service);
      if (!n) nodes.set(service, (n = { service, versions: [], clusters: [] }));
      return n;
    };
    for (const e of instances) {
      const n = node(e.service);
      let v = n.versions.find((x) => x.version === e.version);
      if (!v) n.versions.push((v = { version: e.version, ready: 0, unready: 0, draining: 0 }));
      v[e.state]++;
      const cluster = regionOf(e);
      if (cluster && !n.clusters.includes(cluster)) n.clusters.push(cluster);
    }
    const readyRegions = new Map<string, Set<string>>();
    for (const e of instances) {
      const region = regionOf(e);
      if (region && e.state === "ready") (readyRegions.get(e.service) ?? readyRegions.set(e.service, new Set()).get(e.service)!).add(region);
    }
    const edges = callEdges(stats.pairs, readyRegions);
    for (const e of edges) node(e.source), node(e.destination);
    edges.push(...mirrorEdges(routes, edges));
    for (const n of nodes.values()) n.versions.sort((a, b) => a.version.localeCompare(b.version));
    const sorted = [...nodes.values()].sort((a, b) => a.service.localeCompare(b.service));
    return { at: new Date().toISOString(), windowSeconds: stats.windowSeconds, nodes: sorted, edges };
  }

  /** `topology`: the one of this window when the caller has just built it (an event-stream push sends both). */
  async service(service: string, windowSeconds: number, topology?: Topology): Promise<ServiceView> {
    const [instances, traffic, policies] = await Promise.all([this.#cachedInstances(), topology ?? this.topology(windowSeconds), this.#policies(service)]);
    const now = Date.now();
    return {
      service,
      instances: instances
        .filter((e) => e.service === service)
        .sort((a, b) => a.version.localeCompare(b.version) || a.instance.localeCompare(b.instance))
        .map((e) => ({
          instance: e.instance,
          version: e.version,
          state: e.state,
          host: e.host,
          startedAt: e.startedAt,
          heartbeatAt: e.heartbeatAt,
          region: regionOf(e) ?? null,
          ageSeconds: Math.max(0, Math.round((now - Date.parse(e.startedAt)) / 1000)) || 0,
        })),
      policies,
      inbound: traffic.edges.filter((e) => e.destination === service),
      outbound: traffic.edges.filter((e) => e.source === service),
      series: this.#history.series(service) ?? null,
      droppedServices: this.#history.droppedServices,
    };
  }

  /** A policy's revisions, oldest first; none when it never had one. */
  async history(kind: PolicyKind, service: string): Promise<PolicyRevision[]> {
    return this.#store.history({ kind, service }).then((r) => r.entries, orNone([]));
  }

  /** The live tail: the next page of calls to `service` after `afterSeq`, or the last few minutes' first page. */
  logs(service: string, afterSeq: number | undefined): Promise<AccessLogPage> {
    const from = afterSeq === undefined ? { since: Date.now() - TAIL_LOOKBACK_MS } : { afterSeq };
    return this.#access.logs({ service, limit: TAIL_LIMIT, ...from });
  }

  validate(text: string) {
    return this.#store.validateText(text);
  }

  async #policies(service: string): Promise<Record<PolicyKind, PolicyRevision | null>> {
    const read = (kind: PolicyKind) => this.#store.get({ kind, service }).then((r) => r.items[0] ?? null, orNone(null));
    const [Route, Authz, Quota] = await Promise.all(KINDS.map(read));
    return { Route: Route ?? null, Authz: Authz ?? null, Quota: Quota ?? null };
  }

  #cachedInstances(): Promise<RegistryEntry[]> {
    const now = Date.now();
    if (!this.#instances || now - this.#instances.at > KV_CACHE_MS) {
      const value = this.#store.instances();
      value.catch(() => (this.#instances = undefined));
      this.#instances = { at: now, value };
    }
    return this.#instances.value;
  }

  #cachedRoutes(): Promise<PolicyRevision[]> {
    const now = Date.now();
    if (!this.#routes || now - this.#routes.at > KV_CACHE_MS) {
      const value = this.#store.get({ kind: "Route" }).then((r) => r.items);
      value.catch(() => (this.#routes = undefined));
      this.#routes = { at: now, value };
    }
    return this.#routes.value;
  }
}

/** A rejection handler: `none` for control's not_found, anything else rethrown. */
function orNone<T>(none: T): (err: unknown) => T {
  return (err) => {
    if (err instanceof ControlError && err.code === "not_found") return none;
    throw err;
  };
}

/** A registry entry's region or cluster, once entries carry one (they may not yet: then undefined). */
function regionOf(entry: RegistryEntry): string | undefined {
  const e = entry as RegistryEntry & { region?: unknown; cluster?: unknown };
  const value = e.region ?? e.cluster;
  return typeof value === "string" && value ? value : undefined;
}

/**
 * One edge per caller and callee. Telemetry keeps a pair per callers'
 * cluster (docs/multi-region.md); those rows are summed here. A call crosses
 * clusters when its callers' cluster has no ready instance of the callee:
 * queue groups and p2c-ewma both stay in the caller's cluster while one is
 * ready there, so the callee's ready regions from the registry say where the
 * calls went.
 */
export function callEdges(pairs: readonly PairStats[], readyRegions: ReadonlyMap<string, ReadonlySet<string>>): TopologyEdge[] {
  const byPair = new Map<string, PairStats[]>();
  for (const p of pairs) {
    const key = `${p.source}\u0001${p.destination}`;
    (byPair.get(key) ?? byPair.set(key, []).get(key)!).push(p);
  }
  return [...byPair.values()].map((rows) => {
    const first = rows[0]!;
    const requests = rows.reduce((n, r) => n + r.requests, 0);
    const weighted = (f: (r: PairStats) => number | null) => {
      const known = rows.filter((r) => f(r) !== null);
      const n = known.reduce((sum, r) => sum + r.requests, 0);
      return n === 0 ? null : known.reduce((sum, r) => sum + f(r)! * r.requests, 0) / n;
    };
    const p99s = rows.map((r) => r.p99Ms).filter((v): v is number => v !== null);
    const merged: PairStats = {
      source: first.source,
      destination: first.destination,
      requests,
      rps: rows.reduce((n, r) => n + r.rps, 0),
      successRate: weighted((r) => r.successRate),
      p50Ms: weighted((r) => r.p50Ms),
      p99Ms: p99s.length ? Math.max(...p99s) : null,
    };
    const ready = readyRegions.get(first.destination);
    const crossing = rows.flatMap((r) => (r.cluster && ready && ready.size > 0 && !ready.has(r.cluster) ? [r.cluster] : []));
    const destinationCluster = crossing.length ? [...ready!].sort().join(",") : undefined;
    return {
      ...merged,
      kind: "call" as const,
      error: merged.successRate !== null && merged.successRate < ERROR_SUCCESS_RATE,
      ...(crossing.length ? { sourceCluster: crossing.join(","), destinationCluster } : {}),
      crossCluster: crossing.length > 0,
    };
  });
}

/** Each caller of a service whose Route mirrors: an edge per mirror target, labelled with its version and share. */
function mirrorEdges(routes: readonly PolicyRevision[], calls: readonly TopologyEdge[]): TopologyEdge[] {
  const out: TopologyEdge[] = [];
  for (const route of routes) {
    const rules = (route.document as { rules?: Array<{ mirror?: { version: string; percent?: number } }> } | undefined)?.rules ?? [];
    const mirrors = rules.flatMap((r) => (r.mirror ? [r.mirror] : []));
    if (mirrors.length === 0) continue;
    const note = mirrors.map((m) => `${m.version} ${m.percent ?? 100}%`).join(", ");
    for (const call of calls.filter((c) => c.destination === route.service)) {
      out.push({ source: call.source, destination: call.destination, requests: 0, rps: 0, successRate: null, p50Ms: null, p99Ms: null, kind: "mirror", error: false, note, crossCluster: false });
    }
  }
  return out;
}
