// The application under the bench: as cheap as an HTTP server gets, so the
// numbers measure the path to it rather than the app. Answers every request
// with the same ~100-byte JSON body over keep-alive connections.
// Prints {"port": N, "bodyBytes": N} on stdout once it listens (it binds port 0).
import { createServer } from "node:http";

const BODY = Buffer.from(
  JSON.stringify({ service: "bench", ok: true, message: "hello from the bench echo app", padding: "xxxxxxxxxxxxxxxxxxxx" }),
);

const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
  // Drain any request body so the connection can be reused.
  req.resume();
  req.once("end", () => {
    res.writeHead(200, { "content-type": "application/json", "content-length": BODY.length });
    res.end(BODY);
  });
});

server.listen(0, "127.0.0.1", () => {
  const { port } = server.address() as { port: number };
  process.stdout.write(`${JSON.stringify({ port, bodyBytes: BODY.length })}\n`);
});

const stop = () => {
  server.close(() => process.exit(0));
  // close() alone would wait for idle keep-alive sockets to time out.
  server.closeAllConnections();
};
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
