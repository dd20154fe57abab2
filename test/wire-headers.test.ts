// WireHeaders (sidecar/wire-headers.ts) against nats.js's own MsgHdrsImpl:
// the same wire bytes both ways, the same refusals, and through a real server.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { headers as natsHeaders, Match, MsgHdrsImpl, type Msg, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node";
import { WireHeaders, adoptHeaders, readHeaders } from "../sidecar/wire-headers.ts";
import { connectClient, startNats, type NatsCluster } from "./helpers/nats.ts";

/** name → values, in nats.js's grouping, plus the status */
function view(h: MsgHdrs): { code: number; description: string; fields: Array<[string, string[]]> } {
  return { code: h.code, description: h.description, fields: h.keys().map((k) => [k, h.values(k)]) };
}

const SAMPLES: Array<{ name: string; code?: number; description?: string; fields: Array<[string, string]> }> = [
  { name: "mesh request", fields: [["@method", "GET"], ["@path", "/echo?x=1&y=%20"], ["@deadline", "1733059200000"], ["accept", "*/*"], ["x-forwarded-for", "10.0.0.1"]] },
  { name: "repeated names stay in order", fields: [["set-cookie", "a=1"], ["set-cookie", "b=2; Path=/"], ["vary", "accept"], ["set-cookie", "c=3"]] },
  { name: "values are trimmed, inner spaces kept", fields: [["x-a", "  padded value  "], ["x-empty", ""]] },
  { name: "non-ASCII values (UTF-8)", fields: [["x-name", "Zoë ☃"], ["x-latin", "caf\u00e9"]] },
  { name: "a status line", code: 503, description: "No Responders", fields: [] },
  { name: "a status line with fields", code: 408, description: "Request Timeout", fields: [["Nats-Pending-Messages", "3"]] },
];

function both(sample: (typeof SAMPLES)[number]): { ours: WireHeaders; theirs: MsgHdrs } {
  const ours = new WireHeaders(sample.code ?? 0, sample.description ?? "");
  const theirs = natsHeaders(sample.code ?? 0, sample.description ?? "");
  for (const [k, v] of sample.fields) {
    ours.append(k, v);
    theirs.append(k, v);
  }
  return { ours, theirs };
}

describe("WireHeaders: nats.js's format and rules", () => {
  for (const sample of SAMPLES) {
    test(`${sample.name}: each side reads what the other writes`, () => {
      const { ours, theirs } = both(sample);
      const theirBytes = (theirs as MsgHdrsImpl).encode();
      assert.deepEqual(view(WireHeaders.decode(theirBytes)), view(theirs));
      assert.deepEqual(view(MsgHdrsImpl.decode(ours.encode())), view(theirs));
      assert.deepEqual(view(ours), view(theirs));
    });
  }

  test("get, last, has, values, delete and set behave as nats.js's, in all three match modes", () => {
    const ours = new WireHeaders();
    const theirs = natsHeaders();
    for (const h of [ours, theirs]) {
      h.append("Content-Type", "text/plain");
      h.append("x-multi", "1");
      h.append("X-MULTI", "2");
      h.append("x-multi", "3");
    }
    for (const match of [Match.Exact, Match.CanonicalMIME, Match.IgnoreCase]) {
      for (const k of ["content-type", "Content-Type", "x-multi", "X-Multi", "absent"]) {
        assert.equal(ours.get(k, match), theirs.get(k, match), `get ${k} ${match}`);
        assert.equal(ours.last(k, match), theirs.last(k, match), `last ${k} ${match}`);
        assert.equal(ours.has(k, match), theirs.has(k, match), `has ${k} ${match}`);
        assert.deepEqual(ours.values(k, match), theirs.values(k, match), `values ${k} ${match}`);
      }
    }
    for (const h of [ours, theirs]) {
      h.append("x-multi", "4", Match.IgnoreCase); // joins the first spelling
      h.set("content-type", "application/json", Match.IgnoreCase);
      h.delete("X-MULTI");
      h.append("via", "1.1 a", Match.CanonicalMIME);
    }
    assert.deepEqual(view(ours), view(theirs));
    assert.deepEqual([...ours], [...theirs]);
  });

  test("what nats.js refuses to write or read, WireHeaders refuses too", () => {
    for (const [k, v] of [["bad name", "v"], ["bad:name", "v"], ["naïve", "v"], ["x-inject", "a\r\nx-evil: 1"], ["x-lf", "a\nb"]] as const) {
      assert.throws(() => natsHeaders().append(k, v));
      assert.throws(() => new WireHeaders().append(k, v), TypeError, `${k}: ${JSON.stringify(v)}`);
    }
    const enc = (s: string) => new TextEncoder().encode(s);
    for (const block of ["NATS/1.0\r\nbad name: v\r\n\r\n", "NATS/1.0\r\nx: a\nb\r\n\r\n", "NATS/1.0\r\nx\u0000y: v\r\n\r\n"]) {
      assert.throws(() => MsgHdrsImpl.decode(enc(block)), Error, JSON.stringify(block));
      assert.throws(() => WireHeaders.decode(enc(block)), TypeError, JSON.stringify(block));
    }
    // Lines without a colon and empty lines are skipped by both.
    const odd = enc("NATS/1.0\r\nno colon here\r\n\r\nx-a: 1\r\n\r\n");
    assert.deepEqual(view(WireHeaders.decode(odd)), view(MsgHdrsImpl.decode(odd)));
  });
});

describe("WireHeaders through a real nats-server", () => {
  let cluster: NatsCluster;
  let nc: NatsConnection;
  before(async () => {
    cluster = await startNats();
    nc = await connectClient(cluster.urls);
  });
  after(async () => {
    await nc?.close();
    await cluster?.stop();
  });

  test("a message published with WireHeaders arrives with every field; readHeaders reads it once and msg.headers returns the same", async () => {
    const got = new Promise<Msg>((resolve) => nc.subscribe("wire.test", { max: 1, callback: (_e, m) => resolve(m) }));
    await nc.flush();
    const h = new WireHeaders();
    h.append("@status", "200");
    h.append("set-cookie", "a=1");
    h.append("set-cookie", "b=2");
    nc.publish("wire.test", new TextEncoder().encode("body"), { headers: h });
    const msg = await got;
    const read = readHeaders(msg);
    assert.ok(read instanceof WireHeaders);
    assert.equal(msg.headers, read, "kept on the message");
    assert.equal(read.get("@status"), "200");
    assert.deepEqual(read.values("set-cookie"), ["a=1", "b=2"]);
    assert.equal(new TextDecoder().decode(msg.data), "body");
  });

  test("the server's own no-responders status reads as code 503", async () => {
    const got = new Promise<Msg>((resolve) => nc.subscribe("_INBOX.wire.nr", { max: 1, callback: (_e, m) => resolve(m) }));
    await nc.flush();
    nc.publish("wire.nobody.listens", new Uint8Array(0), { reply: "_INBOX.wire.nr", headers: new WireHeaders() });
    const msg = await got;
    adoptHeaders(msg);
    assert.ok(msg.headers instanceof WireHeaders);
    assert.equal(msg.headers.code, 503);
    assert.equal(msg.headers.hasError, true);
  });

  test("a malformed block from a raw publisher: readHeaders throws, adoptHeaders leaves nats.js's getter to throw", async () => {
    const msgs: Msg[] = [];
    const two = new Promise<void>((resolve) => nc.subscribe("wire.raw", { max: 2, callback: (_e, m) => void (msgs.push(m) === 2 && resolve()) }));
    await nc.flush();
    // A hand-made header block, the way a hostile client would write it.
    const bad = { encode: () => new TextEncoder().encode("NATS/1.0\r\nbad name: v\r\n\r\n") } as unknown as MsgHdrs;
    nc.publish("wire.raw", new Uint8Array(0), { headers: bad });
    nc.publish("wire.raw", new Uint8Array(0), { headers: bad });
    await two;
    assert.throws(() => readHeaders(msgs[0]!), TypeError);
    adoptHeaders(msgs[1]!);
    assert.throws(() => msgs[1]!.headers);
  });
});
