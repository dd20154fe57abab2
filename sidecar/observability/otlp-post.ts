import { request } from "undici";

/**
 * POSTs one OTLP/HTTP JSON export and resolves with the collector's status.
 * Imported on use, so a sidecar that exports no spans never loads undici
 * (docs/architecture.md §16).
 */
export async function postOtlp(url: string, body: string, timeoutMs: number): Promise<number> {
  const res = await request(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
  });
  await res.body.dump();
  return res.statusCode;
}
