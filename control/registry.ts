import type { KV } from "@nats-io/kv";
import { CTL_PREFIX, INSTANCE_NAME, checkRegistryEntry, isServiceName, registryKey, type ControlReplies } from "../schemas/index.ts";
import { ControlError } from "./errors.ts";

const REGISTER_PREFIX = `${CTL_PREFIX}.register.`;

/**
 * Writes `mesh_registry` for the sidecars (`mesh.ctl.v1.register.<service>`):
 * a sidecar never writes a bucket itself, so the entry under
 * `<service>.<instance>` is always one control checked, for the service in
 * the subject, which is all secure mode lets that sidecar publish on.
 */
export class InstanceRegistry {
  readonly #kv: KV;

  constructor(kv: KV) {
    this.#kv = kv;
  }

  async register(body: unknown, subject: string): Promise<ControlReplies["register"]> {
    const service = subject.startsWith(REGISTER_PREFIX) ? subject.slice(REGISTER_PREFIX.length) : "";
    if (!isServiceName(service)) throw new ControlError("bad_request", `registrations are sent on ${REGISTER_PREFIX}<service>, not ${subject}`);
    const b = (body ?? {}) as Record<string, unknown>;
    if (typeof b.remove === "string" && Object.keys(b).length === 1) {
      if (!INSTANCE_NAME.test(b.remove)) throw new ControlError("bad_request", `'${b.remove.slice(0, 80)}' is not an instance name`);
      return { revision: await this.#kv.delete(registryKey(service, b.remove)).then(() => 0) };
    }
    if (b.entry === null || typeof b.entry !== "object" || Object.keys(b).length !== 1) {
      throw new ControlError("bad_request", "a registration is {entry} or {remove: instance}");
    }
    // The time is control's: entries are compared for age by readers on other hosts.
    const checked = checkRegistryEntry({ ...b.entry, heartbeatAt: new Date().toISOString() });
    if (!checked.ok) throw new ControlError("bad_request", `bad registry entry: ${checked.problems.map((p) => `${p.path}: ${p.message}`).join("; ")}`);
    const entry = checked.value;
    if (entry.service !== service) throw new ControlError("bad_request", `an instance of '${entry.service}' cannot register on ${subject}`);
    return { revision: await this.#kv.put(registryKey(service, entry.instance), JSON.stringify(entry)) };
  }
}
