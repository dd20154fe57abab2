// One process of policy watchers for bench/propagation.ts. Each watcher is
// what a sidecar runs to follow Routes: the sidecar's own KvFollower and
// KvReader on its own NATS connection, with the sidecar's check
// (checkStoredPolicy) and compileRoute on every change. Not a whole sidecar:
// no listener, no admin server, no telemetry.
//
// argv: JSON {urls, count, first}. Watcher k connects to urls[(first + k) % urls.length].
// stdout, one JSON line each: {"ready": true} once every watcher has read the
// bucket; then {"revision": r, "at": t} whenever the revision every watcher
// has applied rises to r, with t the time (performance.timeOrigin + now(), ms)
// the last of them applied it.
import { connect, type NatsConnection } from "@nats-io/transport-node";
import pino from "pino";
import { POLICY_BUCKETS, checkStoredPolicy, type RoutePolicy } from "../schemas/index.ts";
import { compileRoute, KvFollower, KvReader } from "../sidecar/index.ts";

interface Spec {
  urls: string[];
  count: number;
  first: number;
}

const spec = JSON.parse(process.argv[2] ?? "") as Spec;
const logger = pino({ level: "warn" });
const applied = new Array<number>(spec.count).fill(0);
const appliedAt = new Array<number>(spec.count).fill(0);
let reported = 0;
const now = () => performance.timeOrigin + performance.now();

/** Reports when the revision every watcher has reached goes up. */
function maybeReport(): void {
  let min = Infinity;
  let last = 0;
  for (let i = 0; i < spec.count; i++) {
    min = Math.min(min, applied[i]!);
    last = Math.max(last, appliedAt[i]!);
  }
  if (min > reported) {
    reported = min;
    process.stdout.write(`${JSON.stringify({ revision: min, at: last })}\n`);
  }
}

const connections: NatsConnection[] = [];
const followers: Array<KvFollower<RoutePolicy>> = [];
for (let i = 0; i < spec.count; i++) {
  const nc = await connect({ servers: [spec.urls[(spec.first + i) % spec.urls.length]!], noAsyncTraces: true });
  connections.push(nc);
  const follower = new KvFollower<RoutePolicy>({
    nc,
    reader: new KvReader(nc),
    logger,
    quiet: true,
    bucket: POLICY_BUCKETS.Route,
    key: ">",
    check: (doc, key) => checkStoredPolicy("Route", key, doc, true) as { ok: true; value: RoutePolicy } | { ok: false; problems: string[] },
    onChange: (_key, policy) => {
      if (!policy) return;
      compileRoute(policy.document);
      applied[i] = policy.revision;
      appliedAt[i] = now();
      maybeReport();
    },
    onRejected: () => undefined,
  });
  await follower.start();
  followers.push(follower);
}
process.stdout.write(`${JSON.stringify({ ready: true })}\n`);

process.once("SIGTERM", () => {
  for (const f of followers) f.stop();
  void Promise.all(connections.map((nc) => nc.close())).finally(() => process.exit(0));
});
