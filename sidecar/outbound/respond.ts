import type { ServerResponse } from "node:http";
import { HttpHeader } from "../../schemas/index.ts";
import type { MeshError } from "../errors.ts";

/** Writes a mesh error as the JSON body of docs/architecture.md §8 with its `mesh-error` header. */
export function writeMeshError(res: ServerResponse, err: MeshError, closeConnection = false): void {
  if (res.headersSent) {
    res.destroy(err);
    return;
  }
  const body = err.body();
  const headers: Record<string, string | number> = {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
    [HttpHeader.meshError]: err.code,
  };
  if (closeConnection) headers["connection"] = "close";
  for (const [k, v] of err.extraHeaders ?? []) headers[k] = v;
  res.writeHead(err.status, headers);
  res.end(body);
}
