import { basename } from "node:path";
import { connect, PermissionViolationError, type NatsConnection } from "@nats-io/transport-node";
import { Defaults, inboxPrefixFor, isServiceName, type ControlReplies, type ControlRequests, type ControlVerb } from "../schemas/index.ts";
import { ControlRefusedError, ControlUnreachableError, requestControl } from "../control/client.ts";
import { authenticatorFromFile } from "../runtime/index.ts";

/** Exit codes of every CLI command (docs/architecture.md §8). */
export const Exit = { ok: 0, rejected: 1, usage: 2, unreachable: 3 } as const;

/** A CLI failure that knows its exit code and its one-line message. */
export class CliError extends Error {
  readonly exitCode: number;
  readonly problems: string[];
  constructor(exitCode: number, message: string, problems: string[] = []) {
    super(message);
    this.exitCode = exitCode;
    this.problems = problems;
  }
}

export interface NatsFlags {
  nats?: string;
  creds?: string;
}

export function natsServers(flags: NatsFlags): string[] {
  return (flags.nats ?? process.env.NATS_URL ?? Defaults.natsUrl).split(",").map((s) => s.trim()).filter(Boolean);
}

/** The key file each CLI connection was made with, to name its identity in permission errors. */
const credsOf = new WeakMap<NatsConnection, string | undefined>();

/** A short-lived connection for one CLI command: fails fast instead of retrying. */
export async function connectCli(flags: NatsFlags): Promise<NatsConnection> {
  const servers = natsServers(flags);
  const creds = flags.creds ?? process.env.NATS_CREDS;
  try {
    const nc = await connect({
      servers,
      name: "mesh-cli",
      // The CLI's own inboxes: in secure mode the admin identity may read no others.
      inboxPrefix: inboxPrefixFor("admin"),
      noAsyncTraces: true,
      timeout: 3_000,
      maxReconnectAttempts: 0,
      ...(creds ? { authenticator: await authenticatorFromFile(creds) } : {}),
    });
    credsOf.set(nc, creds);
    return nc;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT" || /neither NATS creds/.test((err as Error).message)) {
      throw new CliError(Exit.usage, `--creds: ${(err as Error).message}`);
    }
    const refused = /Authorization Violation/i.test((err as Error).message);
    const why = !refused ? "" : creds ? ` (NATS does not accept the key in ${creds})` : " (NATS wants a key: --creds FILE or NATS_CREDS, see mesh creds)";
    throw new CliError(Exit.unreachable, `cannot reach NATS at ${servers.join(",")}: ${(err as Error).message}${why}`);
  }
}

/** Refusals that are about the input (exit 1); the others (internal, overloaded) are control's trouble (exit 3). */
const INPUT_REFUSALS: ReadonlySet<string> = new Set(["rejected", "bad_request", "not_found", "conflict"]);

/**
 * One control request; control's rejections of the input become exit 1,
 * silence, trouble on control's side and replies that do not fit the verb's
 * schema exit 3.
 */
export async function controlRequest<V extends ControlVerb>(nc: NatsConnection, verb: V, body: ControlRequests[V], timeoutMs?: number): Promise<ControlReplies[V]> {
  try {
    return await requestControl(nc, verb, body, timeoutMs);
  } catch (err) {
    if (err instanceof ControlRefusedError) {
      // A bad_request's message already lists its problems with their paths.
      const problems = err.code === "bad_request" ? [] : err.problems;
      throw new CliError(INPUT_REFUSALS.has(err.code) ? Exit.rejected : Exit.unreachable, err.message, problems);
    }
    const denied = permissionViolation(err);
    if (denied) throw new CliError(Exit.usage, permissionMessage(denied, credsOf.get(nc)));
    if (err instanceof ControlUnreachableError) throw new CliError(Exit.unreachable, err.message);
    throw err;
  }
}

function permissionViolation(err: unknown): PermissionViolationError | undefined {
  // A bound on the cause chain: nats.js nests an error or two, never more.
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) if (e instanceof PermissionViolationError) return e;
  return undefined;
}

/**
 * Which identity lacks which permission, in words (docs/cli.md): `mesh creds`
 * names a key file after its identity (`<service>.nk`, `control.nk`,
 * `admin.nk`), and only admin's may drive the CLI.
 */
export function permissionMessage(err: PermissionViolationError, creds: string | undefined): string {
  const id = creds?.endsWith(".nk") ? basename(creds, ".nk") : undefined;
  const who = id === "control" ? " (control)" : id && id !== "admin" && isServiceName(id) ? ` (sidecar '${id}')` : "";
  const identity = creds ? `the identity in ${creds}${who}` : "this connection's identity (no --creds given)";
  const action = err.operation === "publish" ? "publish to" : "subscribe to";
  return `${identity} may not ${action} ${err.subject}; use admin credentials from mesh creds (admin.nk)`;
}
