import assert from "node:assert/strict";
import { access } from "node:fs/promises";
import { after, before, describe, test } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { sleep } from "./helpers/mesh.ts";
import { type NatsCluster, startNats, withNats } from "./helpers/nats.ts";
import { isAlive } from "./helpers/mesh-process.ts";

const MiB = 1024 * 1024;

/** A connection pinned to one node, so a test knows which route a message crosses. */
function connectTo(url: string): Promise<NatsConnection> {
  return connect({ servers: url, noAsyncTraces: true, ignoreClusterUpdates: true, reconnectTimeWait: 100 });
}

/** Retries `probe` until it returns without throwing (5 s at most); returns its last value. */
async function eventually<T>(probe: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    try {
      return await probe();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(50); // why: polling step; a probe that failed has no event to wait on
    }
  }
}

/** Subject interest crosses routes asynchronously, so the first requests may find no responder. */
function requestUntilAnswered(nc: NatsConnection, subject: string, data: string): Promise<string> {
  return eventually(async () => (await nc.request(subject, data, { timeout: 1_000 })).string());
}

test("a single node without JetStream serves request/reply", async (t) => {
  const nats = await withNats(t, { nodes: 1, jetstream: false });
  const nc = await connectTo(nats.urls[0]!);
  try {
    nc.subscribe("echo", { callback: (_err, msg) => void msg.respond(msg.data) });
    assert.equal((await nc.request("echo", "hi", { timeout: 2_000 })).string(), "hi");
    assert.equal(nats.maxPayload, 8 * MiB);
    assert.equal(nc.info?.max_payload, 8 * MiB);
    assert.equal(nats.servers[0]!.clusterPort, undefined);
  } finally {
    await nc.close();
  }
});

describe("a 3-node JetStream cluster", () => {
  let nats: NatsCluster;
  let nc1: NatsConnection;
  let nc3: NatsConnection;
  const pids: (number | undefined)[] = [];

  before(async () => {
    nats = await startNats({ nodes: 3 });
    pids.push(...nats.servers.map((s) => s.process.pid));
    nc1 = await connectTo(nats.urls[0]!);
    nc3 = await connectTo(nats.urls[2]!);
  });
  after(async () => {
    await nc1?.close();
    await nc3?.close();
  });

  async function metaLeader(): Promise<string> {
    const jsz = await fetch(`http://127.0.0.1:${nats.servers[0]!.monitorPort}/jsz`).then((r) => r.json());
    return jsz.meta_cluster.leader;
  }

  test("has a meta leader and distinct ports per node", async () => {
    assert.match(await metaLeader(), /^n[123]$/);
    assert.equal(new Set(nats.servers.flatMap((s) => [s.clientPort, s.clusterPort, s.monitorPort])).size, 9);
    assert.equal(nats.maxPayload, 8 * MiB);
  });

  test("a request from node 1 reaches a subscriber on node 3", async () => {
    nc3.subscribe("cross.echo", { callback: (_err, msg) => void msg.respond(`n3:${msg.string()}`) });
    assert.equal(await requestUntilAnswered(nc1, "cross.echo", "ping"), "n3:ping");
  });

  test("creates a KV bucket with 3 replicas", async () => {
    const kv = await new Kvm(nc1).create("x", { replicas: 3 });
    assert.equal((await kv.status()).replicas, 3);
    await kv.put("k", "v1");
    assert.equal((await kv.get("k"))?.string(), "v1");
  });

  test("a killed node restarts on the same ports and rejoins", async () => {
    // Kill a node that leads neither the meta group nor the bucket's stream:
    // losing a leader costs a RAFT election (4-9 s in nats-server 2.9), which
    // tests JetStream rather than this launcher.
    const streamLeader = (await (await jetstreamManager(nc1)).streams.info("KV_x")).cluster?.leader;
    const leaders = [await metaLeader(), streamLeader];
    const index = nats.servers.findIndex((s) => !leaders.includes(s.name));
    const node = nats.servers[index]!;
    const survivor = nats.servers[(index + 1) % 3]!;
    const before = { url: node.url, clusterPort: node.clusterPort, monitorPort: node.monitorPort };
    await node.kill("SIGKILL");
    assert.equal(isAlive(pids[index]), false);
    const ncSurvivor = await connectTo(survivor.url);
    await (await new Kvm(ncSurvivor).open("x")).put("k", "v2"); // 2 of 3 replicas are a quorum
    await node.restart();
    pids.push(node.process.pid);
    assert.deepEqual({ url: node.url, clusterPort: node.clusterPort, monitorPort: node.monitorPort }, before);
    const ncRestarted = await connectTo(node.url);
    try {
      // A direct get may be answered by the restarted replica itself, which catches up shortly.
      const kv = await new Kvm(ncRestarted).open("x");
      await eventually(async () => assert.equal((await kv.get("k"))?.string(), "v2"));
      ncRestarted.subscribe("cross.back", { callback: (_err, msg) => void msg.respond(node.name) });
      assert.equal(await requestUntilAnswered(ncSurvivor, "cross.back", ""), node.name);
    } finally {
      await ncRestarted.close();
      await ncSurvivor.close();
    }
  });

  test("stop() leaves no process and no temp dir behind", async () => {
    await nats.stop();
    for (const pid of pids) assert.equal(isAlive(pid), false, `nats-server pid ${pid} still running`);
    await assert.rejects(access(nats.dataDir), { code: "ENOENT" });
  });
});
