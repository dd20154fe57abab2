// The application under the bench: as cheap as an HTTP server gets, so the
// numbers measure the path to it rather than the app. Answers every request
// with the same ~100-byte JSON body over keep-alive connections.
// Prints {"port": N, "bodyBytes": N} on stdout once it listens (it binds port 0).
import { createServer } from "node:http";

const BODY = Buffer.from(
  JSON.stringify({ service: "bench", ok: true, message: "hello from the bench echo app", padding: "xxxxxxxxxxxxxxxxxxxx" }),
);

/** `GET /bytes/<n>`: n bytes, written as the socket drains (the large-transfer table). */
const BYTES = /^\/bytes\/(\d{1,12})$/;
const FILL = Buffer.alloc(1024 * 1024, 0x61);

function sendBytes(res: import("node:http").ServerResponse, total: number): void {
  res.writeHead(200, { "content-type": "application/octet-stream", "content-length": total });
  let left = total;
  const pump = () => {
    while (left > 0) {
      const n = Math.min(left, FILL.length);
      left -= n;
      if (!res.write(n === FILL.length ? FILL : FILL.subarray(0, n))) return void res.once("drain", pump);
    }
    res.end();
  };
  pump();
}

const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
  const bytes = BYTES.exec(req.url ?? "");
  if (bytes) return sendBytes(res, Number(bytes[1]));
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
