import { REGISTRY_TTL_MS, type RegistryEntry } from "../schemas/index.ts";

/**
 * A caller's view of the registry, for balancers that address instances
 * themselves. Entries come from the registry watch; an entry whose heartbeat
 * is older than the registry TTL counts as gone even before the bucket drops
 * it (nats-server 2.9 sends no watch event when an entry expires).
 */
export class InstanceView {
  readonly #entries = new Map<string, RegistryEntry & { seenAt: number }>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  update(key: string, entry: RegistryEntry | undefined): void {
    if (entry) this.#entries.set(key, { ...entry, seenAt: this.#now() });
    else this.#entries.delete(key);
  }

  /** Ready instances of `service` (of `version`, unless it is `_`), by instance name, sorted. */
  ready(service: string, version: string): string[] {
    const oldest = this.#now() - REGISTRY_TTL_MS;
    const out: string[] = [];
    for (const e of this.#entries.values()) {
      if (e.service !== service || e.state !== "ready" || e.seenAt < oldest) continue;
      if (version !== "_" && e.version !== version) continue;
      out.push(e.instance);
    }
    return out.sort();
  }
}
