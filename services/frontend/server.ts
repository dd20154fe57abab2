// frontend: the demo shop's entry point. Calls catalog and pricing through
// the local sidecar ($MESH_OUTBOUND), addressing each by Host header.
//   GET /          -> what this is, and links
//   GET /products  -> catalog items, each priced by pricing (calls in parallel)
//   GET /ticks     -> live prices: pricing's server-sent events, relayed as they come
//   GET /healthz   -> 200
import { randomUUID } from "node:crypto";
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import { Pool } from "undici";
import { pathOf, sendJson, serve } from "../http-app.ts";

const outbound = withScheme(process.env.MESH_OUTBOUND ?? "http://127.0.0.1:15001");
// Safety net only: the mesh answers `timeout` long before these fire.
const pool = new Pool(outbound, { connections: 64, headersTimeout: 30_000, bodyTimeout: 30_000 });

/** Inbound headers copied to every outbound call (x-canary lets a route pick pricing v2). */
const FORWARDED = ["traceparent", "tracestate", "x-request-id", "x-canary"];

interface Item { id: string; name: string }
interface Price { id: string; price: number; currency: string; version: string }

/** A dependency answered with a non-2xx status, a mesh error, or not at all. */
class DependencyError extends Error {
  constructor(
    readonly dependency: string,
    readonly status: number | null,
    readonly meshError: string | null,
    message: string,
  ) {
    super(message);
  }
}

function withScheme(addr: string): string {
  return addr.includes("://") ? addr : `http://${addr}`;
}

function first(value: string | string[] | undefined): string | null {
  return (Array.isArray(value) ? value[0] : value) ?? null;
}

/** Headers for outbound calls: forwarded context plus the caller's remaining deadline. */
function outboundHeaders(inbound: IncomingHttpHeaders, requestId: string): () => Record<string, string> {
  const base: Record<string, string> = { "x-request-id": requestId };
  for (const name of FORWARDED) {
    const value = first(inbound[name]);
    if (value !== null && name !== "x-request-id") base[name] = value;
  }
  const raw = Number(first(inbound["x-mesh-deadline-ms"]) ?? NaN);
  // Accept an absolute epoch (ms) or milliseconds left; either way recompute per call.
  const deadlineAt = !Number.isFinite(raw) ? null : raw > 1e12 ? raw : Date.now() + raw;
  return () =>
    deadlineAt === null ? base : { ...base, "x-mesh-timeout-ms": String(Math.max(1, deadlineAt - Date.now())) };
}

async function call<T>(service: string, path: string, headers: Record<string, string>): Promise<{ body: T; version: string | null }> {
  let res;
  try {
    res = await pool.request({ method: "GET", path, headers: { ...headers, host: service } });
  } catch (err) {
    const code = (err as { code?: string }).code ?? String(err);
    throw new DependencyError(service, null, null, `sidecar at ${outbound} unreachable (${code})`);
  }
  const text = await res.body.text();
  const meshError = first(res.headers["mesh-error"]);
  if (res.statusCode < 200 || res.statusCode > 299) {
    let message = `'${service}' answered ${res.statusCode} to GET ${path}`;
    try {
      message = (JSON.parse(text) as { message?: string }).message ?? message;
    } catch {
      // not JSON: keep the generic message
    }
    throw new DependencyError(service, res.statusCode, meshError, message);
  }
  try {
    return { body: JSON.parse(text) as T, version: first(res.headers["x-mesh-version"]) };
  } catch {
    throw new DependencyError(service, res.statusCode, null, `'${service}' answered invalid JSON to GET ${path}`);
  }
}

async function products(inbound: IncomingHttpHeaders, requestId: string) {
  const headers = outboundHeaders(inbound, requestId);
  const catalog = await call<Item[]>("catalog", "/items", headers());
  if (!Array.isArray(catalog.body)) throw new DependencyError("catalog", 200, null, "'catalog' answered a non-list");
  const prices = await Promise.all(
    catalog.body.map((item) => call<Price>("pricing", `/prices/${encodeURIComponent(item.id)}`, headers())),
  );
  return {
    products: catalog.body.map((item, i) => {
      const p = prices[i]!.body;
      return { id: item.id, name: item.name, price: p.price, currency: p.currency, pricedBy: p.version };
    }),
    servedBy: {
      catalog: catalog.version,
      pricing: [...new Set(prices.map((p) => p.body.version ?? p.version))].sort(),
    },
    requestId,
  };
}

/** Relays pricing's event stream as it comes; leaving (either end) ends the other. */
async function ticks(req: IncomingMessage, res: ServerResponse, requestId: string): Promise<void> {
  const abort = new AbortController();
  res.on("close", () => abort.abort());
  const query = req.url?.includes("?") ? req.url.slice(req.url.indexOf("?")) : "";
  let upstream;
  try {
    upstream = await pool.request({ method: "GET", path: `/ticks${query}`, headers: { ...outboundHeaders(req.headers, requestId)(), host: "pricing" }, signal: abort.signal, bodyTimeout: 0 });
  } catch (err) {
    if (!res.headersSent) sendJson(res, 502, { error: "dependency_failed", dependency: "pricing", message: String(err), requestId });
    return;
  }
  res.writeHead(upstream.statusCode, { "content-type": first(upstream.headers["content-type"]) ?? "text/event-stream", "cache-control": "no-cache" });
  try {
    for await (const chunk of upstream.body) res.write(chunk);
    res.end();
  } catch {
    res.destroy(); // the stream broke: the client must not take a cut stream for a whole one
  }
}

serve("frontend", 8080, async (req, res) => {
  const path = pathOf(req);
  const requestId = first(req.headers["x-request-id"]) ?? randomUUID();
  if (path === "/healthz") return sendJson(res, 200, { status: "ok" });
  if (path === "/") {
    return sendJson(res, 200, {
      service: "frontend",
      description: "demo shop: lists catalog products priced by pricing, all calls through the mesh",
      links: { products: "/products", ticks: "/ticks", health: "/healthz" },
    });
  }
  if (path === "/ticks") return ticks(req, res, requestId);
  if (path !== "/products") return sendJson(res, 404, { error: "not_found", message: `no route for '${path}'` });
  try {
    sendJson(res, 200, await products(req.headers, requestId));
  } catch (err) {
    if (!(err instanceof DependencyError)) throw err;
    sendJson(res, 502, {
      error: "dependency_failed",
      dependency: err.dependency,
      status: err.status,
      meshError: err.meshError,
      message: err.message,
      requestId,
    });
  }
});
