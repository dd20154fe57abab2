import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";

export interface Readiness {
  ready: boolean;
  /** why not, when not ready */
  reasons: string[];
}

export interface AdminOptions {
  host: string;
  port: number;
  registry: Registry;
  readiness: () => Promise<Readiness>;
  /** extra JSON endpoints, e.g. `/config` */
  routes?: Record<string, () => unknown>;
  /** handlers of whole subtrees (control's `/dashboard/`), tried in order before 404: true when one answered */
  handlers?: Array<(req: IncomingMessage, res: ServerResponse) => Promise<boolean>>;
}

function json(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

/** The admin listener: `/healthz` (alive), `/readyz` (should get traffic), `/metrics` (Prometheus). */
export async function startAdmin(opts: AdminOptions): Promise<{ server: Server; address: AddressInfo }> {
  const server = createServer(async (req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    try {
      if (path === "/healthz") return json(res, 200, { status: "ok" });
      if (path === "/readyz") {
        const r = await opts.readiness();
        return json(res, r.ready ? 200 : 503, { ready: r.ready, reasons: r.reasons });
      }
      if (path === "/metrics") {
        const text = await opts.registry.metrics();
        res.writeHead(200, { "content-type": opts.registry.contentType });
        return void res.end(text);
      }
      const route = path ? opts.routes?.[path] : undefined;
      if (route) return json(res, 200, route());
      for (const handler of opts.handlers ?? []) if (await handler(req, res)) return;
      json(res, 404, { error: "not_found", message: `no admin endpoint '${path}'` });
    } catch (err) {
      json(res, 500, { error: "internal", message: (err as Error).message });
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  return { server, address: server.address() as AddressInfo };
}
