import schema from "./registry-entry.schema.json" with { type: "json" };
import { ajv, problemsOf, type Problem } from "./validate.ts";

/** The service registry: one KV entry per live provider instance (DESIGN §4). */

/** how often a provider sidecar refreshes its registry entry */
export const HEARTBEAT_INTERVAL_MS = 2_000;
/**
 * Age after which the registry bucket drops an entry (stream max_age). Less
 * than three heartbeats, so an instance killed with SIGKILL is gone within
 * three heartbeat intervals; more than two, so one late heartbeat is forgiven.
 */
export const REGISTRY_TTL_MS = 5_000;

/** ready: in its queue groups; unready: out of them while its app does not answer; draining: leaving for good */
export type InstanceState = "ready" | "unready" | "draining";

/** Value of `mesh_registry` key `<service>.<instance>` (JSON). */
export interface RegistryEntry {
  service: string;
  version: string;
  instance: string;
  /** the application's origin as the sidecar reaches it */
  app: string;
  state: InstanceState;
  /** process host name, for people */
  host: string;
  /** ISO timestamps */
  startedAt: string;
  heartbeatAt: string;
}

export function registryKey(service: string, instance: string): string {
  return `${service}.${instance}`;
}

/**
 * Body of `mesh.ctl.v1.register.<service>` (registerSubject): the instance's
 * entry (a heartbeat), or the removal of one of the service's instances.
 * Control checks that the entry names the subject's service, and writes it.
 */
export type RegisterRequest = { entry: RegistryEntry } | { remove: string };

/** Instance names: one subject token (`mesh.rpc.<service>.~<instance>.<caller>`). */
export const INSTANCE_NAME = /^[A-Za-z0-9_-]{1,64}$/;

const validateEntry = ajv.compile(schema);

/** A registry entry as it crossed a process boundary: the entry, or what is wrong with it. */
export function checkRegistryEntry(value: unknown): { ok: true; value: RegistryEntry } | { ok: false; problems: Problem[] } {
  return validateEntry(value) ? { ok: true, value: value as unknown as RegistryEntry } : { ok: false, problems: problemsOf(validateEntry.errors, value) };
}
