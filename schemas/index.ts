export * from "./names.ts";
export * from "./subjects.ts";
export * from "./wire.ts";
export * from "./mesh-errors.ts";
export * from "./defaults.ts";
export * from "./validate.ts";
export * from "./sidecar-config.ts";
export * from "./registry.ts";
export * from "./glob.ts";
export * from "./header-regex.ts";
export * from "./policy.ts";
export * from "./quota.ts";
export * from "./control-api.ts";
export * from "./telemetry.ts";
export * from "./creds.ts";
// Runtime pieces both the sidecar and control need.
export * from "./nats-connection.ts";
export * from "./admin-server.ts";
