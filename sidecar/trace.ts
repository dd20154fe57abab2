import { randomFillSync } from "node:crypto";

/** W3C trace context (https://www.w3.org/TR/trace-context/), version 00. */
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
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

/**
 * The traceparent for a hop: a new span in the caller's trace when the
 * application sent a valid one, else a new sampled trace. The application's
 * span id becomes the parent; its value is never passed on as is.
 */
export function childTraceparent(incoming: string | undefined): string {
  const spanId = randomHex(8);
  const m = incoming ? TRACEPARENT.exec(incoming.trim()) : null;
  if (m && m[1] !== ZERO_TRACE) return `00-${m[1]}-${spanId}-${m[3]}`;
  return `00-${randomHex(16)}-${spanId}-01`;
}

/** The span id of a valid traceparent (the parent of a span made from it with childTraceparent). */
export function spanIdOf(traceparent: string | undefined): string | undefined {
  const m = traceparent ? TRACEPARENT.exec(traceparent.trim()) : null;
  return m && m[1] !== ZERO_TRACE ? m[2] : undefined;
}

export function traceIdOf(traceparent: string): string | undefined {
  return TRACEPARENT.exec(traceparent)?.[1];
}
