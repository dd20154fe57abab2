import { readFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { join } from "node:path";
import type { Logger } from "pino";
import { packageFile } from "../../runtime/index.ts";
import { isServiceName, kindFromNoun, type PolicyKind } from "../../schemas/index.ts";
import { DASHBOARD_API, DASHBOARD_EVENTS, DASHBOARD_PATH } from "./paths.ts";
import type { DashboardViews } from "./views.ts";

/**
 * The dashboard on control's admin listener (docs/dashboard.md): the static
 * page built by `npm run build:dashboard`, read-only JSON under `api/`, and
 * one server-sent-events stream that pushes the topology (and the service a
 * page shows) every second.
 */
export const DASHBOARD_LIMITS = {
  /** event streams open at once; one more is answered 503 */
  streams: 32,
  /** how often a stream sends */
  pushMs: 1_000,
  /** a pasted policy document, at most */
  validateBytes: 1024 * 1024,
  /** topology window, seconds (the telemetry kept at control covers a minute) */
  maxWindowSeconds: 60,
  defaultWindowSeconds: 30,
} as const;

/** Built by `npm run build:dashboard`; not code, so read from the package root whether control runs compiled or not (docs/architecture.md §16). */
const DIST = packageFile("dashboard/dist");
/** The only files served: nothing a path names is ever looked up on disk. */
const STATIC: Readonly<Record<string, string>> = {
  "": "text/html; charset=utf-8",
  "app.js": "text/javascript; charset=utf-8",
  "app.css": "text/css; charset=utf-8",
};
const FILE_OF: Readonly<Record<string, string>> = { "": "index.html", "app.js": "app.js", "app.css": "app.css" };

/** Sent with everything: the page runs only its own script, and is never framed. */
const SECURITY_HEADERS = {
  "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store",
};

class BadRequest extends Error {}

export class DashboardHttp {
  readonly #views: DashboardViews;
  readonly #logger: Logger;
  readonly #files = new Map<string, Buffer>();
  readonly #streams = new Set<ServerResponse>();

  constructor(views: DashboardViews, logger: Logger) {
    this.#views = views;
    this.#logger = logger;
  }

  /** Handles a request under `/dashboard`; false for any other path. */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const url = new URL(req.url ?? "/", "http://admin");
    const path = url.pathname;
    if (path === DASHBOARD_PATH.slice(0, -1)) return redirect(res, DASHBOARD_PATH), true;
    if (!path.startsWith(DASHBOARD_PATH)) return false;
    if (!hostAllowed(req)) return send(res, 403, { error: "forbidden", message: "on a loopback listener the dashboard answers only Host localhost, 127.0.0.1 or [::1]" }), true;
    try {
      if (path === DASHBOARD_EVENTS) return this.#events(req, res, url), true;
      if (path.startsWith(DASHBOARD_API)) return await this.#api(req, res, path.slice(DASHBOARD_API.length), url.searchParams), true;
      await this.#static(req, res, path.slice(DASHBOARD_PATH.length));
    } catch (err) {
      if (err instanceof BadRequest) send(res, 400, { error: "bad_request", message: err.message });
      else {
        this.#logger.error({ err, path }, "dashboard request failed");
        send(res, 500, { error: "internal", message: (err as Error).message });
      }
    }
    return true;
  }

  /** Ends every event stream (control stopping): pages see the connection drop and reconnect elsewhere. */
  close(): void {
    for (const res of this.#streams) res.end();
    this.#streams.clear();
  }

  async #static(req: IncomingMessage, res: ServerResponse, name: string): Promise<void> {
    if (req.method !== "GET" && req.method !== "HEAD") return send(res, 405, { error: "method_not_allowed", message: "the dashboard is read-only" });
    const type = Object.hasOwn(STATIC, name) ? STATIC[name] : undefined;
    if (!type) return send(res, 404, { error: "not_found", message: `no dashboard file '${name.slice(0, 80)}'` });
    let body = this.#files.get(name);
    if (!body) {
      body = await readFile(join(DIST, FILE_OF[name]!)).catch(() => undefined);
      if (!body) return send(res, 503, { error: "not_built", message: "the dashboard is not built: run `npm run build:dashboard`" });
      this.#files.set(name, body);
    }
    res.writeHead(200, { ...SECURITY_HEADERS, "content-type": type, "content-length": body.length });
    res.end(req.method === "HEAD" ? undefined : body);
  }

  async #api(req: IncomingMessage, res: ServerResponse, name: string, q: URLSearchParams): Promise<void> {
    const v = this.#views;
    if (name === "validate") {
      if (req.method !== "POST") return send(res, 405, { error: "method_not_allowed", message: "POST the document's text" });
      const text = await readBody(req, DASHBOARD_LIMITS.validateBytes);
      return send(res, 200, await v.validate(text));
    }
    if (req.method !== "GET") return send(res, 405, { error: "method_not_allowed", message: "the dashboard is read-only" });
    switch (name) {
      case "topology":
        return send(res, 200, await v.topology(windowOf(q)));
      case "service":
        return send(res, 200, await v.service(serviceOf(q, "name"), windowOf(q)));
      case "history":
        return send(res, 200, { entries: await v.history(kindOf(q), serviceOf(q, "service")) });
      case "logs":
        return send(res, 200, await v.logs(serviceOf(q, "service"), seqOf(q)));
      default:
        return send(res, 404, { error: "not_found", message: `no dashboard endpoint '${name.slice(0, 80)}'` });
    }
  }

  /** Server-sent events: `topology` every push, and `service` too when the page shows one. */
  #events(req: IncomingMessage, res: ServerResponse, url: URL): void {
    if (this.#streams.size >= DASHBOARD_LIMITS.streams) return send(res, 503, { error: "overloaded", message: `${DASHBOARD_LIMITS.streams} dashboard streams are open already` });
    const window = windowOf(url.searchParams);
    const service = url.searchParams.has("service") ? serviceOf(url.searchParams, "service") : undefined;
    res.writeHead(200, { ...SECURITY_HEADERS, "content-type": "text/event-stream", connection: "keep-alive" });
    res.write("retry: 1000\n\n");
    this.#streams.add(res);
    let busy = false;
    const push = async () => {
      if (busy) return; // a slow KV read: skip a beat rather than pile up
      busy = true;
      try {
        const topology = await this.#views.topology(window);
        res.write(event("topology", topology));
        if (service) res.write(event("service", await this.#views.service(service, window, topology)));
      } catch (err) {
        res.write(event("problem", { message: (err as Error).message }));
      } finally {
        busy = false;
      }
    };
    const timer = setInterval(push, DASHBOARD_LIMITS.pushMs);
    void push();
    const done = () => {
      clearInterval(timer);
      this.#streams.delete(res);
    };
    req.once("close", done);
    res.once("close", done);
  }
}

/**
 * DNS rebinding: a web page on another origin may resolve its own name to
 * 127.0.0.1 and read a loopback listener. A listener on loopback therefore
 * answers only requests that name a loopback host; one bound elsewhere was
 * exposed on purpose, and answers any.
 */
function hostAllowed(req: IncomingMessage): boolean {
  const local = req.socket.localAddress ?? "";
  const loopback = (a: string) => a === "localhost" || a === "::1" || a === "[::1]" || /^127\./.test(a) || /^::ffff:127\./.test(a);
  if (!loopback(local)) return true;
  const host = (req.headers.host ?? "").toLowerCase();
  const name = host.startsWith("[") ? host.slice(0, host.indexOf("]") + 1) : host.split(":")[0]!;
  return loopback(name);
}

function event(name: string, data: unknown): string {
  return `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
}

function send(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { ...SECURITY_HEADERS, "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

function redirect(res: ServerResponse, to: string): void {
  res.writeHead(302, { location: to, "content-length": 0 });
  res.end();
}

function windowOf(q: URLSearchParams): number {
  const raw = q.get("window");
  if (raw === null) return DASHBOARD_LIMITS.defaultWindowSeconds;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > DASHBOARD_LIMITS.maxWindowSeconds) throw new BadRequest(`window must be whole seconds from 1 to ${DASHBOARD_LIMITS.maxWindowSeconds}, got '${raw.slice(0, 20)}'`);
  return n;
}

function serviceOf(q: URLSearchParams, param: string): string {
  const s = q.get(param) ?? "";
  if (!isServiceName(s)) throw new BadRequest(`${param} must be a service name, got '${s.slice(0, 80)}'`);
  return s;
}

function kindOf(q: URLSearchParams): PolicyKind {
  const raw = q.get("kind") ?? "";
  const kind = (["Route", "Authz", "Quota"] as const).find((k) => k === raw) ?? kindFromNoun(raw);
  if (!kind) throw new BadRequest(`kind must be Route, Authz or Quota, got '${raw.slice(0, 20)}'`);
  return kind;
}

function seqOf(q: URLSearchParams): number | undefined {
  const raw = q.get("afterSeq");
  if (raw === null) return undefined;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) throw new BadRequest(`afterSeq must be a stream sequence, got '${raw.slice(0, 20)}'`);
  return n;
}

/** The body as text, refusing more than `max` bytes. */
async function readBody(req: IncomingMessage, max: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > max) throw new BadRequest(`the document is larger than ${max} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}
