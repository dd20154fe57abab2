import { compileGlob, quotaWindow, quotaWindowEnd, type GlobMatcher, type QuotaPer, type QuotaPolicy } from "../../schemas/index.ts";

/**
 * Quota arithmetic of a provider sidecar, without I/O: which limits apply to
 * a caller, the state of one counter at this instance, and the numbers a
 * quota answer carries. Pure, so unit-tested without sockets.
 */

export interface LimitSpec {
  per: QuotaPer;
  requests: number;
}

export interface CompiledQuota {
  readonly onUnavailable: "allow" | "deny";
  /** the limits of the first caller pattern that matches; undefined = not limited */
  limitsFor(caller: string): readonly LimitSpec[] | undefined;
}

/** a lease ask never exceeds this; control caps it further */
export const MAX_WANT = 1_000;

/**
 * Groups the document's limits by caller pattern, in order of first
 * appearance. Every entry with the pattern applies; two with the same `per`
 * merge into the stricter one.
 */
export function compileQuota(policy: Readonly<QuotaPolicy> | undefined): CompiledQuota | undefined {
  if (!policy) return undefined;
  const groups = new Map<string, Map<QuotaPer, number>>();
  for (const { caller, requests, per } of policy.limits) {
    const byPer = groups.get(caller) ?? new Map<QuotaPer, number>();
    byPer.set(per, Math.min(requests, byPer.get(per) ?? Infinity));
    groups.set(caller, byPer);
  }
  const patterns: Array<{ matches: GlobMatcher; limits: readonly LimitSpec[] }> = [...groups].map(([caller, byPer]) => ({
    matches: compileGlob(caller, { segmented: false }),
    limits: Object.freeze([...byPer].map(([per, requests]) => Object.freeze({ per, requests }))),
  }));
  return {
    onUnavailable: policy.onUnavailable ?? "allow",
    limitsFor: (caller) => patterns.find((p) => p.matches(caller))?.limits,
  };
}

/**
 * One (caller, window length) counter as this instance sees it: the permits
 * it holds for the current window and what control said about the rest.
 */
export class LocalCounter {
  readonly caller: string;
  readonly per: QuotaPer;
  limit: number;
  /** window index the permits belong to; -1 before the first use */
  window = -1;
  /** leased, not yet spent; valid only during `window` */
  permits = 0;
  /** permits of the window no instance held at the last lease */
  remoteRemaining = 0;
  /** control said the window is used up: deny locally until then (epoch ms), then ask again */
  exhaustedUntil = 0;
  /** the next lease's size: doubles while leases are used up, halves when a window ends with permits unspent */
  want = 1;
  /** epoch ms of the last permit spent or received */
  lastUseMs = 0;
  /** the lease request in flight, shared by every request waiting for it */
  inflight: Promise<void> | undefined;

  constructor(caller: string, per: QuotaPer, limit: number) {
    this.caller = caller;
    this.per = per;
    this.limit = limit;
  }

  /** Moves to the window `nowMs` is in; permits of a past window are void. */
  roll(nowMs: number): void {
    const window = quotaWindow(this.per, nowMs);
    if (window === this.window) return;
    if (this.permits > 0) this.want = Math.max(1, Math.ceil(this.want / 2));
    this.window = window;
    this.permits = 0;
    this.exhaustedUntil = 0;
    this.remoteRemaining = this.limit;
  }

  /** Epoch ms at which the current window ends. */
  windowEnd(): number {
    return quotaWindowEnd(this.per, this.window);
  }

  /** Takes a lease's answer for `window`; false when the window has passed meanwhile (the permits are void). */
  granted(window: number, granted: number, remaining: number, nowMs: number, recheckMs: number): boolean {
    if (window !== this.window) return false;
    this.remoteRemaining = remaining;
    this.lastUseMs = nowMs;
    if (granted > 0) {
      this.permits += granted;
      this.want = Math.min(MAX_WANT, Math.max(this.want, granted * 2));
    } else {
      this.exhaustedUntil = Math.min(this.windowEnd(), nowMs + recheckMs);
    }
    return true;
  }
}

export interface RateLimitHeaders {
  /** requests allowed per window */
  limit: number;
  /** requests left in the window, mesh-wide, as far as this instance knows */
  remaining: number;
  /** seconds until the window ends, at least 1 */
  resetS: number;
}

/** Whole seconds until `untilMs`, at least 1 (a header of 0 invites an immediate retry). */
export function secondsUntil(untilMs: number, nowMs: number): number {
  return Math.max(1, Math.ceil((untilMs - nowMs) / 1000));
}

/** The headers of the counter with the fewest requests left. */
export function headersOf(counters: readonly LocalCounter[], nowMs: number): RateLimitHeaders {
  let tightest = counters[0]!;
  let least = Infinity;
  for (const c of counters) {
    const left = c.permits + c.remoteRemaining;
    if (left < least) {
      least = left;
      tightest = c;
    }
  }
  return { limit: tightest.limit, remaining: Math.max(0, least), resetS: secondsUntil(tightest.windowEnd(), nowMs) };
}
