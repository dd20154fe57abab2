// pricing v1: list prices from prices.json (v2 is the Python version, with a discount).
//   GET /prices/<id> -> {id, price, currency, version: "v1"} or 404
//   GET /healthz     -> 200
import { readFileSync } from "node:fs";
import { pathOf, sendJson, serve } from "../http-app.ts";

const VERSION = "v1";
const table = JSON.parse(readFileSync(new URL("./prices.json", import.meta.url), "utf8")) as {
  currency: string;
  prices: Record<string, number>;
};

serve(`pricing ${VERSION}`, 8082, (req, res) => {
  const path = pathOf(req);
  if (path === "/healthz") return sendJson(res, 200, { status: "ok" });
  const id = path.startsWith("/prices/") ? path.slice("/prices/".length) : "";
  const price = Object.hasOwn(table.prices, id) ? table.prices[id] : undefined;
  if (price === undefined) return sendJson(res, 404, { error: "not_found", message: `no price for '${path}'` });
  sendJson(res, 200, { id, price, currency: table.currency, version: VERSION });
});
