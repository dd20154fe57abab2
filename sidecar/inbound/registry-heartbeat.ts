import { hostname } from "node:os";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import {
  HEARTBEAT_INTERVAL_MS,
  checkControlReply,
  formatProblems,
  registerSubject,
  type InstanceState,
  type RegisterRequest,
  type RegistryEntry,
} from "../../schemas/index.ts";

/** a heartbeat that control does not answer within this long counts as failed */
const REGISTER_TIMEOUT_MS = 1_000;
/** after a failed heartbeat the next comes this soon, doubling up to the heartbeat interval */
const RETRY_FIRST_MS = 250;

/**
 * Keeps this provider instance's entry in `mesh_registry` fresh by asking
 * control (`mesh.ctl.v1.register.<service>`) to write it: a sidecar never
 * writes a bucket itself (docs/security.md). The bucket expires entries
 * that stop being refreshed, so a killed instance disappears on its own; a
 * draining one says so first and asks for removal on exit.
 */
export class RegistryHeartbeat {
  readonly #nc: NatsConnection;
  readonly #logger: Logger;
  readonly #entry: RegistryEntry;
  readonly #subject: string;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #failures = 0;

  readonly #region: () => string | undefined;

  /** `region`: asked at every heartbeat, since a reconnect may land in another cluster (docs/multi-region.md). */
  constructor(nc: NatsConnection, logger: Logger, entry: Omit<RegistryEntry, "state" | "host" | "startedAt" | "heartbeatAt" | "region">, region: () => string | undefined = () => undefined) {
    this.#nc = nc;
    this.#region = region;
    this.#logger = logger;
    const now = new Date().toISOString();
    this.#entry = { ...entry, state: "ready", host: hostname(), startedAt: now, heartbeatAt: now };
    this.#subject = registerSubject(entry.service);
  }

  async start(state: InstanceState = "ready"): Promise<void> {
    this.#entry.state = state;
    await this.beat();
  }

  async setState(state: InstanceState): Promise<void> {
    this.#entry.state = state;
    await this.beat();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#send({ remove: this.#entry.instance });
  }

  /** Sends the entry now, and schedules the next: a heartbeat interval later, sooner while failing. */
  async beat(): Promise<void> {
    clearTimeout(this.#timer);
    this.#entry.heartbeatAt = new Date().toISOString();
    const region = this.#region();
    if (region === undefined) delete this.#entry.region;
    else this.#entry.region = region;
    await this.#send({ entry: this.#entry });
    if (this.#stopped) return;
    const next = this.#failures === 0 ? HEARTBEAT_INTERVAL_MS : Math.min(HEARTBEAT_INTERVAL_MS, RETRY_FIRST_MS * 2 ** (this.#failures - 1));
    this.#timer = setTimeout(() => void this.beat(), next);
    this.#timer.unref();
  }

  async #send(body: RegisterRequest): Promise<void> {
    try {
      const msg = await this.#nc.request(this.#subject, JSON.stringify(body), { timeout: REGISTER_TIMEOUT_MS });
      // Anything but a reply that fits control-register-reply.schema.json is a failed heartbeat.
      const checked = checkControlReply("register", msg.json<unknown>());
      if (!checked.ok) throw new Error(`invalid register reply: ${formatProblems(checked.problems)}`);
      if (!checked.value.ok) throw new Error(checked.value.error.message);
      if (this.#failures > 0) this.#logger.info("registry heartbeats accepted again");
      this.#failures = 0;
    } catch (err) {
      // Said once per outage: control may simply not run yet.
      if (this.#failures === 0) this.#logger.warn({ err, subject: this.#subject }, "registry heartbeat failed (is mesh control running?)");
      this.#failures++;
    }
  }
}
