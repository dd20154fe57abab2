import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { onFileEnd } from "./cleanup.ts";

export interface SeenRequest {
  method: string;
  url: string;
  /** Node's flat `[name, value, ...]` list, case and repeats preserved */
  rawHeaders: string[];
  headers: IncomingMessage["headers"];
  body: Buffer;
}

export type Handler = (req: SeenRequest, res: ServerResponse) => void | Promise<void>;

/** Default: 200 with the request body echoed back. */
export const echo: Handler = (req, res) => {
  res.writeHead(200, { "content-type": "application/octet-stream", "x-echo-method": req.method });
  res.end(req.body);
};

/**
 * Requests that came through the mesh are recorded in `seen` and answered by
 * `handler`; the sidecar's health probes are answered apart.
 */
export interface TestApp {
  url: string;
  port: number;
  server: Server;
  seen: SeenRequest[];
  handler: Handler;
  close(): Promise<void>;
}

/** A real HTTP application on a free port, closed when the test file ends. */
export async function startApp(handler: Handler = echo, port = 0): Promise<TestApp> {
  const app = { seen: [] as SeenRequest[], handler } as TestApp;
  app.server = createServer((req, res) => {
    // The sidecar's health probe (it carries no x-mesh-caller): answered here, not recorded.
    if (req.headers["x-mesh-caller"] === undefined && req.method === "GET" && req.url === "/") {
      res.end("probe");
      return;
    }
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const seen: SeenRequest = {
        method: req.method ?? "",
        url: req.url ?? "",
        rawHeaders: req.rawHeaders,
        headers: req.headers,
        body: Buffer.concat(chunks),
      };
      app.seen.push(seen);
      Promise.resolve(app.handler(seen, res)).catch((err) => res.destroy(err));
    });
  });
  app.server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve) => app.server.listen(port, "127.0.0.1", () => resolve()));
  app.port = (app.server.address() as AddressInfo).port;
  app.url = `http://127.0.0.1:${app.port}`;
  app.close = () =>
    new Promise<void>((resolve) => {
      app.server.closeAllConnections();
      app.server.close(() => resolve());
    });
  onFileEnd(() => app.close());
  return app;
}

/** Header value as one string (first of repeats). */
export function header(req: SeenRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * A real HTTP application that handles each request as it streams (no
 * buffering), for tests of streamed bodies; the sidecar's health probes are
 * answered apart. Closed when the test file ends.
 */
export async function startStreamingApp(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    if (req.headers["x-mesh-caller"] === undefined && req.method === "GET" && req.url === "/") return void res.end("probe");
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  onFileEnd(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}
