// The grown mesh of `npm run bench:scale` (docs/scale.md): N Route and N
// Authz documents for services the bench never calls, and registry entries
// for their instances. Shared with test/scale.test.ts, which checks that a
// file this size is applied whole (or not at all) and reaches a sidecar.
import type { AuthzPolicy, RegisterRequest, RoutePolicy } from "../schemas/index.ts";

/** `svc-0007`: one service name per index, sorted as numbers sort */
export function scaleService(i: number): string {
  return `svc-${String(i).padStart(4, "0")}`;
}

/** every this many routes asks for p2c-ewma, so a sidecar follows the registry (docs/architecture.md §6) */
const P2C_EVERY = 10;

/** A Route with the parts a real one has: timeout, retries, a breaker, a header rule and a weighted split. */
export function scaleRoute(i: number): RoutePolicy {
  return {
    kind: "Route",
    service: scaleService(i),
    timeoutMs: 2_000 + i,
    ...(i % P2C_EVERY === 0 ? { loadBalancer: "p2c-ewma" as const } : {}),
    retries: { attempts: 2, on: ["unavailable", "timeout"] },
    rules: [
      { match: { headers: { "x-canary": "true" } }, backends: [{ version: "v2" }] },
      { backends: [{ version: "v1", weight: 90 }, { version: "v2", weight: 10 }] },
    ],
  } as RoutePolicy;
}

/** An Authz allowing a few callers, one of them by glob, on some paths. */
export function scaleAuthz(i: number): AuthzPolicy {
  return {
    kind: "Authz",
    service: scaleService(i),
    default: "deny",
    rules: [
      { from: [scaleService((i + 1) % 10_000), "loadgen"], methods: ["GET", "POST"], paths: ["/api/**"] },
      { from: ["admin-*"] },
    ],
  } as AuthzPolicy;
}

export function scaleDocuments(n: number): Array<RoutePolicy | AuthzPolicy> {
  return [...Array.from({ length: n }, (_, i) => scaleRoute(i)), ...Array.from({ length: n }, (_, i) => scaleAuthz(i))];
}

/** The heartbeat body of instance `j` of `scaleService(i)`, as a provider sidecar sends it. */
export function scaleHeartbeat(i: number, j: number): RegisterRequest {
  const now = new Date().toISOString();
  return {
    entry: {
      service: scaleService(i),
      version: j % 2 === 0 ? "v1" : "v2",
      instance: `i${j}`,
      app: `http://10.0.${i % 250}.${j}:8080`,
      state: "ready",
      host: `host-${i}-${j}`,
      startedAt: now,
      heartbeatAt: now,
    },
  };
}
