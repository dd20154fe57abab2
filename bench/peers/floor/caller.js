// The floor's caller: the least an HTTP -> NATS bridge can do. Each HTTP
// request becomes one nc.request() on SUBJECT (method and path in headers,
// body as payload); the reply's status header, content-type and body go back.
// Plain node, no TypeScript loader. argv: NATS_URL SUBJECT. Prints {"port":N}.
import { createServer } from "node:http";
import { connect, headers } from "@nats-io/transport-node";

const [natsUrl, subject] = process.argv.slice(2);
const nc = await connect({ servers: natsUrl, noAsyncTraces: true });

const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const h = headers();
    h.set("method", req.method);
    h.set("path", req.url);
    nc.request(subject, Buffer.concat(chunks), { timeout: 10_000, headers: h }).then(
      (msg) => {
        const type = msg.headers?.get("content-type");
        const head = { "content-length": msg.data.length, ...(type ? { "content-type": type } : {}) };
        res.writeHead(Number(msg.headers?.get("status") || 502), head);
        res.end(msg.data);
      },
      (err) => {
        res.writeHead(502);
        res.end(String(err.message));
      },
    );
  });
});

server.listen(0, "127.0.0.1", () => process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`));
process.once("SIGTERM", () => {
  setTimeout(() => process.exit(0), 2_000); // in case NATS is gone and drain() cannot finish
  server.closeAllConnections();
  server.close();
  nc.drain().finally(() => process.exit(0));
});
