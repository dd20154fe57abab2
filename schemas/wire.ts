/**
 * Names that travel on the wire between sidecars, and the HTTP headers the
 * mesh adds for applications.
 *
 * Request and reply metadata ride in NATS headers. The mesh's own fields
 * start with `@`, a character HTTP forbids in header names (RFC 9110 token),
 * so they can never collide with an application's headers, which travel
 * beside them lowercased and unchanged. Think of HTTP/2's `:method`.
 */
export const Wire = {
  /** request: HTTP method */
  method: "@method",
  /** request: raw path and query, exactly as the caller sent it */
  path: "@path",
  /**
   * request: the attempt's deadline, epoch milliseconds. Absolute, so that a
   * provider can tell a request that waited too long in transit or in a
   * queue and answer `timeout` without bothering its application.
   */
  deadline: "@deadline",
  /** request: a mirrored copy, whose answer nobody reads */
  mirror: "@mirror",
  /** request: id the caller sidecar gave the request */
  requestId: "@request-id",
  /** request: W3C trace context */
  traceparent: "@traceparent",
  /** reply: HTTP status */
  status: "@status",
  /** reply: mesh error code when the provider sidecar answered instead of its app */
  error: "@error",
  /** reply: version and instance that served the request */
  version: "@version",
  instance: "@instance",
} as const;

/** Headers the mesh sets for applications; values sent by applications are replaced. */
export const HttpHeader = {
  caller: "x-mesh-caller",
  requestId: "x-request-id",
  traceparent: "traceparent",
  /** request from an app: lowers the deadline for this call (milliseconds) */
  timeoutMs: "x-mesh-timeout-ms",
  /**
   * to a provider app: milliseconds left of the caller's deadline. An app that
   * forwards it on its own outbound calls (like traceparent) makes nested
   * calls inherit the deadline; the outbound listener reads it like x-mesh-timeout-ms.
   */
  deadlineMs: "x-mesh-deadline-ms",
  /** to a provider app: this request is a mirrored copy; its answer is dropped */
  mirror: "x-mesh-mirror",
  /** response: set on every error the mesh itself produced */
  meshError: "mesh-error",
  /** response: the version of the provider that answered */
  servedBy: "x-mesh-version",
} as const;

/**
 * W3C trace context, version 00 (https://www.w3.org/TR/trace-context/):
 * `00-<trace id: 32 hex>-<parent span id: 16 hex>-<flags: 2 hex>`, as
 * carried in `traceparent` and `@traceparent`. Groups: trace id, span id, flags.
 */
export const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** A W3C span id alone (16 lowercase hex digits). */
export const SPAN_ID = /^[0-9a-f]{16}$/;

/** Hop-by-hop headers (RFC 9110 §7.6.1) never cross the mesh. */
export const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);
