// What both processes (sidecar and control) and the CLI share at run time:
// the NATS connection, credentials, the admin listener. The contract (names,
// subjects, schemas) is schemas/; this is code that does I/O.
export * from "./nats.ts";
export * from "./credentials.ts";
export * from "./admin-server.ts";
export * from "./lifecycle.ts";
export * from "./buckets.ts";
export * from "./package-root.ts";
export * from "./map-limit.ts";
export * from "./kv-read.ts";
