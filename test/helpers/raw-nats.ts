import { connect, type Socket } from "node:net";
import { onFileEnd } from "./cleanup.ts";

/**
 * A NATS client that writes the protocol by hand, for what nats.js refuses
 * to send (a malformed header block). Only what the tests need: HPUB and a
 * PING/PONG round trip as a flush.
 */
export class RawNatsClient {
  readonly #socket: Socket;
  #received = "";
  #wake: (() => void) | undefined;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.on("data", (c: Buffer) => {
      this.#received += c.toString("latin1");
      this.#wake?.();
    });
    socket.on("error", () => undefined);
  }

  static async open(port: number): Promise<RawNatsClient> {
    const socket = connect(port, "127.0.0.1");
    await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
    onFileEnd(() => socket.destroy());
    const client = new RawNatsClient(socket);
    await client.#until("INFO ");
    socket.write(`CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":true,"protocol":1}\r\n`);
    await client.flush();
    return client;
  }

  /** A message with a header block exactly as given (it must end with CRLF CRLF). */
  hpub(subject: string, reply: string, headerBlock: string, payload: string): void {
    const hdr = Buffer.byteLength(headerBlock, "latin1");
    const total = hdr + Buffer.byteLength(payload, "latin1");
    this.#socket.write(`HPUB ${subject} ${reply} ${hdr} ${total}\r\n${headerBlock}${payload}\r\n`, "latin1");
  }

  /** Resolves once the server has processed everything sent before. */
  async flush(): Promise<void> {
    const pongs = this.#received.split("PONG").length;
    this.#socket.write("PING\r\n");
    while (this.#received.split("PONG").length === pongs) await this.#more();
  }

  async #until(text: string): Promise<void> {
    while (!this.#received.includes(text)) await this.#more();
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
