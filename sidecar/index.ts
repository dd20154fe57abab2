// What other parts (tests, bench, embedders) may use of the sidecar.
export { startSidecar, type Sidecar, type SidecarDeps } from "./sidecar.ts";
export { MeshError } from "./errors.ts";
export { resolveTarget, type Target } from "./target.ts";
export { childSpan, childTraceparent, type Span } from "./trace.ts";
export { createMetrics, type SidecarMetrics } from "./metrics.ts";
export { compileRoute, type CompiledRoute } from "./routing.ts";
export { compileAuthz, type AuthzDecider } from "./authz.ts";
export { KvFollower, type AppliedValue } from "./kv-follower.ts";
export { KvReader } from "./kv-reader.ts";
export type { RequestRecord, RequestObserver } from "./request-record.ts";
