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

/**
 * `mesh.ctl.v1.register.<service>`: a provider sidecar's registry heartbeat
 * (and its removal when it drains). Control writes the entry; the service in
 * the subject is what secure mode pins a sidecar to, as for quota leases.
 */
export function registerSubject(service: string): string {
  return `${CTL_PREFIX}.register.${service}`;
}

/**
 * `mesh.ctl.v1.keys.<service>`: a sidecar asks control for the keys of a
 * bucket it reads, when it cannot list them itself (the buckets' home is
 * gone; docs/multi-region.md). The service is the sender's, as for quota
 * leases: secure mode lets a sidecar publish on its own only, and control
 * queues each subject apart, so one flooding key delays nobody else.
 */
export function keysSubject(service: string): string {
  return `${CTL_PREFIX}.keys.${service}`;
}

/**
 * The verbs a sidecar sends as itself, on `mesh.ctl.v1.<verb>.<service>`:
 * secure mode grants each sidecar its own subjects of them, exports them to
 * the sidecars' account and keeps the CLI off them; control serves them
 * there and queues them per service.
 */
export const SIDECAR_VERBS = ["quota", "register", "keys"] as const;

/** `mesh.ctl.v1.<verb>.<service>` of every sidecar verb, for a service name or a wildcard. */
export function sidecarVerbSubjects(service: string): string[] {
  return SIDECAR_VERBS.map((verb) => `${CTL_PREFIX}.${verb}.${service}`);
}

/** The JetStream API of the account a client is in. */
export const JS_API = "$JS.API";
/**
 * Where secure mode's `MESH` account (sidecars, the CLI) imports the few
 * read-only JetStream calls of control's account: direct gets and stream
 * info of the KV buckets. A distinct prefix, because an account without
 * JetStream answers `$JS.API.>` itself with "JetStream not enabled".
 */
export const MESH_JS_API = "$JS.mesh.API";

/** The stream that holds KV bucket `bucket`. */
export function kvStream(bucket: string): string {
  return `KV_${bucket}`;
}

/**
 * The mirror of KV bucket `bucket` in region (NATS cluster) `region`: it
 * answers the bucket's direct gets in that region and lists its keys while
 * the bucket's home cluster is gone (docs/multi-region.md). Not `KV_...`, so
 * no KV client takes it for a bucket.
 */
export function kvMirrorStream(bucket: string, region: string): string {
  return `MIRROR_${region}_${bucket}`;
}

export const KV_CHANGES_PREFIX = "mesh.kv";

/**
 * `mesh.kv.<bucket>.<key>`: JetStream republishes every write to a mesh
 * bucket here (core NATS), so sidecars follow changes without creating
 * consumers. For policy buckets the message carries headers only: it names
 * the revision, which the sidecar reads from the stream itself with a direct
 * get, so a replayed or reflected message cannot make it apply a value the
 * stream does not hold under that key, nor an older revision than it has.
 */
export function kvChangesSubject(bucket: string, key = ">"): string {
  return `${KV_CHANGES_PREFIX}.${bucket}.${key}`;
}

/** Prefix of the inboxes nats.js creates unless a connection sets its own. */
export const SHARED_INBOX_PREFIX = "_INBOX";

/**
 * The private inbox of a service's sidecar, `_INBOX.<service>`: in secure
 * mode a sidecar may subscribe only below it, so no other service can read
 * the replies it receives.
 *
 * Below it:
 * - `_INBOX.<service>.<token>`: the reply subject of a mesh request (the
 *   token is 128 bits from a CSPRNG, so nobody who did not receive the
 *   request can name it);
 * - `_INBOX.<service>.<token>.<sender>`: what a sidecar publishes to that
 *   inbox (an answer, a stream's chunks). Secure mode lets the sidecar of
 *   `S` publish to inboxes only as `_INBOX.*.*.S`, so the last token says
 *   who sent it and the receiver checks it is whom it asked;
 * - `_INBOX.<service>.c.…`: nats.js's own requests (control, JetStream).
 */
export function inboxPrefixFor(service: string): string {
  return `${SHARED_INBOX_PREFIX}.${service}`;
}

/** Where nats.js keeps a sidecar's own request inboxes (control verbs, direct gets). */
export function clientInboxPrefix(service: string): string {
  return `${inboxPrefixFor(service)}.c`;
}

/** `<reply>.<sender>`: how a sidecar answers a mesh request, or writes to a stream's inbox. */
export function signedSubject(inbox: string, sender: string): string {
  return `${inbox}.${sender}`;
}

/** Whether `reply` is a mesh reply subject of `caller`'s sidecar: `_INBOX.<caller>.<token>`, nothing more. */
export function isReplyOf(reply: string | undefined, caller: string): reply is string {
  const prefix = `${SHARED_INBOX_PREFIX}.${caller}.`;
  return reply !== undefined && reply.startsWith(prefix) && reply.length > prefix.length && reply.indexOf(".", prefix.length) === -1;
}
