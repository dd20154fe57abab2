import { parseArgs } from "node:util";
import pino from "pino";
import { Defaults, ValidationError, parseSidecarConfig } from "../schemas/index.ts";
import { startSidecar } from "./sidecar.ts";

const USAGE = `usage: mesh sidecar --service NAME [--version v1] [--app http://127.0.0.1:PORT]
                    [--listen 127.0.0.1:15001] [--admin 127.0.0.1:15090]
                    [--nats URLS] [--creds FILE] [--instance ID] [--timeout-ms N]
                    [--max-concurrent 1000] [--max-deadline-ms 300000]
                    [--headers-timeout-ms 10000] [--body-idle-timeout-ms 10000]
                    [--log-level info] [--otlp URL]
Every flag also reads an environment variable: MESH_SERVICE, MESH_VERSION, MESH_APP,
MESH_LISTEN, MESH_ADMIN, NATS_URL (comma-separated), NATS_CREDS, MESH_INSTANCE,
MESH_TIMEOUT_MS, MESH_MAX_CONCURRENT (0 = no limit), MESH_MAX_DEADLINE_MS,
MESH_HEADERS_TIMEOUT_MS, MESH_BODY_IDLE_TIMEOUT_MS, LOG_LEVEL, OTEL_EXPORTER_OTLP_ENDPOINT.
--otlp URL exports a span per request by OTLP/HTTP (JSON) to URL/v1/traces.`;

const FLAGS = {
  service: { type: "string", env: "MESH_SERVICE" },
  version: { type: "string", env: "MESH_VERSION" },
  app: { type: "string", env: "MESH_APP" },
  listen: { type: "string", env: "MESH_LISTEN" },
  admin: { type: "string", env: "MESH_ADMIN" },
  nats: { type: "string", env: "NATS_URL" },
  creds: { type: "string", env: "NATS_CREDS" },
  instance: { type: "string", env: "MESH_INSTANCE" },
  "timeout-ms": { type: "string", env: "MESH_TIMEOUT_MS" },
  "max-concurrent": { type: "string", env: "MESH_MAX_CONCURRENT" },
  "max-deadline-ms": { type: "string", env: "MESH_MAX_DEADLINE_MS" },
  "headers-timeout-ms": { type: "string", env: "MESH_HEADERS_TIMEOUT_MS" },
  "body-idle-timeout-ms": { type: "string", env: "MESH_BODY_IDLE_TIMEOUT_MS" },
  "log-level": { type: "string", env: "LOG_LEVEL" },
  otlp: { type: "string", env: "OTEL_EXPORTER_OTLP_ENDPOINT" },
  help: { type: "boolean", env: "" },
} as const;

/** Flags first, then environment variables; absent ones are left to the schema's defaults. */
function configInput(argv: string[]): Record<string, unknown> {
  const options = Object.fromEntries(Object.entries(FLAGS).map(([name, f]) => [name, { type: f.type }]));
  const { values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false });
  if (values.help) throw new UsageError("");
  const pick = (name: keyof typeof FLAGS): string | undefined => {
    const v = values[name] ?? (FLAGS[name].env ? process.env[FLAGS[name].env] : undefined);
    return typeof v === "string" && v !== "" ? v : undefined;
  };
  const number = (name: keyof typeof FLAGS) => {
    const v = pick(name);
    return v === undefined ? undefined : Number(v);
  };
  const input: Record<string, unknown> = {
    service: pick("service"),
    version: pick("version"),
    app: pick("app"),
    listen: pick("listen"),
    admin: pick("admin"),
    nats: (pick("nats") ?? Defaults.natsUrl).split(",").map((s) => s.trim()).filter(Boolean),
    creds: pick("creds"),
    instance: pick("instance"),
    requestTimeoutMs: number("timeout-ms"),
    maxConcurrent: number("max-concurrent"),
    maxDeadlineMs: number("max-deadline-ms"),
    headersTimeoutMs: number("headers-timeout-ms"),
    bodyIdleTimeoutMs: number("body-idle-timeout-ms"),
    logLevel: pick("log-level"),
    otlp: pick("otlp"),
  };
  for (const key of Object.keys(input)) if (input[key] === undefined) delete input[key];
  return input;
}

class UsageError extends Error {}

/** `mesh sidecar ...`: runs until SIGTERM or SIGINT, then drains. Returns the exit code. */
export async function main(args: string[]): Promise<number> {
  let config;
  try {
    config = parseSidecarConfig(configInput(args.slice(1)));
  } catch (err) {
    if (err instanceof ValidationError) {
      for (const p of err.problems) console.error(`mesh sidecar: ${p.path}: ${p.message}`);
      return 1;
    }
    if (err instanceof UsageError && err.message === "") {
      console.log(USAGE);
      return 0;
    }
    console.error(`mesh sidecar: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  const logger = pino({ level: config.logLevel, base: { component: "sidecar" } }, pino.destination({ sync: false }));
  const sidecar = await startSidecar(config, { logger });
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, "stopping");
      sidecar.drain().then(resolve, resolve);
    };
    process.once("SIGTERM", stop);
    process.once("SIGINT", stop);
  });
  logger.flush();
  // Drained: nothing of ours is left to finish, so a lingering handle must not keep the process alive.
  setTimeout(() => process.exit(0), 100).unref();
  return 0;
}
