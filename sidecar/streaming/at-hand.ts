import type { Readable } from "node:stream";

/** What of a body arrived with its head (docs/architecture.md §15). */
export interface AtHand {
  chunks: Buffer[];
  size: number;
  /** the body ended: `chunks` are all of it */
  ended: boolean;
}

/**
 * What of a body of unknown length is at hand now: its chunks until it
 * ends, passes `limit` bytes, or one turn of the event loop has gone by. The
 * body is paused after, so a body that goes on can still be streamed from
 * where this stopped (the chunks read are the caller's to send first). The
 * one-message-or-stream decision of a chunked request (caller) and of a
 * chunked answer (provider) both rest on it.
 */
export function readAtHand(body: Readable, limit: number): Promise<AtHand> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (ended: boolean) => {
      if (done) return;
      done = true;
      body.off("data", onData);
      body.off("end", onEnd);
      body.off("error", onError);
      body.pause();
      resolve({ chunks, size, ended });
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size > limit) finish(false);
    };
    const onEnd = () => finish(true);
    const onError = (err: Error) => {
      if (done) return;
      done = true;
      reject(err);
    };
    body.on("data", onData);
    body.once("end", onEnd);
    body.once("error", onError);
    setImmediate(() => finish(body.readableEnded));
  });
}
