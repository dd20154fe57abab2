// The local mesh: `mesh up` (a NATS cluster from nats.conf, control, the demo
// services and their sidecars), the nats-server launcher, and `mesh creds`.
// The only part of the repository that imports services/ (the demo).
export { up } from "./up.ts";
export { UP_DEFAULTS, MAX_NODES, checkUpOptions, type UpOptions } from "./up-plan.ts";
export { demoServices } from "../services/manifest.ts";
export { CredsError, seedFile, writeCreds, type CredsResult } from "./creds.ts";
export { ensureNatsServer, findNatsServer, natsServerVersion, NatsServerError, MIN_NATS_SERVER_VERSION } from "./nats-binary.ts";
export { ensureChromium, ChromiumError } from "./chromium-binary.ts";
export { planUp, plannedPorts } from "./up-plan.ts";
export { tryListen } from "./up-probe.ts";
export { startNatsCluster, stopAll, type NatsCluster, type NatsNode } from "./nats-cluster.ts";
export { startSupercluster, type Supercluster, type StartSuperclusterOptions } from "./nats-supercluster.ts";
