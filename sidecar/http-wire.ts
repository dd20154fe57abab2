import type { MsgHdrs } from "@nats-io/transport-node";
import { HOP_BY_HOP, HttpHeader } from "../schemas/index.ts";
import { WireHeaders } from "./wire-headers.ts";

/**
 * Conversions between HTTP messages and NATS headers. HTTP header names are
 * lowercased on the wire; repeated headers stay repeated and in order.
 */

/**
 * Headers an application's request never carries on: the mesh sets them
 * itself, or (`expect`) the caller's sidecar answers them itself.
 */
export const MESH_OWNED: ReadonlySet<string> = new Set<string>([
  HttpHeader.caller,
  HttpHeader.requestId,
  HttpHeader.traceparent,
  HttpHeader.timeoutMs,
  HttpHeader.deadlineMs,
  HttpHeader.mirror,
  "content-length",
  "expect",
]);

/**
 * What a provider's sidecar never passes from a request on to its
 * application, whatever a caller put in the NATS headers: what the mesh owns
 * and hop-by-hop headers (compared in lower case; a well-behaved caller
 * sidecar has dropped them already).
 */
export const NOT_FOR_THE_APP: ReadonlySet<string> = new Set<string>([...MESH_OWNED, ...HOP_BY_HOP]);

/** The usual `Connection` values, which name no header besides the hop-by-hop ones dropped anyway. */
const ONLY_HOP_BY_HOP = /^\s*(keep-alive|close)\s*$/i;

/** Names listed in a `Connection` header are hop-by-hop too (RFC 9110 §7.6.1). */
function connectionTokens(rawHeaders: readonly string[]): Set<string> | undefined {
  let tokens: Set<string> | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() !== "connection" || ONLY_HOP_BY_HOP.test(rawHeaders[i + 1]!)) continue;
    tokens ??= new Set();
    for (const token of rawHeaders[i + 1]!.split(",")) tokens.add(token.trim().toLowerCase());
  }
  return tokens;
}

/**
 * Copies an application's request headers (Node's flat `rawHeaders`) into
 * NATS headers, dropping hop-by-hop headers and those the mesh owns.
 */
export function requestHeadersToNats(rawHeaders: readonly string[]): MsgHdrs {
  const out = new WireHeaders();
  const hop = connectionTokens(rawHeaders);
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    if (HOP_BY_HOP.has(name) || MESH_OWNED.has(name) || hop?.has(name)) continue;
    out.append(name, rawHeaders[i + 1]!);
  }
  return out;
}

/** Copies an application's response headers (undici's record) into NATS headers. */
export function responseHeadersToNats(
  out: MsgHdrs,
  headers: Record<string, string | string[] | undefined>,
): MsgHdrs {
  const hop = headers["connection"];
  const hopTokens = hop === undefined ? undefined : connectionTokens(["connection", String(hop)]);
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || HOP_BY_HOP.has(name) || hopTokens?.has(name) || name === HttpHeader.meshError) continue;
    if (Array.isArray(value)) for (const v of value) out.append(name, v);
    else out.append(name, value);
  }
  return out;
}

/**
 * Flattens the HTTP part of NATS headers into `[name, value, name, value, ...]`,
 * the form both Node's `writeHead` and undici accept; mesh fields (`@...`) are skipped.
 */
export function natsHeadersToFlat(h: MsgHdrs | undefined, into: string[] = [], skip?: ReadonlySet<string>): string[] {
  if (!h) return into;
  if (h instanceof WireHeaders) {
    for (let i = 0; i < h.size; i++) {
      const name = h.nameAt(i);
      if (name.charCodeAt(0) !== 64 /* @ */ && !skip?.has(name.toLowerCase())) into.push(name, h.valueAt(i));
    }
    return into;
  }
  for (const name of h.keys()) {
    if (name.charCodeAt(0) === 64 /* @ */ || skip?.has(name.toLowerCase())) continue;
    for (const value of h.values(name)) into.push(name, value);
  }
  return into;
}
