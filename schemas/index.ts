export * from "./names.ts";
export * from "./subjects.ts";
export * from "./wire.ts";
export * from "./mesh-errors.ts";
export * from "./defaults.ts";
export * from "./validate.ts";
export * from "./sidecar-config.ts";
