// The floor's provider: a queue subscription on SUBJECT; each message becomes
// one undici Pool request to the app, answered with msg.respond() (status and
// content-type in headers, the body as payload).
// Plain node, no TypeScript loader. argv: NATS_URL SUBJECT APP_ORIGIN. Prints {"ready":true}.
import { connect, headers } from "@nats-io/transport-node";
import { Pool } from "undici";

const [natsUrl, subject, app] = process.argv.slice(2);
const nc = await connect({ servers: natsUrl, noAsyncTraces: true });
// As many connections as the sidecar's app pool (schemas/defaults.ts appConnections).
const pool = new Pool(app, { connections: 256, keepAliveTimeout: 30_000 });

nc.subscribe(subject, {
  queue: "floor",
  callback: (_err, msg) => {
    const method = msg.headers?.get("method") || "GET";
    const body = method === "GET" || method === "HEAD" ? undefined : msg.data;
    pool.request({ method, path: msg.headers?.get("path") || "/", body }).then(
      async (res) => {
        const h = headers();
        h.set("status", String(res.statusCode));
        if (res.headers["content-type"]) h.set("content-type", String(res.headers["content-type"]));
        msg.respond(new Uint8Array(await res.body.arrayBuffer()), { headers: h });
      },
      (err) => {
        const h = headers();
        h.set("status", "502");
        msg.respond(String(err.message), { headers: h });
      },
    );
  },
});
await nc.flush();
process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
process.once("SIGTERM", () => {
  setTimeout(() => process.exit(0), 2_000); // in case NATS is gone and drain() cannot finish
  nc.drain().finally(() => process.exit(0));
});
