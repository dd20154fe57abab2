import type { Readable } from "node:stream";
import { type Msg, type MsgHdrs } from "@nats-io/transport-node";
import { StreamWire, type StreamAbortReason } from "../../schemas/index.ts";
import { WireHeaders } from "../wire-headers.ts";

/**
 * One body stream between two sidecars (docs/architecture.md §15): data
 * chunks numbered from 1 in each direction, credit-based flow control (a
 * receiver says how many bytes in all the sender may have sent; a sender
 * never sends past it), keepalives while idle, and an abort that both sides
 * hear. A session may carry one direction (an upload, a download) or both (a
 * WebSocket). Transport-free: `publish` sends a message to the peer, and
 * `onMessage` takes the peer's; so the flow control is unit-tested without
 * sockets.
 */

export interface StreamTiming {
  /** abort when no data byte moved either way for this long */
  idleTimeoutMs: number;
  /** say something (a ping) after this long without sending anything */
  keepaliveMs: number;
  /** abort when the peer said nothing at all for this long (it or its NATS connection is gone) */
  peerGoneMs: number;
}

export interface StreamSessionOptions extends StreamTiming {
  /** sends one message of this stream to the peer */
  publish(headers: MsgHdrs, data?: Uint8Array): void;
  /** largest data chunk, bytes (below the cluster's max_payload) */
  chunkBytes: number;
  /** bytes this side lets the peer send beyond what it has consumed */
  windowBytes: number;
  /** bytes this side accepts from the peer in all; more aborts with `too_large` (absent: no limit) */
  maxReceiveBytes?: number;
  /** bytes this side may send in all; more aborts with `too_large` (absent: no limit) */
  maxSendBytes?: number;
  /** told once, when the session ends either way */
  onClose(outcome: StreamOutcome): void;
  /** told once this side has sent its last byte (its end), before the session may still be receiving */
  onSent?(): void;
  now?: () => number;
}

export interface StreamOutcome {
  /** both directions completed (every byte sent was delivered and every byte expected arrived) */
  completed: boolean;
  /** why it did not complete, and whether the peer said so (false: this side decided) */
  reason?: StreamAbortReason;
  byPeer?: boolean;
  bytesIn: number;
  bytesOut: number;
}

/** Where received bytes go: Node's writable contract (false = slow down until `drain`). */
export interface StreamSink {
  write(chunk: Uint8Array): boolean;
  once(event: "drain", listener: () => void): unknown;
  end(): void;
}

export class StreamSession {
  readonly #o: StreamSessionOptions;
  readonly #now: () => number;
  #closed = false;
  #timer: NodeJS.Timeout | undefined;
  #lastData: number;
  #lastHeard: number;
  #lastSaid: number;
  // Sending.
  #source: Readable | undefined;
  #sendCredit = 0;
  #sent = 0;
  #sendSeq = 0;
  #pending: Uint8Array | undefined;
  #sourceEnded = false;
  #sendDone = true;
  // Receiving.
  #sink: StreamSink | undefined;
  #received = 0;
  #receiveSeq = 0;
  #consumed = 0;
  #granted = 0;
  #receiveDone = true;
  #waitingForDrain = false;
  /** bytes that came before `receive` gave them a sink, and whether the last chunk was among them */
  #queue: Uint8Array[] | undefined;
  #queuedEnd = false;
  /** while held, a session whose directions are done stays open (an answer that may stream is still to come) */
  #holds = 0;

  constructor(opts: StreamSessionOptions) {
    this.#o = opts;
    this.#now = opts.now ?? Date.now;
    const now = this.#now();
    this.#lastData = this.#lastHeard = this.#lastSaid = now;
    this.#timer = setInterval(() => this.#tick(), Math.max(50, Math.min(opts.keepaliveMs, opts.idleTimeoutMs, opts.peerGoneMs) / 2));
    this.#timer.unref();
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The peer's bytes are still coming (the receiving direction is open). */
  get receiving(): boolean {
    return !this.#closed && !this.#receiveDone;
  }

  /** Keeps the session open, even with both directions done, until `release` (an answer is still to come). */
  hold(): void {
    this.#holds++;
  }

  release(): void {
    this.#holds--;
    this.#maybeDone();
  }

  /** Sends `source` to the peer, which lets this side send `credit` bytes until it grants more. */
  send(source: Readable, credit: number): void {
    this.#source = source;
    this.#sendDone = false;
    this.#sendCredit = Math.max(this.#sendCredit, credit);
    source.on("readable", () => this.#pump());
    source.once("end", () => {
      this.#sourceEnded = true;
      this.#pump();
    });
    source.once("error", () => this.abort("source_failed"));
    this.#pump();
  }

  /**
   * This side will receive the peer's bytes, which the peer may send up to
   * `initialWindow` of before any credit (an answer's body follows its head at
   * once); until `receive` gives them a sink they wait here.
   */
  expectData(initialWindow: number): void {
    if (this.#sink || this.#queue) return;
    this.#receiveDone = false;
    this.#queue = [];
    this.#granted = Math.max(this.#granted, initialWindow);
  }

  /** Receives the peer's bytes into `sink` (first those that came already), granting a window now. */
  receive(sink: StreamSink): void {
    this.#sink = sink;
    this.#receiveDone = false;
    const queued = this.#queue ?? [];
    this.#queue = undefined;
    for (const chunk of queued) this.#write(chunk);
    if (this.#queuedEnd) return this.#endReceiving();
    this.#grant(true);
  }

  /** A message from the peer on this stream's inbox. */
  onMessage(msg: Msg): void {
    if (this.#closed) return;
    this.#lastHeard = this.#now();
    const h = msg.headers;
    if (!h) return;
    const abort = h.get(StreamWire.abort);
    if (abort) return this.#close({ reason: toReason(abort), byPeer: true });
    const credit = h.get(StreamWire.credit);
    if (credit) {
      const total = Number(credit);
      if (total > this.#sendCredit) {
        this.#sendCredit = total;
        this.#pump();
      }
    }
    const seq = h.get(StreamWire.seq);
    if (seq) this.#onData(Number(seq), msg.data, h.has(StreamWire.end));
  }

  /** Gives up on the stream and tells the peer why. */
  abort(reason: StreamAbortReason): void {
    if (this.#closed) return;
    const h = new WireHeaders();
    h.set(StreamWire.abort, reason);
    this.#say(h);
    this.#close({ reason, byPeer: false });
  }

  #onData(seq: number, data: Uint8Array, last: boolean): void {
    if (this.#receiveDone || (!this.#sink && !this.#queue)) return this.abort("protocol_error");
    if (seq !== this.#receiveSeq + 1) return this.abort("out_of_order");
    this.#receiveSeq = seq;
    this.#received += data.length;
    if (this.#received > this.#granted) return this.abort("credit_exceeded");
    if (this.#o.maxReceiveBytes !== undefined && this.#received > this.#o.maxReceiveBytes) return this.abort("too_large");
    if (data.length > 0) this.#lastData = this.#now();
    if (!this.#sink) {
      // No sink yet: the bytes wait (at most the window the peer was given).
      if (data.length > 0) this.#queue!.push(data);
      this.#queuedEnd = last;
      return;
    }
    if (data.length > 0) this.#write(data);
    if (last) return this.#endReceiving();
    this.#grant(false);
  }

  #write(data: Uint8Array): void {
    const sink = this.#sink!;
    if (sink.write(data)) {
      if (!this.#waitingForDrain) this.#consumed = this.#received;
    } else if (!this.#waitingForDrain) {
      this.#waitingForDrain = true;
      sink.once("drain", () => {
        this.#waitingForDrain = false;
        this.#consumed = this.#received;
        this.#grant(false);
      });
    }
  }

  #endReceiving(): void {
    this.#receiveDone = true;
    this.#sink!.end();
    this.#maybeDone();
  }

  /** Lets the peer send a window beyond what the sink took; said again once a quarter window was taken. */
  #grant(first: boolean): void {
    if (this.#closed || this.#receiveDone) return;
    const total = this.#consumed + this.#o.windowBytes;
    if (!first && total - this.#granted < this.#o.windowBytes / 4) return;
    this.#granted = total;
    const h = new WireHeaders();
    h.set(StreamWire.credit, String(total));
    this.#say(h);
  }

  #pump(): void {
    const source = this.#source;
    if (!source || this.#closed || this.#sendDone) return;
    for (;;) {
      if (!this.#pending) {
        const chunk = source.read() as Uint8Array | null;
        if (chunk === null) break;
        this.#pending = chunk;
      }
      const allowed = this.#sendCredit - this.#sent;
      if (allowed <= 0) return;
      const pending = this.#pending;
      const n = Math.min(allowed, this.#o.chunkBytes, pending.length);
      if (this.#o.maxSendBytes !== undefined && this.#sent + n > this.#o.maxSendBytes) return this.abort("too_large");
      this.#pending = n === pending.length ? undefined : pending.subarray(n);
      this.#sendData(pending.subarray(0, n), false);
    }
    if (this.#sourceEnded && !this.#pending) {
      this.#sendData(new Uint8Array(0), true);
      this.#sendDone = true;
      this.#o.onSent?.();
      this.#maybeDone();
    }
  }

  #sendData(data: Uint8Array, last: boolean): void {
    const h = new WireHeaders();
    h.set(StreamWire.seq, String(++this.#sendSeq));
    if (last) h.set(StreamWire.end, "1");
    this.#sent += data.length;
    if (data.length > 0) this.#lastData = this.#now();
    this.#say(h, data);
  }

  #say(h: MsgHdrs, data?: Uint8Array): void {
    this.#lastSaid = this.#now();
    try {
      this.#o.publish(h, data);
    } catch {
      // A closed connection: the watchdog ends the stream when the peer stays silent.
    }
  }

  #tick(): void {
    const now = this.#now();
    if (now - this.#lastHeard > this.#o.peerGoneMs) return this.abort("peer_gone");
    if (now - this.#lastData > this.#o.idleTimeoutMs) return this.abort("idle_timeout");
    if (now - this.#lastSaid >= this.#o.keepaliveMs) {
      const h = new WireHeaders();
      h.set(StreamWire.ping, "1");
      this.#say(h);
    }
  }

  #maybeDone(): void {
    if (this.#sendDone && this.#receiveDone && this.#holds === 0) this.#close({});
  }

  #close(how: { reason?: StreamAbortReason; byPeer?: boolean }): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    const completed = how.reason === undefined;
    if (!completed) this.#source?.destroy();
    this.#o.onClose({ completed, ...how, bytesIn: this.#received, bytesOut: this.#sent });
  }
}

const REASONS: ReadonlySet<string> = new Set<StreamAbortReason>([
  "client_closed",
  "app_failed",
  "source_failed",
  "out_of_order",
  "credit_exceeded",
  "protocol_error",
  "too_large",
  "idle_timeout",
  "peer_gone",
  "timeout",
  "answered",
  "draining",
]);

/** A reason from the wire: one of ours, else `protocol_error` (a peer's text is not echoed into labels). */
function toReason(text: string): StreamAbortReason {
  return REASONS.has(text) ? (text as StreamAbortReason) : "protocol_error";
}
