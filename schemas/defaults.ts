/**
 * Defaults that are not part of a schema (the sidecar's own settings have
 * their defaults in sidecar-config.schema.json); units are in the names.
 */
export const Defaults = {
  controlAdminListen: "127.0.0.1:15100",
  natsUrl: "nats://127.0.0.1:4222",
  /** keep-alive connections a provider sidecar may open to its app */
  appConnections: 256,
  /** a draining sidecar gives in-flight requests this long before it exits anyway (the schema's drainTimeoutMs default) */
  drainTimeoutMs: 35_000,
  /** NATS reconnect pacing */
  reconnectTimeWaitMs: 250,
  /** waits between failed first connection attempts: doubling from initial to max */
  firstConnectBackoffMs: { initial: 250, max: 5_000 },
  /** one first connection attempt may take this long (a server that accepts TCP but never answers) */
  firstConnectAttemptMs: 5_000,
} as const;
