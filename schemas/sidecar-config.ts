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
  maxConcurrent: number;
  logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
}

const validate = ajv.compile(schema);

/** The one way a sidecar config enters: validated, defaults applied, frozen. */
export function parseSidecarConfig(input: unknown): Readonly<SidecarConfig> {
  return validateFrozen<SidecarConfig>(validate, "sidecar config", input);
}
