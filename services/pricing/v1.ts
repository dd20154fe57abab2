// pricing v1: list prices from prices.json (v2 is the Python version, with a discount).
//   GET /prices/<id>      -> {id, price, currency, version: "v1"} or 404
//   GET /ticks[?count=N]  -> server-sent events: a price tick every second (forever, or N ticks)
//   GET /healthz          -> 200
import type { IncomingMessage, ServerResponse } from "node:http";
import { pathOf, sendJson, serve } from "../http-app.ts";
import prices from "./prices.json" with { type: "json" };

const VERSION = "v1";
const table: { currency: string; prices: Record<string, number> } = prices;

const TICK_MS = Number(process.env.TICK_MS ?? 1000);

/** Live prices as server-sent events: each tick moves one price a little, until the client leaves. */
function ticks(req: IncomingMessage, res: ServerResponse): void {
  const count = Number(new URL(req.url ?? "/", "http://x").searchParams.get("count") ?? Infinity);
  const ids = Object.keys(table.prices);
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  let n = 0;
  const tick = () => {
    const id = ids[n % ids.length]!;
    const price = Math.round(table.prices[id]! * (0.95 + Math.random() * 0.1) * 100) / 100;
    res.write(`id: ${++n}\nevent: tick\ndata: ${JSON.stringify({ id, price, currency: table.currency, version: VERSION, at: new Date().toISOString() })}\n\n`);
    if (n >= count) {
      clearInterval(timer);
      res.end();
    }
  };
  const timer = setInterval(tick, TICK_MS);
  tick();
  res.on("close", () => clearInterval(timer));
}

serve(`pricing ${VERSION}`, 8082, (req, res) => {
  const path = pathOf(req);
  if (path === "/healthz") return sendJson(res, 200, { status: "ok" });
  if (path === "/ticks") return ticks(req, res);
  const id = path.startsWith("/prices/") ? path.slice("/prices/".length) : "";
  const price = Object.hasOwn(table.prices, id) ? table.prices[id] : undefined;
  if (price === undefined) return sendJson(res, 404, { error: "not_found", message: `no price for '${path}'` });
  sendJson(res, 200, { id, price, currency: table.currency, version: VERSION });
});
