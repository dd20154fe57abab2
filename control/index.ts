// What other parts (the CLI, tests, bench, embedders) may use of the control service.
export { startControl, isControlRequest, type ControlService } from "./service.ts";
export { runControl, type ControlOptions } from "./main.ts";
export { PolicyStore } from "./policy-store.ts";
export { ControlError } from "./errors.ts";
export { requestControl, ControlRefusedError, ControlUnreachableError, NO_RESPONDERS_GRACE_MS } from "./client.ts";
export { bucketSpecs, type BucketSpec } from "./buckets.ts";
export { ACCESS_STREAM, ACCESS_STREAM_LIMITS } from "./access-stream.ts";
export { LEASE_BUCKET, TELEMETRY_LEASE_KEY } from "./telemetry-lease.ts";
