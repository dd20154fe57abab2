// The Moleculer peer's service node: action `bench.echo` answers the echo
// app's JSON itself (there is no app behind it). argv: NATS_URL. Prints
// {"ready":true} once its broker has connected and announced the service.
import moleculer from "moleculer";

const BODY = { service: "bench", ok: true, message: "hello from the bench echo app", padding: "xxxxxxxxxxxxxxxxxxxx" };

const broker = new moleculer.ServiceBroker({
  namespace: "bench",
  nodeID: "bench-service",
  transporter: { type: "NATS", options: { url: process.argv[2] } },
  logLevel: "warn",
});
broker.createService({ name: "bench", actions: { echo: () => BODY } });
await broker.start();
process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
process.once("SIGTERM", () => broker.stop().finally(() => process.exit(0)));
