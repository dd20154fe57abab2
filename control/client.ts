import { RequestError, TimeoutError, type NatsConnection } from "@nats-io/transport-node";
import {
  checkControlReply,
  ctlSubject,
  formatProblem,
  formatProblems,
  type ControlErrorBody,
  type ControlReplies,
  type ControlRequests,
  type ControlVerb,
} from "../schemas/index.ts";

/** How much control keeps, for clients to say so: KV history per policy key, and the longest `stats` window. */
export { POLICY_HISTORY } from "./buckets.ts";
export { RECENT_MAX_WINDOW_MS } from "./recent-traffic.ts";

/**
 * How to talk to control over NATS (`mesh.ctl.v1.<verb>`), for the CLI, the
 * local mesh and embedders: one request, its typed reply, or a typed failure.
 */

/**
 * How long a request keeps trying while nobody serves its verb: a control
 * replica that just (re)started on another node is already serving, but its
 * queue interest takes a moment to cross the routes.
 */
export const NO_RESPONDERS_GRACE_MS = 2_000;
const NO_RESPONDERS_RETRY_MS = 100;

/** Control could not be asked, or did not answer, or answered with something that is not a reply of the verb (control-<verb>-reply.schema.json, control-error.schema.json). */
export class ControlUnreachableError extends Error {}

/** Control answered with an error: `code` is its stable code (rejected, not_found, conflict, ...). */
export class ControlRefusedError extends Error {
  constructor(
    readonly code: ControlErrorBody["code"],
    message: string,
    /** `path: message` per problem, for rejected documents */
    readonly problems: string[],
  ) {
    super(message);
  }
}

/** One request to control. Throws ControlUnreachableError or ControlRefusedError. */
export async function requestControl<V extends ControlVerb>(nc: NatsConnection, verb: V, body: ControlRequests[V], timeoutMs = 10_000): Promise<ControlReplies[V]> {
  const giveUpAt = Date.now() + NO_RESPONDERS_GRACE_MS;
  for (;;) {
    let reply;
    try {
      reply = await nc.request(ctlSubject(verb), JSON.stringify(body), { timeout: timeoutMs });
    } catch (err) {
      if (err instanceof RequestError && err.isNoResponders() && Date.now() < giveUpAt) {
        await new Promise((r) => setTimeout(r, NO_RESPONDERS_RETRY_MS));
        continue;
      }
      throw unreachable(err, verb, timeoutMs);
    }
    const checked = checkControlReply(verb, parseJson(reply.data));
    if (!checked.ok) throw new ControlUnreachableError(`control answered ${ctlSubject(verb)} with an invalid reply: ${formatProblems(checked.problems)}`);
    const parsed = checked.value;
    if (parsed.ok) return parsed;
    throw new ControlRefusedError(parsed.error.code, parsed.error.message, (parsed.error.problems ?? []).map(formatProblem));
  }
}

/** The parsed JSON, or undefined when the data is not JSON (which no reply schema accepts). */
function parseJson(data: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(data));
  } catch {
    return undefined;
  }
}

function unreachable(err: unknown, verb: ControlVerb, timeoutMs: number): ControlUnreachableError {
  if (err instanceof RequestError && err.isNoResponders()) {
    return new ControlUnreachableError(`control unreachable: nobody serves ${ctlSubject(verb)} (is 'mesh control' running?)`, { cause: err });
  }
  if (err instanceof TimeoutError || (err as Error)?.cause instanceof TimeoutError) {
    return new ControlUnreachableError(`control did not answer ${ctlSubject(verb)} within ${timeoutMs} ms`, { cause: err });
  }
  return new ControlUnreachableError(`control request failed: ${(err as Error).message}`, { cause: err });
}
