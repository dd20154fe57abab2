/** Defaults in one place; units are in the names. */
export const Defaults = {
  /** deadline of a call when neither the route nor the caller sets one */
  requestTimeoutMs: 30_000,
  outboundListen: "127.0.0.1:15001",
  adminListen: "127.0.0.1:15090",
  controlAdminListen: "127.0.0.1:15100",
  natsUrl: "nats://127.0.0.1:4222",
  version: "v1",
  /** keep-alive connections a provider sidecar may open to its app */
  appConnections: 256,
  /** how long /readyz waits for the app to answer */
  appProbeTimeoutMs: 1_000,
  /** a draining sidecar gives in-flight requests this long before it exits anyway */
  drainTimeoutMs: 35_000,
  /** NATS reconnect pacing */
  reconnectTimeWaitMs: 250,
} as const;
