// The few lines every TypeScript demo app shares: JSON replies, listening on
// PORT, and a prompt, clean exit on SIGTERM. Nothing here knows of the mesh.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";

export type Handler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const data = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(data),
  });
  res.end(data);
}

/** Path without the query string. */
export function pathOf(req: IncomingMessage): string {
  const url = req.url ?? "/";
  const q = url.indexOf("?");
  return q === -1 ? url : url.slice(0, q);
}

/** Listens on 127.0.0.1:$PORT (or `defaultPort`); exits 0 on SIGTERM/SIGINT. */
export function serve(name: string, defaultPort: number, handler: Handler): void {
  const logRequests = !["", "0"].includes(process.env.DEMO_LOG ?? "");
  const server = createServer((req, res) => {
    if (logRequests) res.on("finish", () => process.stderr.write(`${name} ${req.method} ${req.url} ${res.statusCode}\n`));
    (async () => handler(req, res))().catch((err: unknown) => {
      process.stderr.write(`${name}: ${String(err)}\n`);
      if (!res.headersSent) sendJson(res, 500, { error: "internal", message: String(err) });
      else res.destroy();
    });
  });
  // Outlive the sidecar's pooled connections, so it never reuses one we are closing.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  server.listen(Number(process.env.PORT ?? defaultPort), "127.0.0.1", () => {
    const addr = server.address();
    const port = typeof addr === "object" && addr ? addr.port : "?";
    process.stderr.write(`${name} listening on http://127.0.0.1:${port}\n`);
  });
  const stop = () => {
    server.close(() => process.exit(0));
    server.closeIdleConnections();
    setTimeout(() => process.exit(0), 2000).unref(); // in-flight requests get 2 s
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}
