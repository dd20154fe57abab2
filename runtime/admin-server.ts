import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";

export interface Readiness {
  ready: boolean;
  /** why not, when not ready */
  reasons: string[];
}

/**
 * One endpoint of an admin listener, listed with its description at `/`
 * (docs/cli.md "Admin endpoints"). Either a JSON document (`json`) or a
 * handler of its own (`handle`: static files, server-sent events); a path
 * ending in `/` also serves every path under it.
 */
export interface AdminEndpoint {
  /** one line, shown by `/` */
  description: string;
  json?: () => unknown;
  /** answers the request; returning false means it had nothing there (answered 404) */
  handle?: (req: IncomingMessage, res: ServerResponse) => void | boolean | Promise<void | boolean>;
}

export interface AdminOptions {
  host: string;
  port: number;
  registry: Registry;
  readiness: () => Promise<Readiness>;
  /** what this process is, for `/`: e.g. `sidecar of pricing` */
  title?: string;
  /** endpoints besides the built-in ones, e.g. `/config`; more can be added with `register` */
  routes?: Record<string, AdminEndpoint>;
}

export interface AdminServer {
  server: Server;
  address: AddressInfo;
  /** adds (or replaces) an endpoint, e.g. control's `/dashboard/` */
  register(path: string, endpoint: AdminEndpoint): void;
}

function json(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

/** The endpoint for `path`: an exact match, else the longest registered `prefix/` it falls under (or is, without its slash). */
function endpointFor(endpoints: ReadonlyMap<string, AdminEndpoint>, path: string): AdminEndpoint | undefined {
  const exact = endpoints.get(path) ?? endpoints.get(`${path}/`);
  if (exact) return exact;
  let best: string | undefined;
  for (const p of endpoints.keys()) if (p.endsWith("/") && p !== "/" && path.startsWith(p) && p.length > (best?.length ?? 0)) best = p;
  return best === undefined ? undefined : endpoints.get(best);
}

/** The admin listener: `/` (this list), `/healthz` (alive), `/readyz` (should get traffic), `/metrics` (Prometheus), and the process's own. */
export async function startAdmin(opts: AdminOptions): Promise<AdminServer> {
  const endpoints = new Map<string, AdminEndpoint>([
    ["/healthz", { description: "liveness: 200 while the process runs", json: () => ({ status: "ok" }) }],
    ["/readyz", { description: "readiness: 200 when it should get traffic, else 503 with the reasons", handle: async (_req, res) => {
      const r = await opts.readiness();
      json(res, r.ready ? 200 : 503, { ready: r.ready, reasons: r.reasons });
    } }],
    ["/metrics", { description: "Prometheus metrics", handle: async (_req, res) => {
      const text = await opts.registry.metrics();
      res.writeHead(200, { "content-type": opts.registry.contentType });
      res.end(text);
    } }],
    ...Object.entries(opts.routes ?? {}),
  ]);
  const index = () => ({
    ...(opts.title ? { process: opts.title } : {}),
    endpoints: Object.fromEntries([...endpoints].sort(([a], [b]) => a.localeCompare(b)).map(([path, e]) => [path, e.description])),
  });
  const server = createServer(async (req, res) => {
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    try {
      if (path === "/") return json(res, 200, index());
      const endpoint = endpointFor(endpoints, path);
      if (endpoint?.handle && (await endpoint.handle(req, res)) !== false) return;
      if (endpoint?.json) return json(res, 200, endpoint.json());
      if (!res.headersSent) json(res, 404, { error: "not_found", message: `no admin endpoint '${path}' (/ lists them)` });
    } catch (err) {
      if (!res.headersSent) json(res, 500, { error: "internal", message: (err as Error).message });
      else res.destroy();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  return { server, address: server.address() as AddressInfo, register: (path, endpoint) => void endpoints.set(path, endpoint) };
}
