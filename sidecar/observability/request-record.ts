/**
 * What the sidecar knows about one request once it is answered. Metrics,
 * telemetry, access logs and tracing all read these records; none of them
 * is on the request's critical path (they aggregate or batch).
 */
export type Direction = "outbound" | "inbound";

export interface RequestRecord {
  direction: Direction;
  /** calling service */
  source: string;
  /** called service */
  destination: string;
  /** version that answered, else the one asked for (`_` = any) */
  version: string;
  /** provider instance that answered, when known */
  instance: string | undefined;
  method: string;
  /** raw path and query */
  path: string;
  /** HTTP status the requester got (0 when the client went away first) */
  status: number;
  /** the status as text, or the mesh error code when the mesh answered */
  code: string;
  /** mesh error code, when the mesh answered instead of the application */
  meshError: string | undefined;
  /** epoch milliseconds when the sidecar received the request */
  startedAt: number;
  durationMs: number;
  /** attempts made (1 without retries) */
  attempts: number;
  requestId: string;
  /** this sidecar's span: the traceparent it sent on (outbound) or gave its app (inbound) */
  traceparent: string;
  /** span id of the incoming traceparent this span is a child of; undefined when the sidecar started the trace */
  parentSpanId: string | undefined;
  /** when a body streamed either way (durationMs then covers the whole stream) */
  stream?: StreamRecord;
}

export interface StreamRecord {
  /** body bytes this sidecar received from the other sidecar (an answer's, at the caller; a request's, at the provider) */
  bytesIn: number;
  /** body bytes it sent to the other sidecar */
  bytesOut: number;
  /** why the stream ended before completing; absent when it completed */
  aborted?: string;
}

export type RequestObserver = (record: RequestRecord) => void;

/** Fans one record out to every observer; one failing observer never affects the others or the request. */
export function fanOut(observers: readonly RequestObserver[], onError: (err: unknown) => void): RequestObserver {
  return (record) => {
    for (const observe of observers) {
      try {
        observe(record);
      } catch (err) {
        onError(err);
      }
    }
  };
}
