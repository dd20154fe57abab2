export { startSidecar, type Sidecar, type SidecarDeps } from "./sidecar.ts";
export { MeshError } from "./errors.ts";
export { resolveTarget, type Target } from "./target.ts";
export { childTraceparent } from "./trace.ts";
export { createMetrics, type SidecarMetrics } from "./metrics.ts";
