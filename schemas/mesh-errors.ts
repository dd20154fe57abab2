import type { RetryPolicy } from "./policy-types.generated.ts";

/** Outcome classes a Route's `retries.on` may name (derived from the route schema). */
export type RetryCondition = RetryPolicy["on"][number];

/**
 * What an outcome means to the calling sidecar's resilience layer.
 * `retryOn`: the condition of a Route's `retries.on` that lets it be tried
 * again; null = final, never retried. `breakerFailure`: whether it counts
 * against the destination's circuit breaker (and p2c latency estimate).
 */
export interface OutcomeClass {
  readonly retryOn: RetryCondition | null;
  readonly breakerFailure: boolean;
}

/**
 * The errors the mesh itself answers with (docs/architecture.md §8), keyed by their stable
 * code: the HTTP status each is answered with, and its class. This is the
 * only list of which outcomes are retried and which are breaker failures;
 * schemas/outcome.ts `classify` reads it for every consumer.
 *
 * Retried and breaker failures are the outcomes that say the destination is
 * unhealthy and the application never saw the request (or did not answer in
 * time). Outcomes about the request or the caller (forbidden, quota_exceeded,
 * payload_too_large, bad_target, request_timeout, response_too_large,
 * bad_response, fault_injected) are final and say nothing about the
 * destination's health: another try gets the same answer. circuit_open is the
 * breaker's own refusal: fed back, an open circuit would keep itself open.
 */
export const MESH_ERRORS = {
  bad_target: { status: 400, retryOn: null, breakerFailure: false },
  /** the application's request did not arrive in time: headers, or the next bytes of its body */
  request_timeout: { status: 408, retryOn: null, breakerFailure: false },
  forbidden: { status: 403, retryOn: null, breakerFailure: false },
  payload_too_large: { status: 413, retryOn: null, breakerFailure: false },
  quota_exceeded: { status: 429, retryOn: null, breakerFailure: false },
  app_unreachable: { status: 502, retryOn: "app_unreachable", breakerFailure: true },
  response_too_large: { status: 502, retryOn: null, breakerFailure: false },
  /** the provider's reply cannot be written as HTTP (a status outside 200-599, an invalid header) */
  bad_response: { status: 502, retryOn: null, breakerFailure: false },
  unavailable: { status: 503, retryOn: "unavailable", breakerFailure: true },
  circuit_open: { status: 503, retryOn: null, breakerFailure: false },
  /** the provider shed the request before its application saw it: as safe to retry as no-responders, and trouble the breaker should relieve */
  overloaded: { status: 503, retryOn: "unavailable", breakerFailure: true },
  timeout: { status: 504, retryOn: "timeout", breakerFailure: true },
  /** a route's fault.abort answered; the status is the one the rule names */
  fault_injected: { status: 500, retryOn: null, breakerFailure: false },
} as const satisfies Record<string, OutcomeClass & { status: number }>;

export type MeshErrorCode = keyof typeof MESH_ERRORS;

/**
 * The application's own answers (as relayed by the provider's sidecar): a
 * 5xx, including a 502/503/504 from a proxy in front of it, is the `5xx`
 * retry condition and a breaker failure; any other status is a success for both.
 */
export const APP_STATUS_CLASSES = {
  serverError: { retryOn: "5xx", breakerFailure: true },
  other: { retryOn: null, breakerFailure: false },
} as const satisfies Record<string, OutcomeClass>;

/**
 * A provider's `@error` that is not a code of MESH_ERRORS: counted as
 * `unknown_error`, never retried, not a breaker failure (whatever answers on
 * an inbox may write anything there).
 */
export const UNKNOWN_ERROR_CLASS: OutcomeClass = { retryOn: null, breakerFailure: false };

export function isMeshErrorCode(code: string): code is MeshErrorCode {
  return Object.hasOwn(MESH_ERRORS, code);
}
