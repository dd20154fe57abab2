import type { ControlRegisterRequest } from "./control-api.generated.ts";
import { validatorOf } from "./documents.ts";
import type { RegistryEntry } from "./registry.generated.ts";
import { check, type Checked } from "./validate.ts";

/** The service registry: one KV entry per live provider instance (docs/architecture.md §7). */

/** how often a provider sidecar refreshes its registry entry */
export const HEARTBEAT_INTERVAL_MS = 2_000;
/**
 * Age after which the registry bucket drops an entry (stream max_age). Less
 * than three heartbeats, so an instance killed with SIGKILL is gone within
 * three heartbeat intervals; more than two, so one late heartbeat is forgiven.
 */
export const REGISTRY_TTL_MS = 5_000;

/** Value of `mesh_registry` key `<service>.<instance>` (JSON): registry-entry.schema.json. */
export type { RegistryEntry } from "./registry.generated.ts";

/** ready: in its queue groups; unready: out of them while its app does not answer; draining: leaving for good */
export type InstanceState = RegistryEntry["state"];

export function registryKey(service: string, instance: string): string {
  return `${service}.${instance}`;
}

/**
 * Body of `mesh.ctl.v1.register.<service>` (registerSubject): the instance's
 * entry (a heartbeat), or the removal of one of the service's instances
 * (control-register-request.schema.json).
 */
export type RegisterRequest = ControlRegisterRequest;

/** Instance names: one subject token (`mesh.rpc.<service>.~<instance>.<caller>`). */
export const INSTANCE_NAME = /^[A-Za-z0-9_-]{1,64}$/;

const validateEntry = validatorOf("registry-entry");

/** A registry entry as it crossed a process boundary: the entry, or what is wrong with it. */
export function checkRegistryEntry(value: unknown): Checked<RegistryEntry> {
  return check<RegistryEntry>(validateEntry, value);
}
