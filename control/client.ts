import { connect, RequestError, TimeoutError, type NatsConnection } from "@nats-io/transport-node";
import {
  Defaults,
  authenticatorFromFile,
  ctlSubject,
  inboxPrefixFor,
  formatProblem, type ControlErrorBody, type ControlReplies, type ControlRequests, type ControlVerb } from "../schemas/index.ts";

/** Exit codes of every CLI command (DESIGN §2). */
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

/** A short-lived connection for one CLI command: fails fast instead of retrying. */
export async function connectCli(flags: NatsFlags): Promise<NatsConnection> {
  const servers = natsServers(flags);
  const creds = flags.creds ?? process.env.NATS_CREDS;
  try {
    return await connect({
      servers,
      name: "mesh-cli",
      // The CLI's own inboxes: in secure mode the admin identity may read no others.
      inboxPrefix: inboxPrefixFor("admin"),
      noAsyncTraces: true,
      timeout: 3_000,
      maxReconnectAttempts: 0,
      ...(creds ? { authenticator: await authenticatorFromFile(creds) } : {}),
    });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT" || /neither NATS creds/.test((err as Error).message)) {
      throw new CliError(Exit.usage, `--creds: ${(err as Error).message}`);
    }
    throw new CliError(Exit.unreachable, `cannot reach NATS at ${servers.join(",")}: ${(err as Error).message}`);
  }
}

/** One control request; control's own rejections become exit 1, silence exit 3. */
export async function controlRequest<V extends ControlVerb>(
  nc: NatsConnection,
  verb: V,
  body: ControlRequests[V],
  timeoutMs = 10_000,
): Promise<ControlReplies[V]> {
  let reply;
  try {
    reply = await nc.request(ctlSubject(verb), JSON.stringify(body), { timeout: timeoutMs });
  } catch (err) {
    if (err instanceof RequestError && err.isNoResponders()) {
      throw new CliError(Exit.unreachable, `control unreachable: nobody serves ${ctlSubject(verb)} (is 'mesh control' running?)`);
    }
    if (err instanceof TimeoutError || (err as Error)?.cause instanceof TimeoutError) {
      throw new CliError(Exit.unreachable, `control did not answer ${ctlSubject(verb)} within ${timeoutMs} ms`);
    }
    throw new CliError(Exit.unreachable, `control request failed: ${(err as Error).message}`);
  }
  const parsed = reply.json<{ ok: true } & ControlReplies[V] | { ok: false; error: ControlErrorBody }>();
  if (parsed.ok) return parsed;
  const { error } = parsed;
  const problems = (error.problems ?? []).map(formatProblem);
  throw new CliError(error.code === "rejected" || error.code === "not_found" || error.code === "conflict" ? Exit.rejected : Exit.unreachable, error.message, problems);
}
