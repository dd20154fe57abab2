// Real nats-server processes for tests: started on server-chosen ports in a
// temp dir, always stopped and removed when the test (or file) ends.
import type { TestContext } from "node:test";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { onFileEnd } from "./cleanup.ts";
import { ensureNatsServer } from "../../local/nats-binary.ts";
import { type NatsCluster, type StartNatsClusterOptions, startNatsCluster } from "../../local/nats-cluster.ts";

export type { NatsCluster, NatsNode } from "../../local/nats-cluster.ts";

export type NatsTestOptions = Partial<Omit<StartNatsClusterOptions, "config" | "bin">>;

/**
 * Starts `nodes` servers (default 1, JetStream on) that live until the test
 * file ends, e.g. from a suite's `before` hook. Calling stop() earlier is fine.
 */
export async function startNats(opts: NatsTestOptions = {}): Promise<NatsCluster> {
  const cluster = await launch(opts);
  onFileEnd(() => cluster.stop());
  return cluster;
}

/** Like startNats, but cleanup belongs to test `t` (runs when `t` ends). */
export async function withNats(t: TestContext, opts: NatsTestOptions = {}): Promise<NatsCluster> {
  const cluster = await launch(opts);
  t.after(() => cluster.stop());
  return cluster;
}

async function launch(opts: NatsTestOptions): Promise<NatsCluster> {
  // ensureNatsServer memoizes, so the binary is looked up once per test process.
  const bin = await ensureNatsServer();
  return startNatsCluster({ nodes: 1, ...opts, bin, config: "generated" });
}

/** A plain client connection (no credentials) that is closed when the test file ends. */
export async function connectClient(urls: string[]): Promise<NatsConnection> {
  const nc = await connect({ servers: urls, noAsyncTraces: true });
  onFileEnd(() => nc.close());
  return nc;
}
