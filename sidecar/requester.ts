import {
  NoRespondersError,
  RequestError,
  TimeoutError,
  createInbox,
  nuid,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  type Subscription,
} from "@nats-io/transport-node";

interface Pending {
  resolve: (msg: Msg) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
  subject: string;
}

/**
 * Request/reply over one wildcard inbox subscription, like nats.js's own
 * muxed requests but without what a proxy does not need on every call: no
 * request object with an Error allocated when it settles, no
 * per-request option checks. Failures reject with nats.js's own error types,
 * so callers map them the same way.
 */
export class Requester {
  readonly #nc: NatsConnection;
  readonly #prefix: string;
  readonly #pending = new Map<string, Pending>();
  readonly #sub: Subscription;

  /** `inboxPrefix`: the connection's (a sidecar's private `_INBOX.<service>`) */
  constructor(nc: NatsConnection, inboxPrefix?: string) {
    this.#nc = nc;
    this.#prefix = `${createInbox(inboxPrefix)}.`;
    this.#sub = nc.subscribe(`${this.#prefix}*`, { callback: (_err, msg) => this.#settle(msg) });
  }

  request(subject: string, data: Uint8Array, headers: MsgHdrs, timeoutMs: number): Promise<Msg> {
    return new Promise((resolve, reject) => {
      // Unguessable: a provider sees this reply subject and must not be able to
      // predict the next one and slip a forged answer into another call.
      const token = nuid.next();
      const timer = setTimeout(() => {
        this.#pending.delete(token);
        reject(new TimeoutError());
      }, timeoutMs);
      this.#pending.set(token, { resolve, reject, timer, subject });
      try {
        this.#nc.publish(subject, data, { reply: this.#prefix + token, headers });
      } catch (err) {
        clearTimeout(timer);
        this.#pending.delete(token);
        reject(err as Error);
      }
    });
  }

  close(): void {
    this.#sub.unsubscribe();
    for (const p of this.#pending.values()) clearTimeout(p.timer);
    this.#pending.clear();
  }

  #settle(msg: Msg | undefined): void {
    if (!msg) return;
    const token = msg.subject.slice(this.#prefix.length);
    const pending = this.#pending.get(token);
    if (!pending) return; // timed out already
    this.#pending.delete(token);
    clearTimeout(pending.timer);
    // The server answers a request nobody subscribes to with an empty 503 status message.
    if (msg.data.length === 0 && msg.headers?.code === 503) {
      pending.reject(new RequestError(`no responders: '${pending.subject}'`, { cause: new NoRespondersError(pending.subject) }));
    } else pending.resolve(msg);
  }
}
