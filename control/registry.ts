import type { KV } from "@nats-io/kv";
import { CTL_PREFIX, isServiceName, registryKey, type ControlReplies, type ValidControlRequests } from "../schemas/index.ts";
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

  /** `req` fits control-register-request.schema.json: exactly one of `entry` and `remove`. */
  async register(req: ValidControlRequests["register"], subject: string): Promise<ControlReplies["register"]> {
    const service = subject.startsWith(REGISTER_PREFIX) ? subject.slice(REGISTER_PREFIX.length) : "";
    if (!isServiceName(service)) throw new ControlError("bad_request", `registrations are sent on ${REGISTER_PREFIX}<service>, not ${subject}`);
    if (req.remove !== undefined) return { revision: await this.#kv.delete(registryKey(service, req.remove)).then(() => 0) };
    // The time is control's: entries are compared for age by readers on other hosts.
    const entry = { ...req.entry!, heartbeatAt: new Date().toISOString() };
    if (entry.service !== service) throw new ControlError("bad_request", `an instance of '${entry.service}' cannot register on ${subject}`);
    return { revision: await this.#kv.put(registryKey(service, entry.instance), JSON.stringify(entry)) };
  }
}
