// Who may do what on NATS in secure mode, as plain data: the permissions of
// each identity `mesh creds` writes, and the nats-server `authorization`
// block that carries them. Pure functions, so the permission set is
// unit-testable and reviewed in one place; test/security.test.ts proves it
// against a real nats-server (2.9 syntax).
import {
  ACCESS_STREAM,
  CTL_PREFIX,
  POLICY_BUCKETS,
  REGISTRY_BUCKET,
  RPC_PREFIX,
  SHARED_INBOX_PREFIX,
  accessSubject,
  inboxPrefixFor,
  isServiceName,
  quotaLeaseSubject,
  registryKey,
  rpcSubject,
  telemetrySubject,
} from "../schemas/index.ts";

/** nats-server subject permissions: what is not allowed is denied; deny wins over allow. */
export interface SubjectRule {
  allow: string[];
  deny?: string[];
}

/**
 * No identity gets `allow_responses`: it lets a client publish once to the
 * reply subject of any message it receives, and a client can send itself a
 * message whose reply subject is anything (`mesh.rpc.orders._.frontend`,
 * `mesh.ctl.v1.apply`), so it would void every publish grant below.
 * Providers answer on `_INBOX.>` instead (test/security.test.ts proves both).
 */
export interface UserPermissions {
  publish: SubjectRule;
  subscribe: SubjectRule;
}

export interface AuthUser {
  /** identity file name without `.nk`: a service name, `control` or `admin` */
  identity: string;
  /** the user's public nkey (U...) */
  nkey: string;
  permissions: UserPermissions;
}

/** Identities that are not services; a service may not take their names (their `.nk` files would clash). */
export const CONTROL_IDENTITY = "control";
export const ADMIN_IDENTITY = "admin";
export const RESERVED_IDENTITIES: readonly string[] = Object.freeze([CONTROL_IDENTITY, ADMIN_IDENTITY]);


const JS_API = "$JS.API";
const kvStream = (bucket: string) => `KV_${bucket}`;
const POLICY_STREAMS = Object.values(POLICY_BUCKETS).map(kvStream);
const REGISTRY_STREAM = kvStream(REGISTRY_BUCKET);

/** A problem with an identity name, or undefined when `mesh creds` may write it. */
export function checkIdentity(service: string): string | undefined {
  if (!isServiceName(service)) return `'${service}' is not a service name (lowercase letters, digits and '-', at most 63)`;
  if (RESERVED_IDENTITIES.includes(service)) return `'${service}' is reserved for the ${service} identity`;
  return undefined;
}

/**
 * What nats.js 3.4 sends to read a KV bucket with `Kvm.open`, `status`,
 * `keys`, `get` and `watch` (ordered push consumers), and nothing that
 * changes the bucket:
 * - `STREAM.INFO.<stream>`: `kv.status()` (the sidecar's "does the bucket exist").
 * - `CONSUMER.CREATE.<stream>.>`: `keys()` and `watch()` create an ordered
 *   consumer; with server 2.9+ the subject carries the consumer name and the
 *   filter (`...CREATE.KV_x.<name>.$KV.x.<key>`), and a stall or a gap
 *   re-creates it under a new name.
 * - `CONSUMER.INFO.<stream>.*`: pending counts after creating it.
 * - `CONSUMER.DELETE.<stream>.*`: an ordered consumer deletes its old
 *   incarnation when it resets (they also expire by themselves).
 * - `DIRECT.GET.<stream>.>`: `kv.get(key)` on buckets with allow_direct
 *   (every bucket control makes on 2.9+): the key's subject is appended, so
 *   the grant could even be narrowed per key.
 * - `STREAM.MSG.GET.<stream>`: the same get on a bucket made without allow_direct.
 * - `$JS.FC.<stream>.>`: flow-control answers of the ordered consumer (to
 *   the reply subject of a flow-control message, or to the subject a stalled
 *   consumer names in a header).
 */
export function kvReadSubjects(stream: string): string[] {
  return [
    `${JS_API}.STREAM.INFO.${stream}`,
    `${JS_API}.CONSUMER.CREATE.${stream}.>`,
    `${JS_API}.CONSUMER.INFO.${stream}.*`,
    `${JS_API}.CONSUMER.DELETE.${stream}.*`,
    `${JS_API}.DIRECT.GET.${stream}.>`,
    `${JS_API}.STREAM.MSG.GET.${stream}`,
    `$JS.FC.${stream}.>`,
  ];
}

export interface SidecarPermissionOptions {
  /**
   * The prefix of the sidecar's inboxes (its requests' replies, its KV
   * watches' deliveries). With the default, `_INBOX`, every sidecar may
   * subscribe to `_INBOX.>` and so could read the replies other services
   * receive; a sidecar connected with `inboxPrefix: inboxPrefixFor(service)`
   * can be held to its own inboxes.
   */
  inboxPrefix?: string;
}

export { SHARED_INBOX_PREFIX, inboxPrefixFor };

/**
 * A service's sidecar: it calls as itself only, serves only its own
 * requests, reads every policy bucket and the registry, and writes only its
 * own registry entries, telemetry and access logs.
 */
export function sidecarPermissions(service: string, opts: SidecarPermissionOptions = {}): UserPermissions {
  const problem = checkIdentity(service);
  if (problem) throw new RangeError(problem);
  const inbox = opts.inboxPrefix ?? SHARED_INBOX_PREFIX;
  return {
    publish: {
      allow: [
        // The caller is the last token (also of `mesh.rpc.<s>.~<instance>.<caller>`):
        // this grant is what makes the caller in a subject true.
        rpcSubject("*", "*", service),
        // Answers to the requests it serves; callers' reply subjects are inboxes.
        `${SHARED_INBOX_PREFIX}.>`,
        telemetrySubject(service, "*"),
        // Access records as the caller of its outbound calls and the provider of its inbound ones.
        accessSubject("*", service, "outbound"),
        accessSubject(service, "*", "inbound"),
        // Leases of its own quota only.
        quotaLeaseSubject(service),
        ...[...POLICY_STREAMS, REGISTRY_STREAM].flatMap(kvReadSubjects),
        // Its own registry entries: put (heartbeat) and delete (drain).
        `$KV.${REGISTRY_BUCKET}.${registryKey(service, "*")}`,
      ],
    },
    subscribe: { allow: [`${RPC_PREFIX}.${service}.>`, `${inbox}.>`] },
  };
}

/** Control: serves `mesh.ctl.v1.>`, creates and writes every bucket, reads telemetry and access logs. */
export function controlPermissions(): UserPermissions {
  return {
    publish: { allow: ["mesh.>", "$JS.API.>", "$JS.FC.>", "$JS.ACK.>", "$KV.>", `${SHARED_INBOX_PREFIX}.>`] },
    subscribe: { allow: ["mesh.>", `${SHARED_INBOX_PREFIX}.>`] },
  };
}

/**
 * The `mesh` CLI: talks to control only, and reads the access-log stream
 * (`mesh logs`: an ordered pull consumer) without changing it. It takes no
 * quota leases.
 */
export function adminPermissions(): UserPermissions {
  return {
    publish: {
      allow: [
        `${CTL_PREFIX}.>`,
        ...kvReadSubjects(ACCESS_STREAM),
        // Pull consumers fetch with MSG.NEXT and may be created without a name on older servers.
        `${JS_API}.CONSUMER.CREATE.${ACCESS_STREAM}`,
        `${JS_API}.CONSUMER.MSG.NEXT.${ACCESS_STREAM}.*`,
      ],
      deny: [quotaLeaseSubject(">")],
    },
    subscribe: { allow: [`${SHARED_INBOX_PREFIX}.>`] },
  };
}

/** Permissions of an identity by its name. */
export function permissionsFor(identity: string, opts: SidecarPermissionOptions = { inboxPrefix: inboxPrefixFor(identity) }): UserPermissions {
  if (identity === CONTROL_IDENTITY) return controlPermissions();
  if (identity === ADMIN_IDENTITY) return adminPermissions();
  return sidecarPermissions(identity, opts);
}

function describe(identity: string): string {
  if (identity === CONTROL_IDENTITY) return "the control service (mesh control)";
  if (identity === ADMIN_IDENTITY) return "the mesh CLI: talks to control only";
  return `the sidecar of service '${identity}'`;
}

/** One subject per line: auth.conf is read by people reviewing who may do what. */
function renderList(key: string, subjects: readonly string[], indent: string): string[] {
  return [`${indent}${key}: [`, ...subjects.map((s) => `${indent}  ${JSON.stringify(s)}`), `${indent}]`];
}

function renderRule(name: string, rule: SubjectRule): string[] {
  const indent = "          ";
  const deny = rule.deny?.length ? renderList("deny", rule.deny, indent) : [];
  return [`        ${name}: {`, ...renderList("allow", rule.allow, indent), ...deny, "        }"];
}

function renderUser(user: AuthUser): string {
  const p = user.permissions;
  const lines = [
    `    # ${user.identity}: ${describe(user.identity)}`,
    `    { nkey: ${user.nkey}`,
    "      permissions: {",
    ...renderRule("publish", p.publish),
    ...renderRule("subscribe", p.subscribe),
    "      }",
    "    }",
  ];
  return lines.join("\n");
}

/**
 * The `authorization` block of nats-server (2.9+) for these users; a server
 * that includes it refuses every client without one of their keys (there is
 * no `no_auth_user`). Subjects are quoted: `$` would start a variable.
 */
export function renderAuthConf(users: readonly AuthUser[]): string {
  return [
    "# Generated by `mesh creds`: one nkey user per mesh identity. Regenerated on",
    "# every run; edit the command, not this file. Include it from nats.conf with",
    "#   include ./auth.conf",
    "# and give each process its seed file with --creds (env NATS_CREDS).",
    "authorization {",
    "  users = [",
    users.map(renderUser).join("\n"),
    "  ]",
    "}",
    "",
  ].join("\n");
}
