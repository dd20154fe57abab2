/** The errors the mesh itself answers with (DESIGN §3), keyed by their stable code. */
export const MESH_ERRORS = {
  bad_target: { status: 400, retryable: false },
  /** the application's request did not arrive in time: headers, or the next bytes of its body */
  request_timeout: { status: 408, retryable: false },
  forbidden: { status: 403, retryable: false },
  payload_too_large: { status: 413, retryable: false },
  quota_exceeded: { status: 429, retryable: false },
  app_unreachable: { status: 502, retryable: true },
  response_too_large: { status: 502, retryable: false },
  /** the provider's reply cannot be written as HTTP (a status outside 200-599, an invalid header) */
  bad_response: { status: 502, retryable: false },
  unavailable: { status: 503, retryable: true },
  circuit_open: { status: 503, retryable: false },
  overloaded: { status: 503, retryable: true },
  timeout: { status: 504, retryable: true },
  /** a route's fault.abort answered; the status is the one the rule names */
  fault_injected: { status: 500, retryable: false },
} as const satisfies Record<string, { status: number; retryable: boolean }>;

export type MeshErrorCode = keyof typeof MESH_ERRORS;

export function isMeshErrorCode(code: string): code is MeshErrorCode {
  return Object.hasOwn(MESH_ERRORS, code);
}
