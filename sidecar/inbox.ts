import { randomFillSync } from "node:crypto";
import { NoRespondersError, RequestError, TimeoutError, type Msg, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node";
import { StreamWire, inboxPrefixFor } from "../schemas/index.ts";
import { PublishBatch } from "./publish-batch.ts";
import { adoptHeaders } from "./wire-headers.ts";

/** Bytes of randomness in a reply token: 128 bits. */
const TOKEN_BYTES = 16;
/** Tokens drawn from one fill of the CSPRNG (one syscall per 256 requests). */
const POOL_TOKENS = 256;
/**
 * Messages a stream's channel keeps until its handler is attached (the
 * peer's head, credit and the chunks its first window allows); more close it.
 */
const CHANNEL_BUFFER_LIMIT = 64;

/**
 * Reply tokens: 128 bits each from the CSPRNG, base64url (22 characters, a
 * valid subject token). A provider sees the reply subjects of the requests it
 * serves and nothing else of ours; knowing those tells it nothing of the next.
 */
export class TokenSource {
  readonly #pool = Buffer.alloc(TOKEN_BYTES * POOL_TOKENS);
  #offset = this.#pool.length;

  next(): string {
    if (this.#offset === this.#pool.length) {
      randomFillSync(this.#pool);
      this.#offset = 0;
    }
    const token = this.#pool.toString("base64url", this.#offset, this.#offset + TOKEN_BYTES);
    this.#offset += TOKEN_BYTES;
    return token;
  }
}

/** A stream's end of this sidecar's inbox: `_INBOX.<service>.<token>`, taking messages from one sender only. */
export interface Channel {
  /** where the peer sends: its messages arrive on `<subject>.<its service>` */
  readonly subject: string;
  /** receives this channel's messages; those that came before are delivered now */
  attach(handler: (msg: Msg) => void): void;
  close(): void;
}

interface Pending {
  kind: "request";
  resolve: (msg: Msg) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
  subject: string;
  /** the service whose sidecar must answer: the last token of the answer's subject */
  from: string;
}

class StreamChannel implements Channel {
  readonly kind = "channel";
  #buffer: Msg[] | undefined = [];
  #handler: ((msg: Msg) => void) | undefined;

  constructor(
    readonly subject: string,
    readonly from: string,
    private readonly done: () => void,
  ) {}

  deliver(msg: Msg): void {
    if (this.#handler) return this.#handler(msg);
    if (!this.#buffer) return;
    this.#buffer.push(msg);
    if (this.#buffer.length > CHANNEL_BUFFER_LIMIT) this.close();
  }

  attach(handler: (msg: Msg) => void): void {
    if (!this.#buffer) return; // closed before anyone listened
    this.#handler = handler;
    const waiting = this.#buffer;
    this.#buffer = [];
    for (const msg of waiting) handler(msg);
  }

  close(): void {
    this.#buffer = undefined;
    this.#handler = undefined;
    this.done();
  }
}

/**
 * This sidecar's private inbox (`_INBOX.<service>.…`, docs/architecture.md
 * §3): one pair of wildcard subscriptions for every answer and stream, like
 * nats.js's muxed requests but without what a proxy does not need on every
 * call (no request object, no Error allocated when it settles).
 *
 * A request's reply subject is `_INBOX.<caller>.<token>`; the provider
 * answers on `<reply>.<its service>` (schemas/subjects.ts). An answer is
 * taken only from the service the request was sent to; the only message
 * accepted on the bare reply subject is the server's own "no responders".
 * An answer that opens a stream (`@stream`, `@continue`) keeps its token: the
 * later messages of the exchange go to its channel (`channelOf`). Failures
 * reject with nats.js's own error types, so callers map them the same way.
 */
export class Inbox {
  readonly #prefix: string;
  readonly #entries = new Map<string, Pending | StreamChannel>();
  /** requests waiting for their answer (not the open streams, which share #entries) */
  #pending = 0;
  readonly #tokens = new TokenSource();
  readonly #onForged: (sender: string, expected: string) => void;
  /** this connection's publish batch: requests, and the provider's whole answers (InboundAdapter), leave with the others of their event-loop turn */
  readonly batch: PublishBatch;

  /**
   * `service`: this sidecar's, whose private inbox receives the answers.
   * `onForged`: a message for a pending exchange came from another sender than the one expected.
   */
  constructor(nc: NatsConnection, service: string, onForged: (sender: string, expected: string) => void = () => undefined) {
    this.batch = new PublishBatch(nc);
    this.#prefix = `${inboxPrefixFor(service)}.`;
    this.#onForged = onForged;
    const settle = (_err: Error | null, msg: Msg) => this.#settle(msg);
    nc.subscribe(`${this.#prefix}*`, { callback: settle });
    nc.subscribe(`${this.#prefix}*.*`, { callback: settle });
  }

  /** Sends `data` to `subject` and resolves with the answer of `from`'s sidecar. */
  request(subject: string, data: Uint8Array, headers: MsgHdrs, timeoutMs: number, from: string): Promise<Msg> {
    return new Promise((resolve, reject) => {
      const token = this.#tokens.next();
      const timer = setTimeout(() => {
        this.#forget(token);
        reject(new TimeoutError());
      }, timeoutMs);
      this.#entries.set(token, { kind: "request", resolve, reject, timer, subject, from });
      this.#pending++;
      // Nothing of this exchange is sent before the provider answers, so the request may wait for the
      // turn's end, unless it is the only request waiting (open streams do not count).
      this.batch.publish(
        subject,
        data,
        { reply: this.#prefix + token, headers },
        (err) => {
          clearTimeout(timer);
          this.#forget(token);
          reject(err);
        },
        this.#pending === 1,
      );
    });
  }

  /** The channel of an answer that opened a stream; undefined for any other message. */
  channelOf(answer: Msg): Channel | undefined {
    const entry = this.#entries.get(this.#tokenOf(answer.subject));
    return entry?.kind === "channel" ? entry : undefined;
  }

  /** A new channel for messages from `from`'s sidecar (a provider's side of a stream). */
  open(from: string): Channel {
    const token = this.#tokens.next();
    const channel = new StreamChannel(this.#prefix + token, from, () => this.#entries.delete(token));
    this.#entries.set(token, channel);
    return channel;
  }

  #tokenOf(subject: string): string {
    const rest = subject.slice(this.#prefix.length);
    const dot = rest.indexOf(".");
    return dot === -1 ? rest : rest.slice(0, dot);
  }

  #settle(msg: Msg): void {
    const rest = msg.subject.slice(this.#prefix.length);
    const dot = rest.indexOf(".");
    const token = dot === -1 ? rest : rest.slice(0, dot);
    const entry = this.#entries.get(token);
    if (!entry) return; // timed out or closed already, or never ours
    adoptHeaders(msg);
    if (dot === -1) {
      // Only the server publishes on a bare reply subject: it answers a request nobody subscribes to
      // with an empty 503 status message. Anything else there is not an answer.
      if (entry.kind !== "request" || msg.data.length !== 0 || msg.headers?.code !== 503) return;
      this.#forget(token);
      clearTimeout(entry.timer);
      entry.reject(new RequestError(`no responders: '${entry.subject}'`, { cause: new NoRespondersError(entry.subject) }));
      return;
    }
    const sender = rest.slice(dot + 1);
    if (sender !== entry.from) return this.#onForged(sender, entry.from);
    if (entry.kind === "channel") return entry.deliver(msg);
    clearTimeout(entry.timer);
    this.#forget(token);
    const h = msg.headers;
    if (h?.has(StreamWire.stream) || h?.has(StreamWire.continue)) {
      // The exchange goes on: what follows belongs to a stream.
      this.#entries.set(token, new StreamChannel(this.#prefix + token, entry.from, () => this.#entries.delete(token)));
    }
    entry.resolve(msg);
  }

  /** A request's entry goes: answered, refused, timed out or not sent. */
  #forget(token: string): void {
    if (this.#entries.get(token)?.kind === "request") this.#pending--;
    this.#entries.delete(token);
  }
}
