import { setTimeout as delay } from "node:timers/promises";
import type { KV } from "@nats-io/kv";
import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream";
import { quotaLeaseSubject, quotaWindow, type QuotaLeaseReply, type QuotaLeaseRequest, type QuotaPer, type ValidControlRequests } from "../schemas/index.ts";
import { ControlError } from "./errors.ts";

/**
 * Global quota, control's side: permits are leased to provider sidecars in
 * small batches and counted in KV, one key per (service, caller, window),
 * with revision-checked updates, so any number of control replicas agree and
 * a restart loses nothing. Permits granted for a window never exceed its
 * limit; the arithmetic is pure and below.
 */

/** a lease is at most this fraction of the limit: 1/20, so 300/minute leases at most 15 */
const LEASE_DIVISOR = 20;
/** a lease is at most this share of what is left, so the last permits go out in ones and twos */
const TAIL_DIVISOR = 4;
/** and never more than this many permits */
const MAX_LEASE = 1_000;
/** revision conflicts tolerated before giving up (another replica or instance wrote between read and write) */
const MAX_ATTEMPTS = 25;
const KV_SAFE_NAME = /^[a-z0-9-]+$/;

export interface CounterChange {
  /** the count to store */
  used: number;
  granted: number;
}

/**
 * How many permits to grant when `used` of `limit` are out and `want` are
 * asked for: no more than what is left, than a twentieth of the limit, or
 * than a quarter of what is left (at least one while any is left).
 */
export function leaseSize(limit: number, used: number, want: number): number {
  const remaining = Math.max(0, limit - used);
  if (want <= 0 || remaining === 0) return 0;
  const cap = Math.max(1, Math.ceil(limit / LEASE_DIVISOR));
  const tail = Math.max(1, Math.ceil(remaining / TAIL_DIVISOR));
  return Math.min(remaining, want, cap, tail, MAX_LEASE);
}

/** The counter after giving back `release` permits and granting a lease. */
export function changeCounter(used: number, req: Pick<QuotaLeaseRequest, "limit" | "want" | "release">): CounterChange {
  const afterRelease = Math.max(0, used - (req.release ?? 0));
  const granted = leaseSize(req.limit, afterRelease, req.want);
  return { used: afterRelease + granted, granted };
}

/**
 * KV key of a counter: `<service>.<caller token>.<window>`. Service names
 * are safe key tokens; a caller name that is not one (anything may publish
 * without secure mode) is base64url-encoded behind `_`, which starts no name.
 */
export function counterKey(service: string, caller: string, window: number): string {
  const token = KV_SAFE_NAME.test(caller) ? caller : `_${Buffer.from(caller, "utf8").toString("base64url")}`;
  return `${service}.${token}.${window}`;
}

/** A stored count; a value that is not a count (written by hand) counts as the whole limit. */
function parseUsed(text: string, limit: number): number {
  const n = Number(text);
  return Number.isSafeInteger(n) && n >= 0 ? n : limit;
}

function isRevisionConflict(err: unknown): boolean {
  return (
    err instanceof JetStreamApiError &&
    (err.code === JetStreamApiCodes.StreamWrongLastSequence || err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)
  );
}

/**
 * Windows a lease may name besides the current one, on each side: one, for
 * clock skew between a provider and control. Any other window is refused,
 * since every window is a new KV key.
 */
export const WINDOW_SKEW = 1;

/** Why `window` is not one control leases for now, or undefined when it is. */
export function windowProblem(per: QuotaPer, window: number, nowMs: number): string | undefined {
  const current = quotaWindow(per, nowMs);
  if (Math.abs(window - current) <= WINDOW_SKEW) return undefined;
  return `window ${window} is not the current ${per} window (${current}) or next to it; check the provider's clock`;
}

export class QuotaLeases {
  readonly #buckets: Readonly<Record<QuotaPer, KV>>;
  readonly #now: () => number;

  constructor(buckets: Readonly<Record<QuotaPer, KV>>, now: () => number = Date.now) {
    this.#buckets = buckets;
    this.#now = now;
  }

  /**
   * `mesh.ctl.v1.quota.<service>`: release, then grant, in one
   * revision-checked update. The request fits control-quota-request.schema.json;
   * the subject must name its service: that is what secure mode's
   * permissions hold a sidecar to.
   */
  async lease(req: ValidControlRequests["quota"], subject: string): Promise<QuotaLeaseReply> {
    if (subject !== quotaLeaseSubject(req.service)) {
      throw new ControlError("bad_request", `quota leases of '${req.service}' are asked on ${quotaLeaseSubject(req.service)}, not ${subject}`);
    }
    const stale = windowProblem(req.per, req.window, this.#now());
    if (stale) throw new ControlError("bad_request", `bad quota lease request: ${stale}`);
    const kv = this.#buckets[req.per];
    const key = counterKey(req.service, req.caller, req.window);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const entry = await kv.get(key);
      const used = entry?.operation === "PUT" ? parseUsed(entry.string(), req.limit) : 0;
      const next = changeCounter(used, req);
      // Nothing left, or a release and a grant that cancel out: no write needed.
      if (next.used === used) return { granted: next.granted, remaining: Math.max(0, req.limit - used) };
      try {
        if (entry) await kv.update(key, String(next.used), entry.revision);
        else await kv.create(key, String(next.used));
        return { granted: next.granted, remaining: Math.max(0, req.limit - next.used) };
      } catch (err) {
        if (!isRevisionConflict(err)) throw err;
        // Someone else counted first: read again. A little jitter keeps two replicas from colliding in step.
        await delay(Math.random() * Math.min(attempt + 1, 10));
      }
    }
    throw new ControlError("conflict", `quota counter '${key}' kept changing; try again`);
  }
}
