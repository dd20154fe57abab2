import { MsgImpl } from "@nats-io/nats-core/internal";
import { canonicalMIMEHeaderKey, Match, type Msg, type MsgHdrs } from "@nats-io/transport-node";

// Read once: in the bundle, each use of a CommonJS package's export is a getter call (docs/architecture.md §16).
const { Exact: EXACT, CanonicalMIME: CANONICAL_MIME, IgnoreCase: IGNORE_CASE } = Match;
const NatsMsg = MsgImpl;

/**
 * NATS headers for the request path (docs/architecture.md §16, "Headers").
 *
 * nats.js's own MsgHdrsImpl canonicalizes every name it is given, even for
 * exact matches, by building an array and spreading it into a string, and
 * each get/has/set lists all keys into a new array to filter them. That was
 * ~15 KB of garbage per request in each sidecar (of ~40 KB) and ~4–5% of its
 * CPU. WireHeaders keeps the fields as two flat lists, compares names as they
 * are, and writes and reads the same wire format with the same checks.
 * It implements nats.js's MsgHdrs (all three Match modes), plus `encode()`,
 * the one method nats.js's publish calls on headers.
 */
export class WireHeaders implements MsgHdrs {
  /** one entry per value, in the order they were added; a name repeats for repeated headers */
  #names: string[] = [];
  #values: string[] = [];
  #code: number;
  #description: string;

  constructor(code = 0, description = "") {
    this.#code = code;
    this.#description = description;
  }

  get code(): number {
    return this.#code;
  }

  get description(): string {
    return this.#description;
  }

  get hasError(): boolean {
    return this.#code >= 300;
  }

  get status(): string {
    return `${this.#code} ${this.#description}`.trim();
  }

  get(k: string, match: Match = EXACT): string {
    const i = this.#find(k, match, 0);
    return i === -1 ? "" : this.#values[i]!;
  }

  /** The last value of the first matching name (as nats.js: other spellings are other names). */
  last(k: string, match: Match = EXACT): string {
    const first = this.#find(k, match, 0);
    if (first === -1) return "";
    const name = this.#names[first]!;
    return this.#values[this.#names.lastIndexOf(name)]!;
  }

  has(k: string, match: Match = EXACT): boolean {
    return this.#find(k, match, 0) !== -1;
  }

  /** Every value of every matching name, name by name in the order names first appeared (as nats.js groups them). */
  values(k: string, match: Match = EXACT): string[] {
    const out: string[] = [];
    const done: string[] = [];
    for (let i = this.#find(k, match, 0); i !== -1; i = this.#find(k, match, i + 1)) {
      const name = this.#names[i]!;
      if (done.includes(name)) continue;
      done.push(name);
      for (let j = i; j !== -1; j = this.#names.indexOf(name, j + 1)) out.push(this.#values[j]!);
    }
    return out;
  }

  /** Distinct names, in the order they first appeared. */
  keys(): string[] {
    const out: string[] = [];
    for (const name of this.#names) if (!out.includes(name)) out.push(name);
    return out;
  }

  set(k: string, v: string, match: Match = EXACT): void {
    this.delete(k, match);
    this.append(k, v, match);
  }

  append(k: string, v: string, match: Match = EXACT): void {
    checkName(k);
    if (match === CANONICAL_MIME) k = canonicalMIMEHeaderKey(k);
    else if (match === IGNORE_CASE) {
      // Like nats.js: a value joins a name already there under its spelling.
      const i = this.#find(k, match, 0);
      if (i !== -1) k = this.#names[i]!;
    }
    this.#names.push(k);
    this.#values.push(checkedValue(v));
  }

  delete(k: string, match: Match = EXACT): void {
    for (let i = this.#find(k, match, 0); i !== -1; i = this.#find(k, match, i)) {
      this.#names.splice(i, 1);
      this.#values.splice(i, 1);
    }
  }

  /** Fields (name-value pairs, a repeated name counting once per value); with nameAt and valueAt, the request path reads them in order without grouping. */
  get size(): number {
    return this.#names.length;
  }

  nameAt(i: number): string {
    return this.#names[i]!;
  }

  valueAt(i: number): string {
    return this.#values[i]!;
  }

  *[Symbol.iterator](): IterableIterator<[string, string[]]> {
    for (const name of this.keys()) yield [name, this.values(name)];
  }

  /** The header block as nats.js writes it: `NATS/1.0[ code description]`, one line per value, a blank line. */
  encode(): Uint8Array {
    let s = this.#code > 0 && this.#description !== "" ? `${HEADER} ${this.#code} ${this.#description}` : HEADER;
    for (let i = 0; i < this.#names.length; i++) s += `\r\n${this.#names[i]}: ${this.#values[i]}`;
    return Buffer.from(`${s}\r\n\r\n`);
  }

  /**
   * Reads a header block as nats.js's MsgHdrsImpl.decode does, and refuses
   * what it refuses (a name with a character outside `!`..`~` or a colon, a
   * value with CR or LF): a malformed block throws here as it would there.
   */
  static decode(bytes: Uint8Array): WireHeaders {
    const lines = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8").split("\r\n");
    const h = new WireHeaders();
    const status = lines[0]!;
    if (status !== HEADER) {
      let rest = status.replace(HEADER, "").trim();
      if (rest.length > 0) {
        const code = parseInt(rest, 10);
        h.#code = Number.isNaN(code) ? 0 : code;
        rest = rest.replace(h.#code.toString(), "");
        h.#description = rest.trim();
      }
    }
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]!;
      const colon = line.indexOf(":");
      if (colon > -1) h.append(line.slice(0, colon), line.slice(colon + 1));
    }
    return h;
  }

  /** Index of the first field at or after `from` whose name matches `k`, or -1. */
  #find(k: string, match: Match, from: number): number {
    const names = this.#names;
    if (match === EXACT) return names.indexOf(k, from);
    const want = match === CANONICAL_MIME ? canonicalMIMEHeaderKey(k) : k.toLowerCase();
    for (let i = from; i < names.length; i++) {
      if ((match === CANONICAL_MIME ? names[i] : names[i]!.toLowerCase()) === want) return i;
    }
    return -1;
  }
}

const HEADER = "NATS/1.0";
/** a header name: printable ASCII without the colon (nats.js's rule) */
const NAME = /^[!-9;-~]*$/;
const CR_OR_LF = /[\r\n]/;

function checkName(k: string): void {
  if (!NAME.test(k)) throw new TypeError(`'${k}' is not a valid NATS header name`);
}

function checkedValue(v: string): string {
  if (CR_OR_LF.test(v)) throw new TypeError("NATS header values cannot contain CR or LF");
  return v.trim();
}

/**
 * A received message's headers, read by WireHeaders once and kept on the
 * message, so `msg.headers` returns them from then on. Throws on a malformed
 * block, as `msg.headers` would. A message nats.js did not build (none here)
 * keeps its own getter.
 */
export function readHeaders(msg: Msg): MsgHdrs | undefined {
  if (!(msg instanceof NatsMsg) || msg._headers !== undefined || msg._msg.hdr < 0) return msg.headers;
  return (msg._headers = WireHeaders.decode(msg._rdata.subarray(0, msg._msg.hdr)));
}

/** readHeaders for a message whose header problems are someone else's to report (they surface again on `msg.headers`). */
export function adoptHeaders(msg: Msg): void {
  try {
    readHeaders(msg);
  } catch {
    // left to nats.js's getter, which refuses the same block
  }
}
