import { randomFillSync } from "node:crypto";
import {
  NoRespondersError,
  RequestError,
  TimeoutError,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
} from "@nats-io/transport-node";
import { inboxPrefixFor } from "../../schemas/index.ts";

/** Bytes of randomness in a reply token: 128 bits. */
const TOKEN_BYTES = 16;
/** Tokens drawn from one fill of the CSPRNG (one syscall per 256 requests). */
const POOL_TOKENS = 256;

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

interface Pending {
  resolve: (msg: Msg) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
  subject: string;
  /** the service whose sidecar must answer: the last token of the answer's subject */
  from: string;
}

/**
 * Request/reply over one wildcard subscription on this sidecar's private
 * inbox, like nats.js's muxed requests but without what a proxy does not need
 * on every call (no request object, no Error allocated when it settles).
 *
 * A request's reply subject is `_INBOX.<caller>.<token>`; the provider
 * answers on `<reply>.<its service>` (schemas/subjects.ts). An answer is
 * taken only from the service the request was sent to; the only message
 * accepted on the bare reply subject is the server's own "no responders".
 * Failures reject with nats.js's own error types, so callers map them the same way.
 */
export class Requester {
  readonly #nc: NatsConnection;
  readonly #prefix: string;
  readonly #pending = new Map<string, Pending>();
  readonly #tokens = new TokenSource();
  readonly #onForged: (sender: string, expected: string) => void;

  /**
   * `service`: this sidecar's, whose private inbox receives the answers.
   * `onForged`: an answer to a pending request came from another sender than the one asked.
   */
  constructor(nc: NatsConnection, service: string, onForged: (sender: string, expected: string) => void = () => undefined) {
    this.#nc = nc;
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
        this.#pending.delete(token);
        reject(new TimeoutError());
      }, timeoutMs);
      this.#pending.set(token, { resolve, reject, timer, subject, from });
      try {
        this.#nc.publish(subject, data, { reply: this.#prefix + token, headers });
      } catch (err) {
        clearTimeout(timer);
        this.#pending.delete(token);
        reject(err as Error);
      }
    });
  }

  #settle(msg: Msg): void {
    const rest = msg.subject.slice(this.#prefix.length);
    const dot = rest.indexOf(".");
    const token = dot === -1 ? rest : rest.slice(0, dot);
    const pending = this.#pending.get(token);
    if (!pending) return; // timed out already, or never ours
    if (dot === -1) {
      // Only the server publishes on a bare reply subject: it answers a request nobody subscribes to
      // with an empty 503 status message. Anything else there is not an answer.
      if (msg.data.length !== 0 || msg.headers?.code !== 503) return;
      this.#done(token, pending);
      pending.reject(new RequestError(`no responders: '${pending.subject}'`, { cause: new NoRespondersError(pending.subject) }));
      return;
    }
    const sender = rest.slice(dot + 1);
    if (sender !== pending.from) return this.#onForged(sender, pending.from);
    this.#done(token, pending);
    pending.resolve(msg);
  }

  #done(token: string, pending: Pending): void {
    this.#pending.delete(token);
    clearTimeout(pending.timer);
  }
}
