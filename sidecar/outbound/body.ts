import type { IncomingMessage } from "node:http";
import { MeshError, payloadTooLarge } from "../errors.ts";

const EMPTY = new Uint8Array(0);
/** past this many bytes an oversized upload is cut off instead of read to its end */
const DISCARD_LIMIT_BYTES = 64 * 1024 * 1024;

/**
 * Reads a request body of at most `limit` bytes. An oversized body is read to
 * its end and dropped (so the client sees the 413 rather than a reset), unless
 * it is absurdly large, in which case the connection is cut. A client that
 * sends nothing for `idleMs` (0 = no limit) gets `request_timeout`.
 */
export function readBody(req: IncomingMessage, limit: number, idleMs = 0): Promise<Uint8Array> {
  const declared = Number(req.headers["content-length"] ?? -1);
  if (declared === 0 || (declared < 0 && req.headers["transfer-encoding"] === undefined)) {
    // No body: nothing to wait for (Node discards the empty stream itself).
    return Promise.resolve(EMPTY);
  }
  if (declared > DISCARD_LIMIT_BYTES) return Promise.reject(payloadTooLarge(declared, limit));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let idle: NodeJS.Timeout | undefined;
    const stall = () => {
      req.pause();
      reject(new MeshError("request_timeout", `request body stalled: nothing received for ${idleMs} ms after ${size} bytes`));
    };
    const armIdle = () => {
      if (idleMs <= 0) return;
      clearTimeout(idle);
      idle = setTimeout(stall, idleMs);
    };
    armIdle();
    req.once("end", () => clearTimeout(idle));
    req.once("close", () => clearTimeout(idle));
    req.on("data", (chunk: Buffer) => {
      armIdle();
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
      else if (size > DISCARD_LIMIT_BYTES) req.destroy();
    });
    req.once("end", () => {
      if (size > limit) reject(payloadTooLarge(size, limit));
      else resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    });
    req.once("error", (err) => reject(new MeshError("bad_target", `request body could not be read: ${err.message}`)));
    req.once("close", () => {
      if (!req.complete) reject(size > limit ? payloadTooLarge(size, limit) : new ClientGoneError());
    });
  });
}

/** The client went away before its request was read; there is nobody to answer. */
export class ClientGoneError extends Error {
  constructor() {
    super("client closed the connection before sending its whole request");
    this.name = "ClientGoneError";
  }
}
