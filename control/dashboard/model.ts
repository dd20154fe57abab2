/**
 * What the dashboard's JSON endpoints and event stream carry
 * (docs/dashboard.md): types only, shared by control and the page
 * (dashboard/src), so they import nothing that runs.
 */
import type { ControlLogsReply, PairStats, PolicyRevision } from "../../schemas/control-api.generated.ts";
import type { PolicyProblem } from "../../schemas/policy-types.generated.ts";
import type { RegistryEntry } from "../../schemas/registry.generated.ts";

export type { PolicyProblem, PolicyRevision };
export type PolicyKind = "Route" | "Authz" | "Quota";
export type AccessLogPage = Omit<ControlLogsReply, "ok">;
export type Traffic = Omit<PairStats, "source" | "destination">;

/** The series of a service, in this order in every point. Rates are per second. */
export const SERIES_FIELDS = ["rps", "successRate", "p50Ms", "p99Ms", "retries", "breakersOpen", "quotaRejected", "authzDenied"] as const;
export type SeriesField = (typeof SERIES_FIELDS)[number];

/** One service's points, oldest first: `t` in epoch seconds, each field null where there was nothing to measure. */
export type ServiceSeries = { t: number[] } & Record<SeriesField, Array<number | null>>;

export interface TopologyNode {
  service: string;
  versions: Array<{ version: string; ready: number; unready: number; draining: number }>;
  /** clusters (regions) its instances are in, when their registry entries say */
  clusters: string[];
}

export interface TopologyEdge extends Traffic {
  source: string;
  destination: string;
  /** `call`: measured traffic; `mirror`: copies a Route sends to `mirror` (its rate is not measured apart) */
  kind: "call" | "mirror";
  /** success rate under ERROR_SUCCESS_RATE */
  error: boolean;
  /** mirror edges: "v3 10%" */
  note?: string;
  /** set when telemetry says on which cluster each side is; crossCluster when they differ */
  sourceCluster?: string;
  destinationCluster?: string;
  crossCluster: boolean;
}

export interface Topology {
  at: string;
  windowSeconds: number;
  nodes: TopologyNode[];
  edges: TopologyEdge[];
}

export type InstanceView = Pick<RegistryEntry, "instance" | "version" | "state" | "host" | "startedAt" | "heartbeatAt"> & { region: string | null; ageSeconds: number };

export interface ServiceView {
  service: string;
  instances: InstanceView[];
  policies: Record<PolicyKind, PolicyRevision | null>;
  inbound: TopologyEdge[];
  outbound: TopologyEdge[];
  series: ServiceSeries | null;
  /** services the time series could not keep (HISTORY_LIMITS.services) since control started */
  droppedServices: number;
}

/** POST api/validate: what `mesh validate` would say. */
export type ValidateResult = { ok: true; documents: unknown[]; warnings: PolicyProblem[] } | { ok: false; problems: PolicyProblem[] };
