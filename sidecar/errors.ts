import { ANY_VERSION, MESH_ERRORS, type MeshErrorCode } from "../schemas/index.ts";

/**
 * An error the mesh answers with instead of an application's response.
 * `code` is stable (tests and callers branch on it). Whether it may be retried
 * or counts against a circuit breaker is its class in the MESH_ERRORS table,
 * read through schemas/outcome.ts `classify`.
 */
export class MeshError extends Error {
  readonly code: MeshErrorCode;
  readonly status: number;
  /** headers the answer carries besides `mesh-error`, e.g. Retry-After and RateLimit-* */
  readonly extraHeaders: ReadonlyArray<readonly [string, string]> | undefined;

  constructor(
    code: MeshErrorCode,
    message: string,
    options?: ErrorOptions & { status?: number; extraHeaders?: ReadonlyArray<readonly [string, string]> },
  ) {
    super(message, options);
    this.name = "MeshError";
    this.code = code;
    this.status = options?.status ?? MESH_ERRORS[code].status;
    this.extraHeaders = options?.extraHeaders;
  }

  /** The JSON body every mesh error carries. */
  body(): string {
    return JSON.stringify({ error: this.code, message: this.message });
  }
}

export function badTarget(detail: string): MeshError {
  return new MeshError("bad_target", detail);
}

export function payloadTooLarge(size: number, limit: number): MeshError {
  return new MeshError("payload_too_large", `body of ${size} bytes exceeds the mesh limit of ${limit} bytes`);
}

export function unavailable(service: string, version: string, cause?: unknown): MeshError {
  const which = version === ANY_VERSION ? "" : ` (version '${version}')`;
  return new MeshError("unavailable", `no instance of '${service}'${which}`, { cause });
}

export function timeout(service: string, deadlineMs: number, cause?: unknown): MeshError {
  return new MeshError("timeout", `'${service}' did not answer within ${deadlineMs} ms`, { cause });
}

export function appUnreachable(app: string, cause?: unknown): MeshError {
  const reason = cause instanceof Error ? `: ${cause.message}` : "";
  return new MeshError("app_unreachable", `application at '${app}' cannot be reached${reason}`, { cause });
}
