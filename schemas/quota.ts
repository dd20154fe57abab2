/**
 * The global quota contract shared by provider sidecars and control: fixed
 * windows aligned to the epoch, the KV buckets that count them, and the HTTP
 * headers of a quota answer.
 */
import type { QuotaLimit } from "./policy-types.generated.ts";

export type QuotaPer = QuotaLimit["per"];

/** Length of each window, milliseconds. Windows start at multiples of it since the epoch (UTC). */
export const QUOTA_WINDOW_MS: Readonly<Record<QuotaPer, number>> = Object.freeze({
  second: 1_000,
  minute: 60_000,
  hour: 3_600_000,
  day: 86_400_000,
});

export const QUOTA_PERS: readonly QuotaPer[] = Object.freeze(["second", "minute", "hour", "day"] as const);

/**
 * KV bucket counting the permits control granted, one per window length
 * (a bucket has one max age, and a per-second count must not be kept as long
 * as a per-day one). Key `<service>.<caller token>.<window index>`, value the
 * decimal count of permits granted in that window; history 1.
 */
export const QUOTA_COUNTER_BUCKETS: Readonly<Record<QuotaPer, string>> = Object.freeze({
  second: "mesh_quota_second",
  minute: "mesh_quota_minute",
  hour: "mesh_quota_hour",
  day: "mesh_quota_day",
});

/**
 * Max age of a counter bucket, milliseconds: a window plus the larger of a
 * window and a minute. A key is written during its window, so it outlives
 * the window by at least that margin, which absorbs clock skew between hosts;
 * after that nobody asks for the window again and the key expires by itself.
 */
export function quotaCounterTtlMs(per: QuotaPer): number {
  const windowMs = QUOTA_WINDOW_MS[per];
  return windowMs + Math.max(windowMs, 60_000);
}

/** Index of the window `nowMs` (epoch milliseconds) falls in. */
export function quotaWindow(per: QuotaPer, nowMs: number): number {
  return Math.floor(nowMs / QUOTA_WINDOW_MS[per]);
}

/** Epoch milliseconds at which window `index` ends (exclusive). */
export function quotaWindowEnd(per: QuotaPer, index: number): number {
  return (index + 1) * QUOTA_WINDOW_MS[per];
}

/** Headers of a quota answer (IETF RateLimit fields, draft 7 names, and RFC 9110 Retry-After). */
export const RateLimitHeader = {
  /** requests allowed in the window */
  limit: "ratelimit-limit",
  /** requests left in the window, mesh-wide, as far as this instance knows */
  remaining: "ratelimit-remaining",
  /** seconds until the window ends */
  reset: "ratelimit-reset",
  /** on 429 only: seconds to wait before trying again */
  retryAfter: "retry-after",
} as const;
