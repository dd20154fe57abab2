// Who may do what on NATS in secure mode, as plain data: the two accounts,
// what control's account exports to the sidecars' account, the permissions
// of each identity `mesh creds` writes, and the nats-server `accounts` block
// that carries them. Pure functions, so the whole grant is unit-testable and
// reviewed in one place; test/security.test.ts attacks it on a real
// nats-server (2.9 syntax). docs/security.md explains every line.
import {
  ACCESS_PREFIX,
  CTL_PREFIX,
  JS_API,
  KV_CHANGES_PREFIX,
  MESH_JS_API,
  POLICY_BUCKETS,
  READABLE_BUCKETS,
  REGISTRY_BUCKET,
  RPC_PREFIX,
  TELEMETRY_PREFIX,
  accessSubject,
  inboxPrefixFor,
  isServiceName,
  kvChangesSubject,
  kvStream,
  rpcSubject,
  sidecarVerbSubjects,
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
 * message whose reply subject is anything, so it would void every publish
 * grant below. Sidecars answer on `_INBOX.<caller>.<token>.<themselves>`
 * instead (schemas/subjects.ts).
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
/** The user an edge site's leaf node connects to the hub as (docs/multi-region.md "Leaf nodes in secure mode"). */
export const LEAF_IDENTITY = "leaf";
export const RESERVED_IDENTITIES: readonly string[] = Object.freeze([CONTROL_IDENTITY, ADMIN_IDENTITY, LEAF_IDENTITY]);

/**
 * The two accounts. `CONTROL` holds JetStream (every bucket and stream) and
 * control alone; `MESH` holds the sidecars and the CLI, has no JetStream, and
 * reaches control's account only through the imports below. A reply subject
 * is never permission-checked, so whatever JetStream answers or delivers for
 * a client must not be able to land in a stream: across an import the server
 * maps replies into the importer's account, where no stream exists.
 */
export const CONTROL_ACCOUNT = "CONTROL";
export const MESH_ACCOUNT = "MESH";
/**
 * nats-server requires a system account once gateways and leaf nodes are both
 * configured; one without users changes nothing for clients.
 */
export const SYSTEM_ACCOUNT = "SYS";

/** The two read-only JetStream calls on each readable bucket's stream (after `$JS.API.`). */
const READABLE_JS_CALLS = READABLE_BUCKETS.flatMap((bucket) => {
  const stream = kvStream(bucket);
  return [`DIRECT.GET.${stream}`, `DIRECT.GET.${stream}.>`, `STREAM.INFO.${stream}`];
});

/** One service control's account exports, and the subject the sidecars' account imports it under. */
export interface ServiceShare {
  /** in control's account */
  subject: string;
  /** in the sidecars' account; absent: the same */
  as?: string;
}

/**
 * What the sidecars' account may reach of control's. Services (requests and
 * one answer each): the verbs sidecars use (quota leases, registry
 * heartbeats, key listings), telemetry, access records into stream MESH_ACCESS, and two
 * read-only JetStream calls on the KV streams, under `$JS.mesh.API` because
 * an account without JetStream answers `$JS.API.>` itself. Streams (one
 * way): the changes JetStream republishes. The admin verbs are not
 * exported: the CLI is in control's account, so nothing in the sidecars'
 * account (nor what a leaf node carries into it) can reach them.
 */
export function controlExports(): { services: ServiceShare[]; streams: string[] } {
  const js = READABLE_JS_CALLS.map((api) => ({ subject: `${JS_API}.${api}`, as: `${MESH_JS_API}.${api}` }));
  return {
    services: [...sidecarVerbSubjects("*").map((subject) => ({ subject })), { subject: `${TELEMETRY_PREFIX}.>` }, { subject: `${ACCESS_PREFIX}.>` }, ...js],
    streams: [`${KV_CHANGES_PREFIX}.>`],
  };
}

/** The read-only JetStream calls on the readable buckets, as the sidecars' account publishes them. */
function readableJsApi(): string[] {
  return READABLE_JS_CALLS.map((api) => `${MESH_JS_API}.${api}`);
}

/** A problem with an identity name, or undefined when `mesh creds` may write it. */
export function checkIdentity(service: string): string | undefined {
  if (!isServiceName(service)) return `'${service}' is not a service name (lowercase letters, digits and '-', at most 63)`;
  if (RESERVED_IDENTITIES.includes(service)) return `'${service}' is reserved for the ${service} identity`;
  return undefined;
}

/**
 * A service's sidecar, in the sidecars' account: it calls as itself only,
 * answers and streams to inboxes only as itself, serves only its own
 * requests, reads the policy buckets and the registry (itself, or through
 * control while their home is gone), and reports only its own telemetry,
 * access records, quota leases and registry entries. It cannot create a
 * consumer or write any bucket.
 */
export function sidecarPermissions(service: string): UserPermissions {
  const problem = checkIdentity(service);
  if (problem) throw new RangeError(problem);
  return sidecarGrant(service);
}

/** What `sidecarPermissions` grants, for a service name or `*` (any service: the leaf link). */
function sidecarGrant(service: string): UserPermissions {
  return {
    publish: {
      allow: [
        // The caller is the last token (also of `mesh.rpc.<s>.~<instance>.<caller>`):
        // this grant is what makes the caller in a subject true.
        rpcSubject("*", "*", service),
        // To another sidecar's inbox only as itself: answers, stream chunks and credits.
        `${inboxPrefixFor("*")}.*.${service}`,
        telemetrySubject(service, "*"),
        // Access records as the caller of its outbound calls and the provider of its inbound ones.
        accessSubject("*", service, "outbound"),
        accessSubject(service, "*", "inbound"),
        // Leases of its own quota, heartbeats of its own instances, and control's listing of the
        // readable buckets' keys when it cannot list them itself (the mirrors' STREAM.INFO is not
        // imported: docs/security.md), queued by control apart from every other service's.
        ...sidecarVerbSubjects(service),
        ...readableJsApi(),
      ],
    },
    subscribe: {
      allow: [
        `${RPC_PREFIX}.${service}.>`,
        `${inboxPrefixFor(service)}.>`,
        kvChangesSubject(POLICY_BUCKETS.Route),
        kvChangesSubject(POLICY_BUCKETS.Authz),
        kvChangesSubject(POLICY_BUCKETS.Quota, service),
        kvChangesSubject(REGISTRY_BUCKET),
      ],
    },
  };
}

/**
 * Control, in its account with the CLI: serves the verbs, owns every bucket
 * and stream. It answers requests that came through the import on the reply
 * subjects the server made for them (`_R_.…`), and the CLI's on its inbox.
 */
export function controlPermissions(): UserPermissions {
  const inbox = `${inboxPrefixFor(CONTROL_IDENTITY)}.>`;
  return {
    publish: { allow: ["mesh.>", `${JS_API}.>`, "$JS.FC.>", "$JS.ACK.>", "$KV.>", inbox, "_R_.>", `${inboxPrefixFor(ADMIN_IDENTITY)}.>`] },
    subscribe: { allow: ["mesh.>", inbox] },
  };
}

/**
 * The `mesh` CLI, in control's account: talks to control only (`mesh logs` too, through control),
 * never on the subjects a sidecar speaks on as itself (its requests would wait in that service's queue).
 */
export function adminPermissions(): UserPermissions {
  return {
    publish: { allow: [`${CTL_PREFIX}.>`], deny: sidecarVerbSubjects(">") },
    subscribe: { allow: [`${inboxPrefixFor(ADMIN_IDENTITY)}.>`] },
  };
}

/**
 * An edge site's leaf node, in the sidecars' account at the hub: what a
 * sidecar may send and receive, for any service. The leaf node holds each
 * sidecar's own permissions (leaf-auth.conf) and checks its clients against
 * them; this grant bounds what the leaf node itself could carry if it were
 * taken over: sidecar subjects as any service, never an admin verb and
 * never control's account. Over a leaf connection `publish` is what the
 * leaf sends to the hub, `subscribe` what the hub sends to the leaf.
 */
export function leafLinkPermissions(): UserPermissions {
  return sidecarGrant("*");
}

/** Permissions of an identity by its name. */
export function permissionsFor(identity: string): UserPermissions {
  if (identity === CONTROL_IDENTITY) return controlPermissions();
  if (identity === ADMIN_IDENTITY) return adminPermissions();
  return sidecarPermissions(identity);
}

/** The inbox prefix an identity's connections use: its permissions allow no other. */
export function inboxPrefixOf(identity: string): string {
  return identity === CONTROL_IDENTITY || identity === ADMIN_IDENTITY ? inboxPrefixFor(identity) : `${inboxPrefixFor(identity)}.c`;
}

function describe(identity: string): string {
  if (identity === CONTROL_IDENTITY) return "the control service (mesh control)";
  if (identity === ADMIN_IDENTITY) return "the mesh CLI: talks to control only";
  return `the sidecar of service '${identity}'`;
}

const q = (s: string) => JSON.stringify(s);

/** One subject per line: auth.conf is read by people reviewing who may do what. */
function renderList(key: string, subjects: readonly string[], indent: string): string[] {
  return [`${indent}${key}: [`, ...subjects.map((s) => `${indent}  ${q(s)}`), `${indent}]`];
}

function renderRule(name: string, rule: SubjectRule, indent: string): string[] {
  const inner = `${indent}  `;
  const deny = rule.deny?.length ? renderList("deny", rule.deny, inner) : [];
  return [`${indent}${name}: {`, ...renderList("allow", rule.allow, inner), ...deny, `${indent}}`];
}

function renderPermissions(p: UserPermissions, indent: string): string[] {
  return [`${indent}permissions: {`, ...renderRule("publish", p.publish, `${indent}  `), ...renderRule("subscribe", p.subscribe, `${indent}  `), `${indent}}`];
}

function renderUser(user: AuthUser, indent: string): string {
  return [`${indent}# ${user.identity}: ${describe(user.identity)}`, `${indent}{ nkey: ${user.nkey}`, ...renderPermissions(user.permissions, `${indent}  `), `${indent}}`].join("\n");
}

/** The leaf link's user: a password (bcrypt-hashed here), for leaf connections only. */
function renderLeafLinkUser(passwordHash: string, indent: string): string {
  return [
    `${indent}# ${LEAF_IDENTITY}: the leaf nodes of edge sites (docs/multi-region.md); password in ${LEAF_IDENTITY}.secret`,
    `${indent}{ user: ${LEAF_IDENTITY}, password: ${q(passwordHash)}, allowed_connection_types: ["LEAFNODE"]`,
    ...renderPermissions(leafLinkPermissions(), `${indent}  `),
    `${indent}}`,
  ].join("\n");
}

const HEADER = [
  "# Generated by `mesh creds`: one nkey user per mesh identity. Regenerated on",
  "# every run; edit the command, not this file. Give each process its seed file",
  "# with --creds (env NATS_CREDS). Why each line is here: docs/security.md.",
];

/** Every account block ends with the system account, which gateways together with leaf nodes require. */
const SYSTEM_ACCOUNT_LINES = [`  # the system account: no users (gateways with leaf nodes require one)`, `  ${SYSTEM_ACCOUNT}: {}`];

/**
 * The `accounts` block of nats-server (2.9+) for these users, for every
 * server of the mesh's clusters; a server that includes it refuses every
 * client without one of their keys (there is no `no_auth_user`). Subjects
 * are quoted: `$` would start a variable. `leafLinkHash`: the bcrypt hash of
 * the leaf link's password, which lets edge sites' leaf nodes connect.
 */
export function renderAuthConf(users: readonly AuthUser[], leafLinkHash?: string): string {
  const inControl = users.filter((u) => u.identity === CONTROL_IDENTITY || u.identity === ADMIN_IDENTITY);
  const inMesh = users.filter((u) => !inControl.includes(u));
  const { services, streams } = controlExports();
  const exports = [...services.map((s) => `      { service: ${q(s.subject)} }`), ...streams.map((s) => `      { stream: ${q(s)} }`)];
  const imports = [
    ...services.map((s) => `      { service: { account: ${CONTROL_ACCOUNT}, subject: ${q(s.subject)} }${s.as ? `, to: ${q(s.as)}` : ""} }`),
    ...streams.map((s) => `      { stream: { account: ${CONTROL_ACCOUNT}, subject: ${q(s)} } }`),
  ];
  const meshUsers = [...inMesh.map((u) => renderUser(u, "      ")), ...(leafLinkHash ? [renderLeafLinkUser(leafLinkHash, "      ")] : [])];
  return [
    ...HEADER,
    "# For the servers of the mesh's clusters: include it from nats.conf with",
    "#   include ./auth.conf",
    "# (an edge site's leaf node includes leaf-auth.conf instead).",
    "accounts {",
    `  # control's: every bucket and stream, control, and the CLI, which talks to control only.`,
    `  ${CONTROL_ACCOUNT}: {`,
    "    jetstream: enabled",
    "    users: [",
    inControl.map((u) => renderUser(u, "      ")).join("\n"),
    "    ]",
    "    exports: [",
    ...exports,
    "    ]",
    "  }",
    `  # the sidecars: no JetStream; control's account only through these imports.`,
    `  ${MESH_ACCOUNT}: {`,
    "    users: [",
    meshUsers.join("\n"),
    "    ]",
    "    imports: [",
    ...imports,
    "    ]",
    "  }",
    ...SYSTEM_ACCOUNT_LINES,
    "}",
    `system_account: ${SYSTEM_ACCOUNT}`,
    "",
  ].join("\n");
}

/**
 * The `accounts` block of an edge site's leaf node: the same sidecar users
 * with the same permissions, checked by the leaf node itself, in a
 * sidecars' account without imports. What they send to control's account
 * crosses the leaf connection (bound to the hub's sidecars' account) and is
 * imported there. Control and the CLI connect to the hub's clusters only:
 * the leaf link carries no admin verb.
 */
export function renderLeafAuthConf(users: readonly AuthUser[]): string {
  const inMesh = users.filter((u) => !RESERVED_IDENTITIES.includes(u.identity));
  return [
    ...HEADER,
    "# For the leaf node of an edge site: include it from its config with",
    "#   include ./leaf-auth.conf",
    `# and bind its leaf remote to ${MESH_ACCOUNT} as user ${LEAF_IDENTITY} (docs/multi-region.md).`,
    "accounts {",
    `  # the sidecars of this site; control's account is reached at the hub, across the leaf connection.`,
    `  ${MESH_ACCOUNT}: {`,
    "    users: [",
    inMesh.map((u) => renderUser(u, "      ")).join("\n"),
    "    ]",
    "  }",
    ...SYSTEM_ACCOUNT_LINES,
    "}",
    `system_account: ${SYSTEM_ACCOUNT}`,
    "",
  ].join("\n");
}
