// The Moleculer peer's gateway node: moleculer-web maps GET /echo to the
// remote action `bench.echo`, called through the NATS transporter.
// argv: NATS_URL. Prints {"port":N} once the service node is known.
import moleculer from "moleculer";
import ApiGateway from "moleculer-web";

const broker = new moleculer.ServiceBroker({
  namespace: "bench",
  nodeID: "bench-gateway",
  transporter: { type: "NATS", options: { url: process.argv[2] } },
  logLevel: "warn",
});
const api = broker.createService({
  name: "api",
  mixins: [ApiGateway],
  settings: {
    port: 0,
    ip: "127.0.0.1",
    routes: [{ path: "/", mappingPolicy: "restrict", aliases: { "GET echo": "bench.echo" } }],
  },
});
await broker.start();
await broker.waitForServices(["bench"], 20_000);
process.stdout.write(`${JSON.stringify({ port: api.server.address().port })}\n`);
process.once("SIGTERM", () => broker.stop().finally(() => process.exit(0)));
