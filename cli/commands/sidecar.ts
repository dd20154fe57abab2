import { Defaults, parseSidecarConfig, ValidationError } from "../../schemas/index.ts";
import { NatsUnreachableError } from "../../runtime/index.ts";
import { NATS_FLAGS, UsageError, stringValue, type Parsed } from "../args.ts";
import { CliError, Exit } from "../client.ts";
import type { Command } from "../command.ts";

/** Flags of `mesh sidecar` and the config field each sets; numbers are converted, the schema checks the rest. */
const FIELDS: ReadonlyArray<[flag: string, field: string, number?: true]> = [
  ["service", "service"],
  ["version", "version"],
  ["app", "app"],
  ["listen", "listen"],
  ["admin", "admin"],
  ["creds", "creds"],
  ["instance", "instance"],
  ["region", "region"],
  ["connect-timeout", "connectTimeoutMs", true],
  ["timeout-ms", "requestTimeoutMs", true],
  ["max-concurrent", "maxConcurrent", true],
  ["max-deadline-ms", "maxDeadlineMs", true],
  ["headers-timeout-ms", "headersTimeoutMs", true],
  ["body-idle-timeout-ms", "bodyIdleTimeoutMs", true],
  ["max-body-bytes", "maxBodyBytes", true],
  ["stream-idle-timeout-ms", "streamIdleTimeoutMs", true],
  ["fast-path-max-bytes", "fastPathMaxBytes", true],
  ["log-level", "logLevel"],
  ["otlp", "otlp"],
];

/** The config input from flags (and their environment variables); absent ones are left to the schema's defaults. */
export function sidecarConfigInput(p: Parsed): Record<string, unknown> {
  const input: Record<string, unknown> = {
    nats: (stringValue(p, "nats") ?? Defaults.natsUrl).split(",").map((s) => s.trim()).filter(Boolean),
  };
  for (const [flag, field, isNumber] of FIELDS) {
    const v = stringValue(p, flag);
    if (v !== undefined) input[field] = isNumber ? Number(v) : v;
  }
  return input;
}

async function sidecar(p: Parsed): Promise<number> {
  let config;
  try {
    config = parseSidecarConfig(sidecarConfigInput(p));
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    const problems = err.problems.map((x) => `${flagOf(x.path)} ${x.message}`);
    // One problem, one line; several are listed under it.
    if (problems.length === 1) throw new UsageError(problems[0]!);
    throw new CliError(Exit.usage, "invalid sidecar options", problems);
  }
  // Loaded on use: a CLI call that only talks to control never loads the sidecar (docs/cli.md "Latency").
  const { runSidecar } = await import("../../sidecar/index.ts");
  return runSidecar(config).catch(unreachableExit);
}

/** A first connection that gave up (--connect-timeout) exits 3 with the CLI's own words. */
export function unreachableExit(err: unknown): never {
  if (err instanceof NatsUnreachableError) throw new CliError(Exit.unreachable, err.message);
  throw err;
}

/** `requestTimeoutMs` -> `--timeout-ms`, for messages in the user's words. */
function flagOf(path: string): string {
  const field = path.split(/[.[]/)[0];
  const row = FIELDS.find(([, f]) => f === field);
  return row ? `--${row[0]}` : path === "nats" || path.startsWith("nats[") ? "--nats" : path;
}

export const SIDECAR_COMMAND: Command = {
  synopsis: "sidecar --service NAME [--version v1] [--app http://127.0.0.1:PORT] [--listen ADDR] [--admin ADDR] [--nats URLS] [--creds FILE]",
  summary: "one sidecar; without --app it only calls out",
  details: "Runs until SIGTERM or SIGINT, then drains: it leaves its queue groups, answers what it holds and exits.",
  args: {
    flags: {
      service: { type: "string", env: "MESH_SERVICE", value: "NAME", help: "this instance's service (required)" },
      version: { type: "string", env: "MESH_VERSION", value: "v1", help: "the version it serves" },
      app: { type: "string", env: "MESH_APP", value: "URL", help: "the local application; absent: only calls out" },
      listen: { type: "string", env: "MESH_LISTEN", value: "127.0.0.1:15001", help: "outbound listener (HTTP proxy and Host addressing)" },
      admin: { type: "string", env: "MESH_ADMIN", value: "127.0.0.1:15090", help: "admin listener: /healthz /readyz /metrics /config" },
      ...NATS_FLAGS,
      instance: { type: "string", env: "MESH_INSTANCE", value: "ID", help: "instance name (default: host and random suffix)" },
      region: { type: "string", env: "MESH_REGION", value: "NAME", help: "region for locality (default: the NATS server's cluster name)" },
      "connect-timeout": { type: "string", env: "MESH_CONNECT_TIMEOUT", value: "MS", help: "exit 3 when NATS cannot be reached within MS at start (default: keep trying)" },
      "timeout-ms": { type: "string", env: "MESH_TIMEOUT_MS", value: "N", help: "deadline of a call whose route sets none (default 30000)" },
      "max-concurrent": { type: "string", env: "MESH_MAX_CONCURRENT", value: "N", help: "requests served at once; more are answered overloaded (default 1000, 0 = no limit)" },
      "max-deadline-ms": { type: "string", env: "MESH_MAX_DEADLINE_MS", value: "N", help: "cap on a caller's deadline (default 300000)" },
      "headers-timeout-ms": { type: "string", env: "MESH_HEADERS_TIMEOUT_MS", value: "N", help: "an application's request headers must arrive within this (default 10000)" },
      "body-idle-timeout-ms": { type: "string", env: "MESH_BODY_IDLE_TIMEOUT_MS", value: "N", help: "a request body may pause this long (default 10000)" },
      "max-body-bytes": { type: "string", env: "MESH_MAX_BODY_BYTES", value: "N", help: "request bodies over this are answered 413 (default 1 GiB; a route may set its own)" },
      "stream-idle-timeout-ms": { type: "string", env: "MESH_STREAM_IDLE_TIMEOUT_MS", value: "N", help: "a streamed body that moves no data this long ends (default 300000)" },
      "fast-path-max-bytes": { type: "string", env: "MESH_FAST_PATH_MAX_BYTES", value: "N", help: "a body known to be at most this travels in one NATS message, larger ones stream (default 262144)" },
      "log-level": { type: "string", env: "LOG_LEVEL", value: "info", help: "fatal, error, warn, info, debug, trace or silent" },
      otlp: { type: "string", env: "OTEL_EXPORTER_OTLP_ENDPOINT", value: "URL", help: "export a span per request by OTLP/HTTP JSON to URL/v1/traces" },
    },
  },
  run: sidecar,
};
