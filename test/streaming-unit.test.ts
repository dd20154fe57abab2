// Flow control of streamed bodies (sidecar/streaming/session.ts) between two
// sessions joined by an in-process transport: order, completeness, credit,
// backpressure, aborts. The same sessions over real NATS and sidecars are in
// test/streaming.test.ts.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { describe, test } from "node:test";
import { PassThrough, Readable, Writable } from "node:stream";
import { headers as natsHeaders, type Msg, type MsgHdrs } from "@nats-io/transport-node";
import { StreamWire } from "../schemas/index.ts";
import { StreamSession, type StreamOutcome, type StreamSessionOptions } from "../sidecar/streaming/session.ts";

const TIMING = { idleTimeoutMs: 60_000, keepaliveMs: 60_000, peerGoneMs: 60_000 };

function msgOf(h: MsgHdrs, data?: Uint8Array): Msg {
  return { headers: h, data: data ?? new Uint8Array(0) } as unknown as Msg;
}

/** Two sessions whose messages reach each other asynchronously, in order; `tap` sees (and may drop or alter) each. */
function pair(opts: Partial<StreamSessionOptions> = {}, tap?: (from: "a" | "b", m: Msg) => Msg[] | undefined) {
  const outcomes: { a?: StreamOutcome; b?: StreamOutcome } = {};
  let a!: StreamSession;
  let b!: StreamSession;
  const deliver = (from: "a" | "b", m: Msg) => {
    const list = tap ? (tap(from, m) ?? [m]) : [m];
    setImmediate(() => list.forEach((x) => (from === "a" ? b : a).onMessage(x)));
  };
  const base = { chunkBytes: 16 * 1024, windowBytes: 64 * 1024, ...TIMING, ...opts };
  a = new StreamSession({ ...base, publish: (h, d) => deliver("a", msgOf(h, d)), onClose: (o) => (outcomes.a = o) });
  b = new StreamSession({ ...base, publish: (h, d) => deliver("b", msgOf(h, d)), onClose: (o) => (outcomes.b = o) });
  return { a, b, outcomes };
}

const until = async (cond: () => boolean) => {
  while (!cond()) await new Promise((r) => setImmediate(r));
};

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** A sink that collects, and (when slow) says "slow down" until it is drained by hand. */
function sink(slow = false) {
  const chunks: Buffer[] = [];
  let ended = false;
  let backlog = 0;
  const w = new Writable({
    highWaterMark: 32 * 1024,
    write(chunk: Buffer, _e, done) {
      chunks.push(chunk);
      backlog += chunk.length;
      if (!slow) done();
      else setTimeout(done, 1); // why: a slow consumer is what this sink models
    },
    final(done) {
      ended = true;
      done();
    },
  });
  return { w, bytes: () => Buffer.concat(chunks), ended: () => ended, backlog: () => backlog };
}

describe("a streamed body arrives in order and complete", () => {
  test("1 MiB through a 64 KiB window, chunked at 16 KiB: same bytes, both sides completed", async () => {
    const { a, b, outcomes } = pair();
    const body = randomBytes(1024 * 1024);
    const s = sink();
    b.receive(s.w);
    a.send(Readable.from([body.subarray(0, 300_000), body.subarray(300_000)]), 64 * 1024);
    await until(() => outcomes.a !== undefined && outcomes.b !== undefined && s.ended());
    assert.equal(sha(s.bytes()), sha(body));
    assert.deepEqual(outcomes.a, { completed: true, bytesIn: 0, bytesOut: body.length });
    assert.deepEqual(outcomes.b, { completed: true, bytesIn: body.length, bytesOut: 0 });
  });

  test("the sender never has more than the window in flight, even into a slow sink", async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    let delivered = 0;
    const { a, b, outcomes } = pair({}, (from, m) => {
      if (from === "a" && m.headers?.has(StreamWire.seq)) {
        inFlight += m.data.length;
        maxInFlight = Math.max(maxInFlight, inFlight - delivered);
      }
      return undefined;
    });
    const s = sink(true);
    const origWrite = s.w.write.bind(s.w);
    s.w.write = ((chunk: Uint8Array) => {
      delivered += chunk.length;
      return origWrite(chunk);
    }) as typeof s.w.write;
    b.receive(s.w);
    const body = randomBytes(512 * 1024);
    a.send(Readable.from([body]), 64 * 1024);
    await until(() => outcomes.b !== undefined && s.ended());
    assert.equal(sha(s.bytes()), sha(body));
    assert.ok(maxInFlight <= 64 * 1024, `${maxInFlight} bytes in flight`);
  });

  test("bytes are sent as the source produces them (an event stream is not held back)", async () => {
    const { a, b } = pair();
    const source = new PassThrough();
    const got: string[] = [];
    const w = new Writable({ write: (c: Buffer, _e, done) => (got.push(c.toString()), done()) });
    b.receive(w);
    a.send(source, 64 * 1024);
    source.write("data: 1\n\n");
    await until(() => got.length === 1);
    assert.equal(got[0], "data: 1\n\n", "the first event arrives before the second is produced");
    source.write("data: 2\n\n");
    await until(() => got.length === 2);
    source.end();
  });
});

describe("a broken stream fails visibly on both sides", () => {
  for (const [name, tamper] of [
    ["a lost chunk", (_m: Msg, seq: number) => (seq === 3 ? [] : undefined)],
    ["a duplicate chunk", (m: Msg, seq: number) => (seq === 3 ? [m, m] : undefined)],
    ["chunks out of order", (() => {
      let held: Msg | undefined;
      return (m: Msg, seq: number) => {
        if (seq === 3) return (held = m), [];
        if (seq === 4 && held) return [m, held];
        return undefined;
      };
    })()],
  ] as const) {
    test(`${name}: out_of_order, never a silently different body`, async () => {
      const { a, b, outcomes } = pair({}, (from, m) => {
        const seq = Number(m.headers?.get(StreamWire.seq));
        return from === "a" && seq ? (tamper as (m: Msg, seq: number) => Msg[] | undefined)(m, seq) : undefined;
      });
      const s = sink();
      b.receive(s.w);
      a.send(Readable.from([randomBytes(200 * 1024)]), 64 * 1024);
      await until(() => outcomes.a !== undefined && outcomes.b !== undefined);
      assert.equal(outcomes.b?.reason, "out_of_order");
      assert.equal(outcomes.b?.completed, false);
      assert.deepEqual([outcomes.a?.reason, outcomes.a?.byPeer], ["out_of_order", true]);
      assert.equal(s.ended(), false, "the sink is never ended as if the body were whole");
    });
  }

  test("a sender that ignores credit is cut off", async () => {
    const { b, outcomes } = pair();
    b.receive(sink().w);
    const h = natsHeaders();
    h.set(StreamWire.seq, "1");
    b.onMessage(msgOf(h, new Uint8Array(64 * 1024 + 1)));
    assert.equal(outcomes.b?.reason, "credit_exceeded");
  });

  test("past maxReceiveBytes: too_large", async () => {
    const { a, b, outcomes } = pair({ maxReceiveBytes: 100_000 });
    b.receive(sink().w);
    a.send(Readable.from([randomBytes(300_000)]), 64 * 1024);
    await until(() => outcomes.b !== undefined);
    assert.equal(outcomes.b?.reason, "too_large");
  });

  test("an abort from either side ends both, the source destroyed", async () => {
    const { a, b, outcomes } = pair();
    const source = new PassThrough();
    b.receive(sink().w);
    a.send(source, 64 * 1024);
    source.write("partial");
    b.abort("client_closed");
    await until(() => outcomes.a !== undefined);
    assert.deepEqual([outcomes.a?.reason, outcomes.a?.byPeer, source.destroyed], ["client_closed", true, true]);
  });

  test("a silent peer is given up: peer_gone; a stream without data: idle_timeout; pings keep a quiet stream alive", async () => {
    const silent = new StreamSession({ chunkBytes: 1024, windowBytes: 4096, idleTimeoutMs: 60_000, keepaliveMs: 20, peerGoneMs: 100, publish: () => undefined, onClose: (o) => (lost = o) });
    let lost: StreamOutcome | undefined;
    silent.receive(sink().w);
    await until(() => lost !== undefined);
    assert.equal(lost?.reason, "peer_gone");

    const { a, b, outcomes } = pair({ idleTimeoutMs: 150, keepaliveMs: 20, peerGoneMs: 1_000 });
    b.receive(sink().w);
    a.send(new PassThrough(), 4096);
    await until(() => outcomes.a !== undefined || outcomes.b !== undefined);
    assert.equal((outcomes.a ?? outcomes.b)?.reason, "idle_timeout", "pings alone do not count as data");
  });
});
