import type { NatsConnection, PublishOptions } from "@nats-io/transport-node";

/**
 * Publishes made during one turn of the event loop, sent together at its
 * end (setImmediate). nats.js writes its buffer to the socket once per
 * microtask checkpoint, and every HTTP request or app answer arrives in a
 * macrotask of its own, so under load each message cost a write of its own,
 * and the server a read. Held to the end of the turn, the requests and
 * answers of all the sockets that were readable in it leave in one write
 * (docs/architecture.md §16). A message sent while it is the only one in
 * flight goes at once: with nothing to share a write with, waiting would only
 * add latency. Only messages nothing else must overtake use it: a fast-path
 * request and a whole answer. Stream heads and chunks, whose order matters,
 * are published directly.
 */
export class PublishBatch {
  readonly #nc: NatsConnection;
  #queue: Array<{ subject: string; data: Uint8Array; opts: PublishOptions; failed: (err: Error) => void }> = [];
  #scheduled = false;

  constructor(nc: NatsConnection) {
    this.#nc = nc;
  }

  /**
   * Queues one message, or sends it at once when `alone` (no other request
   * is in flight) and none waits; `failed` hears why it could not be
   * published (closed connection, too large).
   */
  publish(subject: string, data: Uint8Array, opts: PublishOptions, failed: (err: Error) => void, alone = false): void {
    if (alone && !this.#scheduled) {
      try {
        this.#nc.publish(subject, data, opts);
      } catch (err) {
        failed(err as Error);
      }
      return;
    }
    this.#queue.push({ subject, data, opts, failed });
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(this.#flush);
  }

  readonly #flush = (): void => {
    this.#scheduled = false;
    const queue = this.#queue;
    this.#queue = [];
    for (const m of queue) {
      try {
        this.#nc.publish(m.subject, m.data, m.opts);
      } catch (err) {
        m.failed(err as Error);
      }
    }
  };
}
