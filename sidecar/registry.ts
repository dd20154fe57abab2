import { hostname } from "node:os";
import type { NatsConnection } from "@nats-io/transport-node";
import { Kvm, type KV } from "@nats-io/kv";
import type { Logger } from "pino";
import { HEARTBEAT_INTERVAL_MS, REGISTRY_BUCKET, registryKey, type InstanceState, type RegistryEntry } from "../schemas/index.ts";

/**
 * Keeps this provider instance's entry in `mesh_registry` fresh. The bucket
 * expires entries that stop being refreshed, so a killed instance disappears
 * on its own; a draining one says so first and removes itself on exit.
 * The bucket belongs to control: until it exists, heartbeats are skipped.
 */
export class RegistryHeartbeat {
  readonly #nc: NatsConnection;
  readonly #logger: Logger;
  readonly #entry: RegistryEntry;
  #kv: KV | undefined;
  #timer: NodeJS.Timeout | undefined;
  #warned = false;

  constructor(nc: NatsConnection, logger: Logger, entry: Omit<RegistryEntry, "state" | "host" | "startedAt" | "heartbeatAt">) {
    this.#nc = nc;
    this.#logger = logger;
    const now = new Date().toISOString();
    this.#entry = { ...entry, state: "ready", host: hostname(), startedAt: now, heartbeatAt: now };
  }

  get key(): string {
    return registryKey(this.#entry.service, this.#entry.instance);
  }

  async start(state: InstanceState = "ready"): Promise<void> {
    this.#entry.state = state;
    await this.beat();
    this.#timer = setInterval(() => void this.beat(), HEARTBEAT_INTERVAL_MS);
    this.#timer.unref();
  }

  async setState(state: InstanceState): Promise<void> {
    this.#entry.state = state;
    await this.beat();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    const kv = await this.#bucket();
    await kv?.delete(this.key).catch((err) => this.#logger.warn({ err }, "could not remove registry entry"));
  }

  async beat(): Promise<void> {
    this.#entry.heartbeatAt = new Date().toISOString();
    try {
      const kv = await this.#bucket();
      if (kv) await kv.put(this.key, JSON.stringify(this.#entry));
    } catch (err) {
      this.#logger.warn({ err, key: this.key }, "registry heartbeat failed");
    }
  }

  async #bucket(): Promise<KV | undefined> {
    if (this.#kv) return this.#kv;
    try {
      const kv = await new Kvm(this.#nc).open(REGISTRY_BUCKET);
      await kv.status(); // open() does not check that the bucket exists
      this.#kv = kv;
      return kv;
    } catch (err) {
      if (!this.#warned) this.#logger.warn({ err, bucket: REGISTRY_BUCKET }, "registry bucket not available yet (is mesh control running?)");
      this.#warned = true;
      return undefined;
    }
  }
}
