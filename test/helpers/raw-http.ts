import { connect, type Socket } from "node:net";
import { onFileEnd } from "./cleanup.ts";

export interface ParsedResponse {
  status: number;
  /** lowercase names; repeats joined with ", " */
  headers: Record<string, string>;
  body: Buffer;
}

/**
 * One HTTP/1.1 connection driven by hand: requests are written as given and
 * responses parsed by the client's rules (content-length framing, 1xx
 * interim answers without a body), so a server that frames wrong shows up as
 * the next response holding the wrong bytes, just as a real keep-alive
 * client would see it.
 */
export class RawConnection {
  readonly socket: Socket;
  #buffer = Buffer.alloc(0);
  #closed = false;
  #wake: (() => void) | undefined;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on("data", (chunk: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, chunk]);
      this.#wake?.();
    });
    socket.on("close", () => {
      this.#closed = true;
      this.#wake?.();
    });
    socket.on("error", () => undefined);
  }

  static async open(port: number): Promise<RawConnection> {
    const socket = connect(port, "127.0.0.1");
    await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
    onFileEnd(() => socket.destroy());
    return new RawConnection(socket);
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Resolves once the server has closed the connection. */
  async waitClosed(): Promise<void> {
    while (!this.#closed) await this.#more();
  }

  /** The next response (or interim 1xx answer) on the connection; rejects if it closes first. */
  async readResponse(): Promise<ParsedResponse> {
    for (;;) {
      const end = this.#buffer.indexOf("\r\n\r\n");
      if (end !== -1) {
        const [statusLine, ...lines] = this.#buffer.subarray(0, end).toString("latin1").split("\r\n");
        const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine!)?.[1]);
        if (!status) throw new Error(`not an HTTP response: ${JSON.stringify(statusLine)}`);
        const headers: Record<string, string> = {};
        for (const line of lines) {
          const i = line.indexOf(":");
          const name = line.slice(0, i).trim().toLowerCase();
          const value = line.slice(i + 1).trim();
          headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
        }
        const length = status < 200 ? 0 : Number(headers["content-length"] ?? 0);
        if (this.#buffer.length >= end + 4 + length) {
          const body = this.#buffer.subarray(end + 4, end + 4 + length);
          this.#buffer = this.#buffer.subarray(end + 4 + length);
          return { status, headers, body: Buffer.from(body) };
        }
      }
      if (this.#closed) throw new Error(`connection closed; unparsed: ${JSON.stringify(this.#buffer.toString("latin1").slice(0, 200))}`);
      await this.#more();
    }
  }

  /** Bytes received and not yet parsed as a response. */
  get leftover(): Buffer {
    return this.#buffer;
  }

  #more(): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = () => {
        this.#wake = undefined;
        resolve();
      };
    });
  }
}
