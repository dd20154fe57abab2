import type { Msg, NatsConnection, Subscription } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { Counter, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { CONTROL_QUEUE, CTL_PREFIX, SHARED_INBOX_PREFIX, ctlSubject, type ControlVerb } from "../schemas/index.ts";
import { ensureBuckets } from "./buckets.ts";
import { ControlError } from "./errors.ts";
import { PolicyStore } from "./policy-store.ts";
import { QuotaLeases } from "./quota.ts";
import { InstanceRegistry } from "./registry.ts";
import { ensureAccessStream } from "./access-stream.ts";
import { startTelemetry, type ControlTelemetry } from "./telemetry.ts";

export interface ControlService {
  readonly store: PolicyStore;
  readonly registry: Registry;
  /** mesh-wide metrics merged from sidecars' telemetry */
  readonly telemetry: ControlTelemetry;
  stop(): Promise<void>;
}

/** What a verb works with; `subject` is the request's: `mesh.ctl.v1.<verb>`, or `mesh.ctl.v1.<verb>.<service>` for quota and register. */
interface Parts {
  store: PolicyStore;
  quota: QuotaLeases;
  registry: InstanceRegistry;
  telemetry: ControlTelemetry;
  subject: string;
}

type Handler = (body: any, parts: Parts) => Promise<unknown>;

/** Verbs sent on `mesh.ctl.v1.<verb>.<service>`, the service being the one secure mode lets the sender speak for. */
const SCOPED_VERBS: ReadonlySet<string> = new Set(["quota", "register"]);

/** One line per verb: adding a verb is adding a line. */
const HANDLERS: Readonly<Record<ControlVerb, Handler>> = {
  apply: (b, p) => p.store.apply(b),
  validate: (b, p) => p.store.validate(b),
  get: (b, p) => p.store.get(b),
  delete: (b, p) => p.store.delete(b),
  history: (b, p) => p.store.history(b),
  rollback: (b, p) => p.store.rollback(b),
  services: (_b, p) => p.store.services(),
  quota: (b, p) => p.quota.lease(b, p.subject),
  register: (b, p) => p.registry.register(b, p.subject),
  stats: async (b, p) => p.telemetry.stats(b),
};

/**
 * Serves `mesh.ctl.v1.<verb>` in a queue group: run as many replicas as you
 * like; each request is answered by one of them, and all state is in KV.
 * `instance` names this replica (logs, the telemetry lease); absent: a random name.
 */
export async function startControl(nc: NatsConnection, logger: Logger, registry = new Registry(), instance = `control-${crypto.randomUUID().slice(0, 8)}`): Promise<ControlService> {
  collectDefaultMetrics({ register: registry });
  const requests = new Counter({ name: "mesh_control_requests_total", help: "Control requests by verb and outcome", labelNames: ["verb", "outcome"], registers: [registry] });
  const duration = new Histogram({ name: "mesh_control_request_duration_seconds", help: "Control request handling time", labelNames: ["verb"], registers: [registry] });
  const buckets = await ensureBuckets(nc, logger);
  const store = new PolicyStore(buckets);
  const quota = new QuotaLeases(buckets.quota);
  const instances = new InstanceRegistry(buckets.registry);
  // Access logs are not worth refusing to serve policy for: without the stream, sidecars drop and count records.
  await ensureAccessStream(nc, logger).catch((err) => logger.error({ err }, "access log stream MESH_ACCESS not created"));
  const telemetry = await startTelemetry({ nc, logger, registry, holder: instance });

  const handle = async (msg: Msg): Promise<void> => {
    const tokens = msg.subject.split(".");
    const handler = Object.hasOwn(HANDLERS, tokens[3]!) ? HANDLERS[tokens[3] as ControlVerb] : undefined;
    // A label per verb we serve, one for anything else: subjects are the callers' to choose.
    const verb = handler ? tokens[3]! : "unknown";
    const stopTimer = duration.startTimer({ verb });
    let outcome = "ok";
    let reply: unknown;
    try {
      if (!handler) throw new ControlError("bad_request", `unknown control verb '${String(tokens[3]).slice(0, 40)}'`);
      // mesh.ctl.v1.<verb>, and mesh.ctl.v1.<verb>.<service> for the verbs a sidecar sends as itself.
      if (tokens.length !== (SCOPED_VERBS.has(verb) ? 5 : 4)) throw new ControlError("bad_request", `no control verb is served on ${msg.subject.slice(0, 120)}`);
      const body = msg.data.length > 0 ? msg.json<unknown>() : {};
      reply = { ok: true, ...((await handler(body, { store, quota, registry: instances, telemetry, subject: msg.subject })) as object) };
    } catch (err) {
      const error = err instanceof ControlError ? err : new ControlError("internal", (err as Error).message, { cause: err });
      if (error.code === "internal") logger.error({ err, verb }, "control request failed");
      outcome = error.code;
      reply = { ok: false, error: error.toBody() };
    }
    requests.inc({ verb, outcome });
    stopTimer();
    msg.respond(JSON.stringify(reply));
  };

  const sub: Subscription = nc.subscribe(ctlSubject(">"), {
    queue: CONTROL_QUEUE,
    callback: (err, msg) => {
      if (err) logger.error({ err }, "control subscription failed");
      else if (isControlRequest(msg)) void handle(msg);
      else logger.warn({ subject: msg.subject, reply: msg.reply }, "ignored a message that is not a control request");
    },
  });
  await nc.flush();
  logger.info({ subject: ctlSubject(">"), queue: CONTROL_QUEUE }, "control serving");
  return {
    store,
    registry,
    telemetry,
    stop: async () => {
      await sub.drain();
      await telemetry.stop();
    },
  };
}

/**
 * Only requests a client made: a control subject and an inbox to answer to
 * (`_INBOX.…`, or `_R_.…` when the request came through secure mode's
 * import from the sidecars' account). A message without a reply, or whose
 * reply is not an inbox, may be something else reflected here (a JetStream
 * delivery or direct get whose reply a client pointed at a control subject)
 * and is never served.
 */
export function isControlRequest(msg: Pick<Msg, "subject" | "reply">): boolean {
  const reply = msg.reply ?? "";
  return msg.subject.startsWith(`${CTL_PREFIX}.`) && (reply.startsWith(`${SHARED_INBOX_PREFIX}.`) || reply.startsWith(IMPORT_REPLY_PREFIX));
}

/** nats-server's reply subjects for requests that crossed a service import */
const IMPORT_REPLY_PREFIX = "_R_.";
