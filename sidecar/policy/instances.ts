import { ANY_VERSION, REGISTRY_TTL_MS, type RegistryEntry } from "../../schemas/index.ts";

/**
 * A caller's view of the registry, for balancers that address instances
 * themselves. Entries come from the registry watch; an entry whose heartbeat
 * is older than the registry TTL counts as gone even before the bucket drops
 * it (nats-server 2.9 sends no watch event when an entry expires).
 */
/** how long a ready list may be reused before entries are checked for age again */
const RECHECK_MS = 1_000;
/**
 * An entry whose heartbeat (control's clock) is older than this is not
 * taken at all: a republished message reflected back long after it was
 * written must not bring a departed instance back. Generous, for clock skew.
 */
const STALE_HEARTBEAT_MS = 30_000;
/** instances remembered; entries beyond it are ignored until others go */
export const MAX_INSTANCES = 10_000;

export class InstanceView {
  readonly #entries = new Map<string, RegistryEntry & { seenAt: number }>();
  readonly #now: () => number;
  readonly #onAsked: ((service: string) => void) | undefined;
  /** ready lists by `service/version`, valid while nothing changed and for at most RECHECK_MS (entries age out) */
  readonly #cache = new Map<string, { ids: string[]; at: number }>();

  /** `onAsked`: told of a service whose instances were asked for, when no fresh list was cached (so not per request) */
  constructor(now: () => number = Date.now, onAsked?: (service: string) => void) {
    this.#now = now;
    this.#onAsked = onAsked;
  }

  update(key: string, entry: RegistryEntry | undefined): void {
    // A heartbeat that changes nothing but the time keeps the cached lists.
    const before = this.#entries.get(key);
    const now = this.#now();
    if (entry && !(Date.parse(entry.heartbeatAt) < now - STALE_HEARTBEAT_MS) && (before || this.#entries.size < MAX_INSTANCES)) {
      this.#entries.set(key, { ...entry, seenAt: now });
    } else this.#entries.delete(key);
    if (before?.state !== entry?.state || before?.version !== entry?.version || before?.region !== entry?.region) this.#cache.clear();
  }

  /**
   * Ready instances of `service` (of `version`, unless it is `_`), by
   * instance name, sorted; asked per request, so cached. With `region`, only
   * those in that region or in none (docs/multi-region.md).
   */
  ready(service: string, version: string, region?: string): string[] {
    const key = `${service}/${version}/${region ?? ""}`;
    const now = this.#now();
    const cached = this.#cache.get(key);
    if (cached && now - cached.at < RECHECK_MS) return cached.ids;
    this.#onAsked?.(service);
    const ids = this.#scan(service, version, region);
    this.#cache.set(key, { ids, at: now });
    return ids;
  }

  #scan(service: string, version: string, region: string | undefined): string[] {
    const oldest = this.#now() - REGISTRY_TTL_MS;
    const out: string[] = [];
    for (const e of this.#entries.values()) {
      if (e.service !== service || e.state !== "ready" || e.seenAt < oldest) continue;
      if (version !== ANY_VERSION && e.version !== version) continue;
      if (region !== undefined && e.region !== undefined && e.region !== region) continue;
      out.push(e.instance);
    }
    return out.sort();
  }
}
