/**
 * Requests and replies of the control service on `mesh.ctl.v1.<verb>`
 * (JSON both ways), one schema each: `control-<verb>-request.schema.json`
 * and `control-<verb>-reply.schema.json`, and `control-error.schema.json`
 * for a refusal. Served in queue group `mesh-control`, so any number of
 * control replicas share the load; every reply is either `{ ok: true, ... }`
 * or `{ ok: false, error }`. Control validates every request before its
 * handler runs; clients validate every reply.
 */
import type * as G from "./control-api.generated.ts";
import { validatorOf } from "./documents.ts";
import { check, type Checked } from "./validate.ts";

export type * from "./control-api.generated.ts";

export const CONTROL_QUEUE = "mesh-control";

export const CONTROL_VERBS = ["apply", "validate", "get", "delete", "history", "rollback", "services", "quota", "register", "stats", "logs", "info", "keys"] as const;

export type ControlVerb = (typeof CONTROL_VERBS)[number];

/** A reply without its `ok`: what a handler returns, control adds `ok: true`. */
type Body<T> = Omit<T, "ok">;

/** What a client sends per verb: fields with a schema default may be left out. */
export interface ControlRequests {
  apply: G.ControlApplyRequest;
  validate: G.ControlValidateRequest;
  get: G.ControlGetRequest;
  delete: G.ControlDeleteRequest;
  history: G.ControlHistoryRequest;
  rollback: G.ControlRollbackRequest;
  services: G.ControlServicesRequest;
  /** on `mesh.ctl.v1.quota.<service>` only (quotaLeaseSubject) */
  quota: G.ControlQuotaRequestInput;
  /** on `mesh.ctl.v1.register.<service>` only (registerSubject) */
  register: G.ControlRegisterRequest;
  stats: G.ControlStatsRequestInput;
  logs: G.ControlLogsRequestInput;
  info: G.ControlInfoRequest;
  /** on `mesh.ctl.v1.keys.<service>` only (keysSubject) */
  keys: G.ControlKeysRequestInput;
}

/** What a verb's handler receives: the request validated, defaults applied. */
export interface ValidControlRequests extends Omit<ControlRequests, "quota" | "stats" | "logs" | "keys"> {
  quota: G.ControlQuotaRequest;
  stats: G.ControlStatsRequest;
  logs: G.ControlLogsRequest;
  keys: G.ControlKeysRequest;
}

/** What each verb answers besides `ok: true`. */
export interface ControlReplies {
  apply: Body<G.ControlApplyReply>;
  validate: Body<G.ControlValidateReply>;
  get: Body<G.ControlGetReply>;
  delete: Body<G.ControlDeleteReply>;
  history: Body<G.ControlHistoryReply>;
  rollback: Body<G.ControlRollbackReply>;
  services: Body<G.ControlServicesReply>;
  quota: QuotaLeaseReply;
  register: Body<G.ControlRegisterReply>;
  stats: MeshStats;
  logs: AccessLogPage;
  info: Body<G.ControlInfoReply>;
  keys: BucketKeysPage;
}

export type ControlReply<T> = ({ ok: true } & T) | G.ControlErrorReply;

/** A provider sidecar's quota lease, as it writes it (`release` may be left out). */
export type QuotaLeaseRequest = G.ControlQuotaRequestInput;
export type QuotaLeaseReply = Body<G.ControlQuotaReply>;
/** What the `stats` verb answers (mesh top). */
export type MeshStats = Body<G.ControlStatsReply>;
/** One page of the `logs` verb. */
export type AccessLogPage = Body<G.ControlLogsReply>;
/** One page of the `keys` verb: a bucket's keys as control sees them. */
export type BucketKeysPage = Body<G.ControlKeysReply>;

/** Compiled once, at load. */
const REQUEST_VALIDATORS = Object.fromEntries(CONTROL_VERBS.map((v) => [v, validatorOf(`control-${v}-request`)]));
const REPLY_VALIDATORS = Object.fromEntries(CONTROL_VERBS.map((v) => [v, validatorOf(`control-${v}-reply`)]));
const validateError = validatorOf("control-error");

/** A request body as control receives it (already parsed JSON): validated in place, defaults applied. */
export function checkControlRequest<V extends ControlVerb>(verb: V, body: unknown): Checked<ValidControlRequests[V]> {
  return check<ValidControlRequests[V]>(REQUEST_VALIDATORS[verb]!, body);
}

/** A reply as a client receives it (already parsed JSON): the verb's `{ok: true}` reply, or a refusal; else what is wrong with it. */
export function checkControlReply<V extends ControlVerb>(verb: V, value: unknown): Checked<ControlReply<ControlReplies[V]>> {
  const refusal = value !== null && typeof value === "object" && (value as { ok?: unknown }).ok === false;
  return check<ControlReply<ControlReplies[V]>>(refusal ? validateError : REPLY_VALIDATORS[verb]!, value);
}
