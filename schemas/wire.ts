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

/**
 * Fields of streamed bodies (docs/architecture.md §15). A head (a request,
 * or a provider's answer) with `@stream` says its body follows as numbered
 * chunks on the stream's inboxes instead of in the payload.
 */
export const StreamWire = {
  /**
   * head: the body follows as chunks. On a request its value is `1`; on an
   * answer (and on a provider's `@continue`) it is the provider's inbox for
   * this stream, `_INBOX.<provider>.<token>`, where the caller sends
   * credits, its own chunks and aborts (signed, as any inbox message).
   */
  stream: "@stream",
  /** head: bytes the sender of the head lets its peer send before the first credit */
  credit: "@credit",
  /** head: total body bytes, when known */
  length: "@length",
  /**
   * answer of a provider to a request whose body streams, before its
   * application answers: send the body now (carries `@stream` and `@credit`).
   */
  continue: "@continue",
  /** chunk: its number in this direction, from 1 */
  seq: "@seq",
  /** chunk: the last one of this direction (may carry data) */
  end: "@end",
  /** the stream failed; its value is a StreamAbortReason; the other side tears down too */
  abort: "@abort",
  /** keepalive while nothing else is said */
  ping: "@ping",
  /** request head: an HTTP upgrade (WebSocket); the answer is 101 and both directions stream */
  upgrade: "@upgrade",
} as const;

/**
 * Why a stream ended before completing, as both sides record it. `answered`:
 * the application answered before reading the whole request body, and the
 * rest is not wanted.
 */
export type StreamAbortReason =
  | "client_closed"
  | "app_failed"
  | "source_failed"
  | "out_of_order"
  | "credit_exceeded"
  | "protocol_error"
  | "too_large"
  | "idle_timeout"
  | "peer_gone"
  | "timeout"
  | "answered"
  | "draining";

/** What both ends of a stream agree on without saying it (docs/architecture.md §15). */
export const StreamProtocol = {
  /** bytes a provider may send of a streamed answer before the caller's first credit */
  initialWindowBytes: 1024 * 1024,
  /** each side says something (a ping) after this long without sending anything */
  keepaliveMs: 5_000,
  /** a peer that said nothing for this long is gone (three keepalives) */
  peerGoneMs: 15_000,
} as const;
