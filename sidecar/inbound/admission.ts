import { MeshError } from "../errors.ts";
import type { InboundGate } from "./adapter.ts";
import type { SidecarMetrics } from "../observability/metrics.ts";
import type { SidecarPolicies } from "../policy/policies.ts";
import { rateLimitHeaders, type AdmitDecision, type QuotaGate } from "./quota-gate.ts";

/**
 * A provider's admission of each request before its application sees it:
 * authorization first (403 forbidden), then the mesh-wide quota (429
 * quota_exceeded with Retry-After and RateLimit-* headers).
 */
export function createAdmission(opts: { service: string; policies: SidecarPolicies; quota: QuotaGate; metrics: SidecarMetrics }): InboundGate {
  const { service, policies, quota, metrics } = opts;
  const verdict = (caller: string, d: AdmitDecision) => {
    if (d.allowed) return d.headers ? { extraHeaders: rateLimitHeaders(d) } : undefined;
    const error = new MeshError("quota_exceeded", `'${caller}' is over its quota for '${service}'`, { extraHeaders: rateLimitHeaders(d) });
    return { error };
  };
  return (caller, method, path) => {
    const authorize = policies.authz.get(service);
    if (authorize) {
      const decision = authorize(caller, method, path);
      metrics.authz(service, caller, decision);
      if (decision === "deny") return { error: forbidden(caller, service, method, path) };
    }
    const admitted = quota.admit(caller);
    return admitted instanceof Promise ? admitted.then((d) => verdict(caller, d)) : verdict(caller, admitted);
  };
}

export function forbidden(caller: string, service: string, method: string, path: string): MeshError {
  return new MeshError("forbidden", `'${caller}' may not ${method} ${path} on '${service}'`);
}
