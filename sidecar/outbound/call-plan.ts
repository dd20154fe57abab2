import { ANY_VERSION, type RoutePolicy, type RouteRule } from "../../schemas/index.ts";
import { pathOnly, type CompiledRoute, type CompiledRule, type HeaderLookup } from "../policy/routing.ts";

/**
 * What a route decides about one outbound call before anything is sent: its
 * deadline, the rule it matches, the fault to inject, whether a copy is
 * mirrored, and how each attempt picks a version. Pure: time and randomness
 * are injected, so the percentages are unit-tested with a fixed sequence.
 * MeshCaller (caller.ts) executes the plan.
 */

/** The parts of an outbound call the plan reads. */
export interface PlannedCall {
  method: string;
  /** raw path and query */
  path: string;
  header: HeaderLookup;
  /** epoch ms when the application's request arrived: the deadline counts from here */
  startedAt: number;
  /** the application's own limit (x-mesh-timeout-ms, x-mesh-deadline-ms), which may only shorten the deadline */
  askedTimeoutMs: number | undefined;
}

export interface CallPlan {
  /** epoch ms after which no attempt starts and the call answers `timeout` */
  deadlineAt: number;
  /** the path without its query, as rules and authorization match it */
  pathOnly: string;
  /** the first rule that matches; undefined = none (the call goes to any version) */
  rule: CompiledRule<RouteRule> | undefined;
  /** milliseconds to hold the call first (fault.delay, cut to the deadline); 0 = none */
  delayMs: number;
  /** status to answer with `fault_injected` instead of sending (fault.abort); undefined = none */
  abortStatus: number | undefined;
  /** version a copy of the call goes to (mirror); undefined = no copy */
  mirrorVersion: string | undefined;
  /** the version one attempt goes to, drawn anew for each attempt */
  pickVersion: () => string;
}

/**
 * The plan of one call. `defaultTimeoutMs` is the deadline of a call whose
 * route sets none. Random draws happen in a fixed order, each only when its
 * part of the rule exists: delay, then abort, then (unless aborted) mirror;
 * `pickVersion` draws once per attempt when a rule matched.
 */
export function planCall(
  route: CompiledRoute<RoutePolicy> | undefined,
  call: PlannedCall,
  now: () => number,
  random: () => number,
  defaultTimeoutMs: number,
): CallPlan {
  // The route's deadline (else the sidecar's); the application may ask for less, never more.
  const limit = route?.timeoutMs ?? defaultTimeoutMs;
  const timeoutMs = call.askedTimeoutMs !== undefined && call.askedTimeoutMs < limit ? call.askedTimeoutMs : limit;
  const deadlineAt = call.startedAt + timeoutMs;
  const path = pathOnly(call.path);
  const rule = route?.select(call.method, path, call.header);
  const fault = rule?.source.fault;
  const delayMs = fault?.delay && drawn(random, fault.delay.percent) ? Math.min(fault.delay.ms, Math.max(0, deadlineAt - now())) : 0;
  const abortStatus = fault?.abort && drawn(random, fault.abort.percent) ? fault.abort.status : undefined;
  const mirror = rule?.source.mirror;
  const mirrorVersion = abortStatus === undefined && mirror && drawn(random, mirror.percent) ? mirror.version : undefined;
  return {
    deadlineAt,
    pathOnly: path,
    rule,
    delayMs,
    abortStatus,
    mirrorVersion,
    pickVersion: rule ? () => rule.pickVersion(random()) : () => ANY_VERSION,
  };
}

/** True for `percent` out of 100 draws of `random` ([0, 1) like Math.random). */
function drawn(random: () => number, percent: number): boolean {
  return random() * 100 < percent;
}
