import { randomFillSync } from "node:crypto";
import { TRACEPARENT } from "../../schemas/index.ts";

const ZERO_TRACE = "0".repeat(32);

/**
 * Random ids come from a pool refilled 4 KiB at a time: one system call per
 * ~170 requests instead of two per request.
 */
const pool = Buffer.allocUnsafe(4096);
let offset = pool.length;

function randomHex(bytes: number): string {
  if (offset + bytes > pool.length) {
    randomFillSync(pool);
    offset = 0;
  }
  const hex = pool.toString("hex", offset, offset + bytes);
  offset += bytes;
  return hex;
}

export interface Span {
  /** this hop's traceparent */
  traceparent: string;
  /** span id of the incoming traceparent; undefined when this hop started the trace */
  parentSpanId: string | undefined;
}

/**
 * The span of a hop, from one parse of the incoming traceparent: a new span
 * in the caller's trace when it sent a valid one, else a new sampled trace.
 * The incoming span id becomes the parent; its value is never passed on as is.
 */
export function childSpan(incoming: string | undefined): Span {
  const spanId = randomHex(8);
  const m = incoming ? TRACEPARENT.exec(incoming.trim()) : null;
  if (m && m[1] !== ZERO_TRACE) return { traceparent: `00-${m[1]}-${spanId}-${m[3]}`, parentSpanId: m[2] };
  return { traceparent: `00-${randomHex(16)}-${spanId}-01`, parentSpanId: undefined };
}

export function childTraceparent(incoming: string | undefined): string {
  return childSpan(incoming).traceparent;
}

export function traceIdOf(traceparent: string): string | undefined {
  return TRACEPARENT.exec(traceparent)?.[1];
}

/** The span id a traceparent carries; undefined when it is not a valid one. */
export function spanIdOf(traceparent: string): string | undefined {
  return TRACEPARENT.exec(traceparent)?.[2];
}
