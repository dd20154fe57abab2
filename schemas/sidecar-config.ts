import schema from "./sidecar-config.schema.json" with { type: "json" };
import { ajv, validateFrozen } from "./validate.ts";

/** See sidecar-config.schema.json for what each field means and what absence means. */
export interface SidecarConfig {
  service: string;
  version: string;
  instance?: string;
  app?: string;
  listen: string;
  admin: string;
  nats: string[];
  creds?: string;
  requestTimeoutMs: number;
  drainTimeoutMs: number;
  /** OTLP/HTTP endpoint for spans; absent: nothing exported */
  otlp?: string;
  /** provider: requests at once (0 = no limit) */
  maxConcurrent: number;
  /** provider: a caller's deadline is at most this far ahead (ms) */
  maxDeadlineMs: number;
  /** outbound listener: time to receive a request's headers, and between bytes of its body (ms) */
  headersTimeoutMs: number;
  bodyIdleTimeoutMs: number;
  logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
}

const validate = ajv.compile(schema);

/** The one way a sidecar config enters: validated, defaults applied, frozen. */
export function parseSidecarConfig(input: unknown): Readonly<SidecarConfig> {
  return validateFrozen<SidecarConfig>(validate, "sidecar config", input);
}
