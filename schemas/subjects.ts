import { ANY_VERSION } from "./names.ts";

/** Every subject the mesh uses is built here; nothing else spells them out. */
export const RPC_PREFIX = "mesh.rpc";
export const CTL_PREFIX = "mesh.ctl.v1";
export const TELEMETRY_PREFIX = "mesh.telemetry";
export const ACCESS_PREFIX = "mesh.access";

/** `mesh.rpc.<service>.<version>.<caller>`: a request from `caller` to `service`. */
export function rpcSubject(service: string, version: string, caller: string): string {
  return `${RPC_PREFIX}.${service}.${version}.${caller}`;
}

/** A provider instance's queue subscriptions: one for its version, one for "any version". */
export function providerSubscriptions(service: string, version: string): Array<{ subject: string; queue: string }> {
  return [
    { subject: `${RPC_PREFIX}.${service}.${version}.*`, queue: `${service}.${version}` },
    { subject: `${RPC_PREFIX}.${service}.${ANY_VERSION}.*`, queue: service },
  ];
}

/**
 * One instance's own subject, for callers that pick the instance themselves
 * (p2c-ewma). `~` cannot start a version name, so it never collides with a
 * version token, and the caller stays the fifth token for permissions.
 */
export function instanceSubject(service: string, instance: string, caller: string): string {
  return `${RPC_PREFIX}.${service}.~${instance}.${caller}`;
}

export function instanceSubscription(service: string, instance: string): string {
  return `${RPC_PREFIX}.${service}.~${instance}.*`;
}

export interface RpcAddress {
  service: string;
  version: string;
  caller: string;
}

/** Splits a request subject; undefined when it is not one. */
export function parseRpcSubject(subject: string): RpcAddress | undefined {
  const parts = subject.split(".");
  if (parts.length !== 5 || parts[0] !== "mesh" || parts[1] !== "rpc") return undefined;
  return { service: parts[2]!, version: parts[3]!, caller: parts[4]! };
}

export function ctlSubject(verb: string): string {
  return `${CTL_PREFIX}.${verb}`;
}

/**
 * `mesh.ctl.v1.quota.<service>`: quota leases of `service`. The service is
 * in the subject so that, in secure mode, only the sidecars of `service`
 * may take or give back its permits (grant `mesh.ctl.v1.quota.<service>`);
 * control serves it in the same queue group as every other verb.
 */
export function quotaLeaseSubject(service: string): string {
  return `${CTL_PREFIX}.quota.${service}`;
}

export function telemetrySubject(service: string, instance: string): string {
  return `${TELEMETRY_PREFIX}.${service}.${instance}`;
}

/** Every subject of stream MESH_ACCESS. */
export const ACCESS_SUBJECTS = `${ACCESS_PREFIX}.>`;

/**
 * `mesh.access.<destination>.<source>.<direction>`: access records of calls to
 * `destination`, so `mesh.access.<service>.>` holds every call to a service
 * whichever side logged it. In secure mode the sidecar of `frontend` may
 * publish to `mesh.access.*.frontend.outbound` and `mesh.access.frontend.*.inbound`.
 */
export function accessSubject(destination: string, source: string, direction: "outbound" | "inbound"): string {
  return `${ACCESS_PREFIX}.${destination}.${source}.${direction}`;
}

/** The subject filter for calls to `destination` and/or from `source` (absent = any). */
export function accessFilter(destination?: string, source?: string): string {
  if (!destination && !source) return ACCESS_SUBJECTS;
  return `${ACCESS_PREFIX}.${destination || "*"}.${source || "*"}.*`;
}

/** Prefix of the inboxes nats.js creates unless a connection sets its own. */
export const SHARED_INBOX_PREFIX = "_INBOX";

/**
 * The private inbox prefix of a service's sidecar, `_INBOX.<service>`: in
 * secure mode a sidecar may subscribe only below it, so no other service can
 * read the replies it receives.
 */
export function inboxPrefixFor(service: string): string {
  return `${SHARED_INBOX_PREFIX}.${service}`;
}
