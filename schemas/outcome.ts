import { APP_STATUS_CLASSES, MESH_ERRORS, UNKNOWN_ERROR_CLASS, isMeshErrorCode, type MeshErrorCode, type OutcomeClass, type RetryCondition } from "./mesh-errors.ts";
import { Wire } from "./wire.ts";

/**
 * How a request ended, classified once (STYLE 11): the calling sidecar's
 * attempt loop, retry decision, circuit breaker, p2c balancer, metrics and
 * access records all read the same Outcome instead of judging statuses and
 * error codes each on its own. Pure; the classes come from MESH_ERRORS.
 */

/** `code` label of a request whose client went away before it could be answered. */
export const CLIENT_CLOSED = "client_closed";
/** `code` label (and `meshError`) of a provider's `@error` that is not a mesh error code. */
export const UNKNOWN_ERROR = "unknown_error";
/**
 * `code` label of a request whose body streamed and broke after the answer's
 * head (the provider's application died, a chunk went missing, the peer went
 * silent): the client got a head and a reset connection, never a whole body.
 * A failure, like a 5xx.
 */
export const STREAM_ABORTED = "stream_aborted";

export interface Outcome {
  /** HTTP status the requester got, or gets; 0 when the client went away first */
  readonly status: number;
  /** the metric and access-record label: the status as text, the mesh error code, `unknown_error` or `client_closed` */
  readonly code: string;
  /** the mesh error code when the mesh answered instead of the application; undefined when the application did */
  readonly meshError: MeshErrorCode | typeof UNKNOWN_ERROR | undefined;
  /** the condition of a Route's `retries.on` that lets this be tried again; null = final */
  readonly retryOn: RetryCondition | null;
  /** counts against the destination's circuit breaker and its p2c latency estimate */
  readonly breakerFailure: boolean;
}

/** Reads one wire header of a reply; nats.js MsgHdrs fits (it answers "" for an absent header). */
export interface WireHeaderReader {
  get(name: string): string;
}

/** What can be classified. */
export type Answer =
  /**
   * a provider sidecar's reply, by its `@status` and `@error` wire headers
   * (believing nothing else); `switching`: the request asked to upgrade the
   * connection, so 101 Switching Protocols is an answer too
   */
  | { readonly reply: WireHeaderReader | undefined; readonly switching?: boolean }
  /** the mesh answered itself: a MeshError, or a failed NATS request mapped to one */
  | { readonly meshError: { readonly code: MeshErrorCode; readonly status: number } }
  /** the application answered with this status (as its provider sidecar saw it) */
  | { readonly appStatus: number }
  /** the client went away before its request was answered */
  | { readonly clientClosed: true }
  /** the answer's head (this status) went out, then its body's stream broke */
  | { readonly streamAborted: { readonly status: number } };

/** Statuses a provider may answer with: 1xx (101 above all) would change what the connection carries. */
const MIN_REPLY_STATUS = 200;
const MAX_REPLY_STATUS = 599;

/** `@status` as an HTTP status the application may see, or undefined when it is not one. */
export function replyStatus(raw: string | undefined): number | undefined {
  if (raw === undefined || !/^[0-9]{3}$/.test(raw)) return undefined;
  const status = Number(raw);
  return status >= MIN_REPLY_STATUS && status <= MAX_REPLY_STATUS ? status : undefined;
}

export function classify(a: Answer): Outcome {
  if ("reply" in a) return a.switching && a.reply?.get(Wire.status) === "101" ? appOutcome(101) : classifyReply(a.reply);
  if ("meshError" in a) return meshOutcome(a.meshError.code, a.meshError.status);
  if ("appStatus" in a) return appOutcome(a.appStatus);
  if ("streamAborted" in a) return outcome(a.streamAborted.status, STREAM_ABORTED, undefined, APP_STATUS_CLASSES.serverError);
  return CLIENT_CLOSED_OUTCOME;
}

const CLIENT_CLOSED_OUTCOME: Outcome = Object.freeze({ status: 0, code: CLIENT_CLOSED, meshError: undefined, retryOn: null, breakerFailure: false });

/**
 * A reply whose `@status` is not a status the application may see is a
 * `bad_response`, whatever else it says; an `@error` outside the table counts
 * as `unknown_error` with the status it came with.
 */
function classifyReply(h: WireHeaderReader | undefined): Outcome {
  const status = replyStatus(h?.get(Wire.status) || undefined);
  if (status === undefined) return meshOutcome("bad_response", MESH_ERRORS.bad_response.status);
  const error = h?.get(Wire.error) || undefined;
  if (error === undefined) return appOutcome(status);
  if (isMeshErrorCode(error)) return meshOutcome(error, status);
  return outcome(status, UNKNOWN_ERROR, UNKNOWN_ERROR, UNKNOWN_ERROR_CLASS);
}

function meshOutcome(code: MeshErrorCode, status: number): Outcome {
  return outcome(status, code, code, MESH_ERRORS[code]);
}

function appOutcome(status: number): Outcome {
  const c = status >= 500 && status <= 599 ? APP_STATUS_CLASSES.serverError : APP_STATUS_CLASSES.other;
  return outcome(status, String(status), undefined, c);
}

function outcome(status: number, code: string, meshError: Outcome["meshError"], c: OutcomeClass): Outcome {
  return { status, code, meshError, retryOn: c.retryOn, breakerFailure: c.breakerFailure };
}

/** Whether `code` is a label classify can produce: a status, a mesh error code, `unknown_error`, `client_closed` or `stream_aborted`. */
export function isOutcomeCode(code: string): boolean {
  return /^[1-9][0-9]{2}$/.test(code) || isMeshErrorCode(code) || code === UNKNOWN_ERROR || code === CLIENT_CLOSED || code === STREAM_ABORTED;
}

/** Whether a `code` label counts against success (mesh top, the dashboard): a 5xx, a mesh error answered with one, or a broken stream. */
export function isFailureCode(code: string): boolean {
  if (code === STREAM_ABORTED) return true;
  const status = isMeshErrorCode(code) ? MESH_ERRORS[code].status : Number(code);
  return status >= 500 && status <= 599;
}
