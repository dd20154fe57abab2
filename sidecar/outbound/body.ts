import type { IncomingMessage } from "node:http";
import { PassThrough } from "node:stream";
import { MeshError, payloadTooLarge } from "../errors.ts";
import { readAtHand } from "../streaming/at-hand.ts";
import type { UploadBody } from "./caller.ts";

const EMPTY = new Uint8Array(0);
/** past this many bytes an oversized upload is cut off instead of read to its end */
const DISCARD_LIMIT_BYTES = 64 * 1024 * 1024;

export interface BodyLimits {
  /** a body up to this many bytes, whose whole is at hand, travels in one message */
  fastPathMaxBytes: number;
  /** bytes a body may have in all (the route's maxBodyBytes, else the sidecar's); more is 413 */
  maxBodyBytes: number;
  /** a client that sends nothing for this long gets `request_timeout` (0 = no limit) */
  idleMs: number;
}

/**
 * An application's request body, as a mesh call carries it
 * (docs/architecture.md §15): the whole of it when it is small and at hand
 * (known length up to `fastPathMaxBytes`, or a chunked body that arrived
 * whole with its headers), else a stream. A declared length over the limit is
 * refused at once (413) without reading.
 */
export async function readRequestBody(req: IncomingMessage, limits: BodyLimits): Promise<Uint8Array | UploadBody> {
  const declared = Number(req.headers["content-length"] ?? -1);
  if (declared === 0 || (declared < 0 && req.headers["transfer-encoding"] === undefined)) {
    // No body: nothing to wait for (Node discards the empty stream itself).
    return EMPTY;
  }
  if (declared > limits.maxBodyBytes) throw payloadTooLarge(declared, limits.maxBodyBytes);
  if (declared >= 0 && declared <= limits.fastPathMaxBytes) return readWhole(req, limits.fastPathMaxBytes, limits.idleMs);
  if (declared > limits.fastPathMaxBytes) return upload(req, [], declared, limits);
  // Chunked: whole if it all came with the headers, else it streams from what came.
  const { chunks, size, ended } = await readAtHand(req, limits.fastPathMaxBytes).catch((err: Error) => {
    throw new MeshError("bad_target", `request body could not be read: ${err.message}`);
  });
  if (ended) return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
  return upload(req, chunks, undefined, limits);
}

/** A body that streams: what was read already, then the rest of the request, watched for stalls. */
function upload(req: IncomingMessage, read: Buffer[], length: number | undefined, limits: BodyLimits): UploadBody {
  const source = new PassThrough();
  for (const chunk of read) source.write(chunk);
  let idle: NodeJS.Timeout | undefined;
  const arm = () => {
    if (limits.idleMs <= 0) return;
    clearTimeout(idle);
    idle = setTimeout(() => source.destroy(new MeshError("request_timeout", `request body stalled: nothing received for ${limits.idleMs} ms`)), limits.idleMs);
    idle.unref();
  };
  arm();
  req.on("data", arm);
  req.once("end", () => clearTimeout(idle));
  source.once("close", () => clearTimeout(idle));
  // The call that reads this body has its own listener; this one keeps the
  // failure of a body nobody reads (the call was refused first) from
  // becoming an uncaught exception.
  source.on("error", () => undefined);
  req.once("close", () => {
    clearTimeout(idle);
    if (!req.complete) source.destroy(new ClientGoneError());
  });
  req.pipe(source);
  req.resume();
  return { source, length, maxBytes: limits.maxBodyBytes };
}

/**
 * Reads a request body of at most `limit` bytes. An oversized body is read to
 * its end and dropped (so the client sees the 413 rather than a reset), unless
 * it is absurdly large, in which case the connection is cut. A client that
 * sends nothing for `idleMs` (0 = no limit) gets `request_timeout`.
 */
export function readWhole(req: IncomingMessage, limit: number, idleMs = 0): Promise<Uint8Array> {
  const declared = Number(req.headers["content-length"] ?? -1);
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
