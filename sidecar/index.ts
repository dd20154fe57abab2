// What other parts (tests, bench, embedders) may use of the sidecar.
export { runSidecar, startSidecar, type Sidecar, type SidecarDeps } from "./sidecar.ts";
export { MeshError } from "./errors.ts";
export { resolveTarget, type Target } from "./outbound/target.ts";
export { childSpan, childTraceparent, type Span } from "./observability/trace.ts";
export { createMetrics, type SidecarMetrics } from "./observability/metrics.ts";
export { compileRoute, type CompiledRoute } from "./policy/routing.ts";
export { compileAuthz, type AuthzDecider } from "./policy/authz.ts";
export { KvFollower, type AppliedValue } from "./policy/kv-follower.ts";
export { KvReader } from "./policy/kv-reader.ts";
export type { RequestRecord, RequestObserver } from "./observability/request-record.ts";
