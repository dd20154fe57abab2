/**
 * Requests and replies of the control service on `mesh.ctl.v1.<verb>`
 * (JSON both ways). Served in queue group `mesh-control`, so any number of
 * control replicas share the load; every reply is either `{ ok: true, ... }`
 * or `{ ok: false, error }`.
 */
import type { PolicyKind, PolicyProblem } from "./policy.ts";
import type { QuotaPer } from "./quota.ts";
import type { RegisterRequest } from "./registry.ts";
import type { AccessRecord } from "./telemetry.ts";

export const CONTROL_QUEUE = "mesh-control";

export type ControlVerb = "apply" | "validate" | "get" | "delete" | "history" | "rollback" | "services" | "quota" | "register" | "stats" | "logs";

export interface ControlErrorBody {
  /** stable: rejected (invalid input, exit 1), not_found, conflict, internal, overloaded (queue full: try again; a sidecar treats it as control unavailable) */
  code: "rejected" | "not_found" | "conflict" | "bad_request" | "internal" | "overloaded";
  message: string;
  problems?: PolicyProblem[];
}

export type ControlReply<T> = ({ ok: true } & T) | { ok: false; error: ControlErrorBody };

/** One stored revision of a policy document. */
export interface PolicyRevision {
  kind: PolicyKind;
  service: string;
  revision: number;
  /** ISO time the revision was written */
  created: string;
  operation: "PUT" | "DEL" | "PURGE";
  /** absent for deletions; may be invalid if written straight into KV */
  document?: unknown;
  /**
   * `get` only: a newer revision that fails validation, which sidecars do
   * not apply. This revision is the one in force; with `noneValid` there is
   * none and the item is the rejected revision itself.
   */
  rejected?: { revision: number; created: string; problems: string[] };
  /** `get` only: no revision since the last deletion is valid, so sidecars use defaults (for Authz: deny every caller) */
  noneValid?: boolean;
}

export interface ControlRequests {
  /** documents are parsed JSON values; control validates them again */
  apply: { documents: unknown[] };
  validate: { documents: unknown[] };
  get: { kind: PolicyKind; service?: string };
  delete: { kind: PolicyKind; service: string };
  history: { kind: PolicyKind; service: string };
  /** absent `to`: the last valid revision before the current one */
  rollback: { kind: PolicyKind; service: string; to?: number };
  services: Record<string, never>;
  quota: QuotaLeaseRequest;
  /** on `mesh.ctl.v1.register.<service>` only (registerSubject) */
  register: RegisterRequest;
  /** mesh traffic of the last `windowSeconds` (default 30, at most 60); with `service`, only pairs it is part of */
  stats: { windowSeconds?: number; service?: string };
  /**
   * Access records from stream MESH_ACCESS: calls to `service` and/or made by
   * `from` (absent: any), received at or after `since` (epoch ms), stored
   * after stream sequence `afterSeq` (absent: from `since`), at most `limit`
   * (default 1000, at most 5000) records, rounded up to whole stored batches.
   */
  logs: { service?: string; from?: string; since?: number; afterSeq?: number; limit?: number };
}

/**
 * On `mesh.ctl.v1.quota.<service>` (quotaLeaseSubject), never on
 * `mesh.ctl.v1.quota`: a provider sidecar asks for permits of one quota counter, to spend
 * locally during `window`, and/or gives back permits it will not spend.
 * Control adds the grant and subtracts the release in one revision-checked
 * KV update.
 */
export interface QuotaLeaseRequest {
  /** the provider service whose quota this is */
  service: string;
  /** the calling service; each caller has its own counter, even under a glob */
  caller: string;
  per: QuotaPer;
  /** window index by the provider's clock: floor(epoch ms / window ms) */
  window: number;
  /** the limit for this caller and window, from the Quota document the provider follows */
  limit: number;
  /** permits wanted; 0 = only release. Control may grant fewer. */
  want: number;
  /** unspent permits of this window given back; absent = 0 */
  release?: number;
}

export interface ServiceSummary {
  service: string;
  version: string;
  instances: number;
  ready: number;
  /** out of the queue groups while the application does not answer */
  unready: number;
  draining: number;
  /** instance names */
  names: string[];
}

export interface ControlReplies {
  apply: { applied: Array<{ kind: PolicyKind; service: string; revision: number }>; warnings: PolicyProblem[] };
  validate: { warnings: PolicyProblem[] };
  get: { items: PolicyRevision[] };
  delete: { revision: number };
  history: { entries: PolicyRevision[] };
  rollback: { restored: number; revision: number };
  services: { services: ServiceSummary[] };
  quota: QuotaLeaseReply;
  register: { revision: number };
  stats: MeshStats;
  logs: AccessLogPage;
}

/** One page of the `logs` verb. */
export interface AccessLogPage {
  /** valid records whose subject agrees with them, in time order, each with the stream sequence of the batch it came in */
  records: Array<{ seq: number; record: AccessRecord }>;
  /** stream sequence of the last batch read: ask again with `afterSeq` = this for what follows */
  lastSeq: number;
  /** true when more batches were waiting than this page read */
  more: boolean;
}

/** Traffic from one service to another, as the callers' sidecars saw it. */
export interface PairStats {
  source: string;
  destination: string;
  /** requests answered in the window */
  requests: number;
  /** requests per second over the window */
  rps: number;
  /** share of requests not answered with a 5xx (the mesh's own errors included); null without requests */
  successRate: number | null;
  /** latency percentiles in milliseconds, estimated from the histogram; null without requests */
  p50Ms: number | null;
  p99Ms: number | null;
}

export interface MeshStats {
  /** seconds the figures cover: the window asked for, or less when this control replica has not run that long */
  windowSeconds: number;
  pairs: PairStats[];
}

export interface QuotaLeaseReply {
  /** permits granted, valid only during the requested window; 0 = the window's limit is used up */
  granted: number;
  /** permits of the window no instance holds yet, after this grant */
  remaining: number;
}
