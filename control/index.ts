// What other parts (tests, bench, embedders) may use of control: the service,
// the CLI entry, and the nats-server bootstrap and launcher.
export { startControl, isControlRequest, type ControlService } from "./service.ts";
export { PolicyStore } from "./policy-store.ts";
export { ControlError } from "./errors.ts";
export { CliError, Exit, connectCli, controlRequest } from "./client.ts";
export { main } from "./cli.ts";
export { ensureNatsServer, natsServerVersion, NatsServerError } from "./nats-binary.ts";
export { startNatsCluster, stopAll, type NatsCluster, type NatsNode } from "./nats-cluster.ts";
