/**
 * Every JSON Schema of the contract (schemas/*.schema.json), registered once
 * with the repo's ajv so that `$ref`s between files resolve, and the one way
 * to get a document's validator. Callers ask at module load, so each
 * validator is compiled once, at load.
 */
import type { ValidateFunction } from "ajv";
import accessRecord from "./access-record.schema.json" with { type: "json" };
import authz from "./authz.schema.json" with { type: "json" };
import controlApplyReply from "./control-apply-reply.schema.json" with { type: "json" };
import controlApplyRequest from "./control-apply-request.schema.json" with { type: "json" };
import controlDeleteReply from "./control-delete-reply.schema.json" with { type: "json" };
import controlDeleteRequest from "./control-delete-request.schema.json" with { type: "json" };
import controlError from "./control-error.schema.json" with { type: "json" };
import controlGetReply from "./control-get-reply.schema.json" with { type: "json" };
import controlGetRequest from "./control-get-request.schema.json" with { type: "json" };
import controlHistoryReply from "./control-history-reply.schema.json" with { type: "json" };
import controlInfoReply from "./control-info-reply.schema.json" with { type: "json" };
import controlInfoRequest from "./control-info-request.schema.json" with { type: "json" };
import controlHistoryRequest from "./control-history-request.schema.json" with { type: "json" };
import controlKeysReply from "./control-keys-reply.schema.json" with { type: "json" };
import controlKeysRequest from "./control-keys-request.schema.json" with { type: "json" };
import controlLogsReply from "./control-logs-reply.schema.json" with { type: "json" };
import controlLogsRequest from "./control-logs-request.schema.json" with { type: "json" };
import controlQuotaReply from "./control-quota-reply.schema.json" with { type: "json" };
import controlQuotaRequest from "./control-quota-request.schema.json" with { type: "json" };
import controlRegisterReply from "./control-register-reply.schema.json" with { type: "json" };
import controlRegisterRequest from "./control-register-request.schema.json" with { type: "json" };
import controlRollbackReply from "./control-rollback-reply.schema.json" with { type: "json" };
import controlRollbackRequest from "./control-rollback-request.schema.json" with { type: "json" };
import controlServicesReply from "./control-services-reply.schema.json" with { type: "json" };
import controlServicesRequest from "./control-services-request.schema.json" with { type: "json" };
import controlStatsReply from "./control-stats-reply.schema.json" with { type: "json" };
import controlStatsRequest from "./control-stats-request.schema.json" with { type: "json" };
import controlValidateReply from "./control-validate-reply.schema.json" with { type: "json" };
import controlValidateRequest from "./control-validate-request.schema.json" with { type: "json" };
import policyProblem from "./policy-problem.schema.json" with { type: "json" };
import policyRevision from "./policy-revision.schema.json" with { type: "json" };
import quota from "./quota.schema.json" with { type: "json" };
import registryEntry from "./registry-entry.schema.json" with { type: "json" };
import route from "./route.schema.json" with { type: "json" };
import sidecarConfig from "./sidecar-config.schema.json" with { type: "json" };
import telemetryReport from "./telemetry-report.schema.json" with { type: "json" };
import { ajv } from "./validate.ts";

/** Schema name (`<name>.schema.json`) -> the schema. */
export const SCHEMAS: Readonly<Record<string, { $id: string }>> = {
  "access-record": accessRecord,
  "authz": authz,
  "control-apply-reply": controlApplyReply,
  "control-apply-request": controlApplyRequest,
  "control-delete-reply": controlDeleteReply,
  "control-delete-request": controlDeleteRequest,
  "control-error": controlError,
  "control-get-reply": controlGetReply,
  "control-get-request": controlGetRequest,
  "control-history-reply": controlHistoryReply,
  "control-history-request": controlHistoryRequest,
  "control-info-reply": controlInfoReply,
  "control-info-request": controlInfoRequest,
  "control-keys-reply": controlKeysReply,
  "control-keys-request": controlKeysRequest,
  "control-logs-reply": controlLogsReply,
  "control-logs-request": controlLogsRequest,
  "control-quota-reply": controlQuotaReply,
  "control-quota-request": controlQuotaRequest,
  "control-register-reply": controlRegisterReply,
  "control-register-request": controlRegisterRequest,
  "control-rollback-reply": controlRollbackReply,
  "control-rollback-request": controlRollbackRequest,
  "control-services-reply": controlServicesReply,
  "control-services-request": controlServicesRequest,
  "control-stats-reply": controlStatsReply,
  "control-stats-request": controlStatsRequest,
  "control-validate-reply": controlValidateReply,
  "control-validate-request": controlValidateRequest,
  "policy-problem": policyProblem,
  "policy-revision": policyRevision,
  "quota": quota,
  "registry-entry": registryEntry,
  "route": route,
  "sidecar-config": sidecarConfig,
  "telemetry-report": telemetryReport,
};

ajv.addSchema(Object.values(SCHEMAS));

/**
 * The validator of `<name>.schema.json`, compiled on its first use: a
 * process compiles only the schemas it needs (a sidecar or a CLI command
 * starts in a fraction of the time compiling all of them would take).
 */
export function validatorOf<T = unknown>(name: string): ValidateFunction<T> {
  const schema = Object.hasOwn(SCHEMAS, name) ? SCHEMAS[name] : undefined;
  if (!schema) throw new Error(`no schema ${name}.schema.json in schemas/documents.ts`);
  let compiled: ValidateFunction<T> | undefined;
  const validate = ((data: unknown) => {
    compiled ??= ajv.getSchema<T>(schema.$id)!;
    const ok = compiled(data);
    validate.errors = compiled.errors;
    return ok;
  }) as ValidateFunction<T>;
  return validate;
}
