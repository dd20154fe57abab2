// The little network I/O `mesh up` does itself: is a port free, and one GET.
import { request } from "node:http";
import { createServer } from "node:net";
import { HOST } from "./up-plan.ts";

/** undefined when every port can be bound on 127.0.0.1, else a line naming the first busy one. */
export async function assertPortsFree(ports: Array<{ port: number; what: string }>): Promise<string | undefined> {
  for (const { port, what } of ports) {
    const error = await tryListen(port);
    if (error) return `port ${port} (${what}) is not free: ${error}`;
  }
  return undefined;
}

/** Why `port` cannot be bound on 127.0.0.1 (EADDRINUSE, ...), or undefined when it can. */
export function tryListen(port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    server.listen({ port, host: HOST, exclusive: true }, () => server.close(() => resolve(undefined)));
  });
}

export interface GetOptions {
  /** Host header; node's resolver need not know *.localhost, so connect to the URL and send this. */
  host?: string;
  timeoutMs: number;
  signal?: AbortSignal;
}

/** GET `url`; resolves with status and body text, rejects on network errors and timeouts. */
export function httpGet(url: string, opts: GetOptions): Promise<{ status: number; body: string }> {
  const headers = opts.host ? { host: opts.host } : undefined;
  const signal = opts.signal ? AbortSignal.any([opts.signal, AbortSignal.timeout(opts.timeoutMs)]) : AbortSignal.timeout(opts.timeoutMs);
  return new Promise((resolve, reject) => {
    const req = request(url, { headers, signal, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}
