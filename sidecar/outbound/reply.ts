import { validateHeaderName, validateHeaderValue } from "node:http";
import type { Msg } from "@nats-io/transport-node";
import { HOP_BY_HOP, HttpHeader, StreamWire, Wire, replyStatus } from "../../schemas/index.ts";
import { MeshError } from "../errors.ts";

/**
 * A provider's reply as the caller's application will get it. The provider
 * may be anything that can answer on the request's inbox, so nothing it says
 * about framing is believed: the length is the length of the bytes written,
 * framing and hop-by-hop headers are dropped whatever their case, and a
 * status or header Node could not write (or that would change the
 * connection, like 101) makes the whole reply a `bad_response`. The status is
 * read by schemas/outcome.ts `replyStatus`, the same parse `classify` makes. Pure, so
 * unit-tested without sockets.
 */
export interface FramedReply {
  status: number;
  /** `[name, value, ...]` for writeHead, `content-length` included where a body may be */
  headers: string[];
  body: Uint8Array;
}

/** Set by the caller's sidecar from the mesh fields, never copied from a provider's headers. */
const SIDECAR_OWNED = new Set<string>(["content-length", HttpHeader.meshError, HttpHeader.servedBy]);

function dropped(name: string, connectionTokens: ReadonlySet<string>): boolean {
  return HOP_BY_HOP.has(name) || SIDECAR_OWNED.has(name) || name.startsWith("proxy-") || connectionTokens.has(name);
}

/** The reply as HTTP, or a `bad_response` MeshError when it cannot be written faithfully. */
export function frameReply(reply: Msg, method: string, service: string): FramedReply | MeshError {
  const head = frameStatusAndHeaders(reply, service);
  if (head instanceof MeshError) return head;
  const { status, headers } = head;
  const h = reply.headers;
  const bodyless = method === "HEAD" || status === 204 || status === 304;
  if (!bodyless) headers.push("content-length", String(reply.data.length));
  else if (method === "HEAD" && status !== 204 && status !== 304) {
    // A HEAD answer has no body to frame: its length says what a GET would get, so one plain number may pass.
    const declared = h?.values("content-length") ?? [];
    if (declared.length === 1 && /^[0-9]{1,15}$/.test(declared[0]!)) headers.push("content-length", declared[0]!);
  }
  return { status, headers, body: bodyless ? EMPTY : reply.data };
}

/**
 * The head of an answer whose body streams. Its length is what the provider's
 * sidecar says in `@length` when its application declared one; then Node
 * checks that exactly so many bytes are written. Otherwise the body goes
 * chunked, its end marked by the stream's end.
 */
export function frameHead(head: Msg, method: string, service: string, switching = false): { status: number; headers: string[] } | MeshError {
  const framed = frameStatusAndHeaders(head, service, switching);
  if (framed instanceof MeshError) return framed;
  const length = head.headers?.get(StreamWire.length);
  if (length && /^[0-9]{1,15}$/.test(length) && method !== "HEAD") framed.headers.push("content-length", length);
  return framed;
}

/** Status and headers a provider's answer may carry to the application, framing headers left out. */
function frameStatusAndHeaders(reply: Msg, service: string, switching = false): { status: number; headers: string[] } | MeshError {
  const h = reply.headers;
  // 101 only where the request asked to switch (an upgrade), never on an ordinary answer.
  const status = switching && h?.get(Wire.status) === "101" ? 101 : replyStatus(h?.get(Wire.status));
  if (status === undefined) return badResponse(service, `status ${JSON.stringify(h?.get(Wire.status) ?? null)}`);
  const headers: string[] = [];
  if (h) {
    const tokens = new Set<string>();
    for (const name of h.keys()) {
      if (name.toLowerCase() !== "connection") continue;
      for (const v of h.values(name)) for (const t of v.split(",")) tokens.add(t.trim().toLowerCase());
    }
    for (const name of h.keys()) {
      if (name.charCodeAt(0) === 64 /* @ */) continue;
      const lower = name.toLowerCase();
      if (dropped(lower, tokens)) continue;
      for (const value of h.values(name)) {
        const problem = headerProblem(lower, value);
        if (problem) return badResponse(service, problem);
        headers.push(lower, value);
      }
    }
  }
  return { status, headers };
}

const EMPTY = new Uint8Array(0);

function headerProblem(name: string, value: string): string | undefined {
  try {
    validateHeaderName(name);
    validateHeaderValue(name, value);
    return undefined;
  } catch {
    return `header ${JSON.stringify(name.slice(0, 64))}`;
  }
}

function badResponse(service: string, what: string): MeshError {
  return new MeshError("bad_response", `'${service}' answered with an invalid ${what}`);
}
