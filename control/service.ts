import type { Msg, NatsConnection, Subscription } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { Counter, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import {
  CONTROL_QUEUE,
  CTL_PREFIX,
  SHARED_INBOX_PREFIX,
  SIDECAR_VERBS,
  checkControlRequest,
  ctlSubject,
  formatProblems,
  type ControlReplies,
  type ControlVerb,
  type ValidControlRequests,
} from "../schemas/index.ts";
import { atMost, whileJetStreamSettles } from "../runtime/index.ts";
import { ensureBuckets } from "./buckets.ts";
import { ControlError } from "./errors.ts";
import { PolicyStore } from "./policy-store.ts";
import { QuotaLeases } from "./quota.ts";
import { InstanceRegistry } from "./registry.ts";
import { AccessReader } from "./access-read.ts";
import { BucketKeys } from "./bucket-keys.ts";
import { FairDispatcher } from "./dispatch.ts";
import { ensureAccessStream } from "./access-stream.ts";
import { startTelemetry, type ControlTelemetry } from "./telemetry.ts";
import { DASHBOARD_PATH } from "./dashboard/paths.ts";

export interface ControlService {
  readonly store: PolicyStore;
  readonly registry: Registry;
  /** mesh-wide metrics merged from sidecars' telemetry */
  readonly telemetry: ControlTelemetry;
  /** access records from MESH_ACCESS (the `logs` verb, the dashboard's tail) */
  readonly access: AccessReader;
  /** this replica's name */
  readonly instance: string;
  /** Says where this replica's admin listener is, for the `info` verb (`mesh dashboard`). */
  setAdminUrl(url: string): void;
  stop(): Promise<void>;
}

/** What a verb's handler may use. */
interface HandlerContext {
  store: PolicyStore;
  quota: QuotaLeases;
  instances: InstanceRegistry;
  telemetry: ControlTelemetry;
  access: AccessReader;
  keys: BucketKeys;
  info: () => ControlReplies["info"];
}

/**
 * A verb's handler gets its request validated against the verb's schema,
 * defaults applied. `subject` is the request's subject: `mesh.ctl.v1.<verb>`,
 * or `mesh.ctl.v1.<verb>.<service>` for the scoped verbs.
 */
type Handler<V extends ControlVerb> = (c: HandlerContext, req: ValidControlRequests[V], subject: string) => Promise<ControlReplies[V]>;

/** Verbs sent on `mesh.ctl.v1.<verb>.<service>`, the service being the one secure mode lets the sender speak for. */
const SCOPED_VERBS: ReadonlySet<string> = new Set(SIDECAR_VERBS);

/** One line per verb: adding a verb is adding a line. */
const HANDLERS: { readonly [V in ControlVerb]: Handler<V> } = {
  apply: (c, b) => c.store.apply(b),
  validate: (c, b) => c.store.validate(b),
  get: (c, b) => c.store.get(b),
  delete: (c, b) => c.store.delete(b),
  history: (c, b) => c.store.history(b),
  rollback: (c, b) => c.store.rollback(b),
  services: (c) => c.store.services(),
  quota: (c, b, subject) => c.quota.lease(b, subject),
  register: (c, b, subject) => c.instances.register(b, subject),
  stats: async (c, b) => c.telemetry.stats(b),
  logs: (c, b) => c.access.logs(b),
  info: async (c) => c.info(),
  keys: (c, b, subject) => c.keys.list(b, subject),
};

/**
 * Serves `mesh.ctl.v1.<verb>` in a queue group: run as many replicas as you
 * like; each request is answered by one of them, and all state is in KV.
 * Handlers run with bounded concurrency, fairly across quota identities
 * (control/dispatch.ts); a request whose queue is full is answered at once
 * with `overloaded`.
 * `instance` names this replica (logs, the telemetry lease); absent: a random name.
 */
export async function startControl(
  nc: NatsConnection,
  logger: Logger,
  registry = new Registry(),
  instance = `control-${crypto.randomUUID().slice(0, 8)}`,
  opts: { now?: () => number } = {},
): Promise<ControlService> {
  collectDefaultMetrics({ register: registry });
  const requests = new Counter({ name: "mesh_control_requests_total", help: "Control requests by verb and outcome", labelNames: ["verb", "outcome"], registers: [registry] });
  const duration = new Histogram({ name: "mesh_control_request_duration_seconds", help: "Control request handling time", labelNames: ["verb"], registers: [registry] });
  // A cluster that has just (re)started may not answer yet: retried, not fatal (docs/architecture.md §14).
  const buckets = await whileJetStreamSettles("creating buckets", logger, () => ensureBuckets(nc, logger));
  const store = new PolicyStore(buckets);
  const quota = new QuotaLeases(buckets.quota, opts.now);
  // Access logs are not worth refusing to serve policy for: without the stream, sidecars drop and count records.
  await whileJetStreamSettles("creating stream MESH_ACCESS", logger, () => ensureAccessStream(nc, logger)).catch((err) => logger.error({ err }, "access log stream MESH_ACCESS not created"));
  const telemetry = await startTelemetry({ nc, logger, registry, holder: instance });
  const instances = new InstanceRegistry(buckets.registry);
  let adminUrl: string | undefined;
  const info = (): ControlReplies["info"] => (adminUrl ? { instance, admin: adminUrl, dashboard: `${adminUrl}${DASHBOARD_PATH}` } : { instance });
  const access = new AccessReader(nc, registry);
  const keys = new BucketKeys(nc, buckets.home);
  const context: HandlerContext = { store, quota, instances, telemetry, access, keys, info };

  const handle = async (msg: Msg): Promise<void> => {
    const verb = verbOf(msg.subject);
    const stopTimer = duration.startTimer({ verb });
    let outcome = "ok";
    let reply: unknown;
    try {
      if (!Object.hasOwn(HANDLERS, verb)) throw new ControlError("bad_request", `unknown control verb '${msg.subject.split(".")[3]?.slice(0, 40)}'`);
      // mesh.ctl.v1.<verb>, and mesh.ctl.v1.<verb>.<service> for the verbs a sidecar sends as itself.
      const tokens = msg.subject.split(".").length;
      if (tokens !== (SCOPED_VERBS.has(verb) ? 5 : 4)) throw new ControlError("bad_request", `no control verb is served on ${msg.subject.slice(0, 120)}`);
      reply = { ok: true, ...(await serve(context, verb as ControlVerb, msg)) };
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

  const dispatcher = new FairDispatcher<Msg>(handle);
  const refuse = (msg: Msg): void => {
    const verb = verbOf(msg.subject);
    requests.inc({ verb, outcome: "overloaded" });
    const error = new ControlError("overloaded", `control is busy with requests like this one (${dispatchKey(msg.subject)}); try again`);
    msg.respond(JSON.stringify({ ok: false, error: error.toBody() }));
  };

  const sub: Subscription = nc.subscribe(ctlSubject(">"), {
    queue: CONTROL_QUEUE,
    callback: (err, msg) => {
      if (err) logger.error({ err }, "control subscription failed");
      else if (isControlRequest(msg)) {
        if (!dispatcher.submit(dispatchKey(msg.subject), msg)) refuse(msg);
      }
      else logger.warn({ subject: msg.subject, reply: msg.reply }, "ignored a message that is not a control request");
    },
  });
  await nc.flush();
  logger.info({ subject: ctlSubject(">"), queue: CONTROL_QUEUE }, "control serving");
  return {
    store,
    registry,
    telemetry,
    access,
    instance,
    setAdminUrl: (url) => void (adminUrl = url),
    // Bounded: with NATS gone a drain never settles, and a stopping control must still stop.
    stop: async () => {
      await atMost(sub.drain());
      await telemetry.stop();
    },
  };
}

/** Problems a bad_request lists at most (a body of a million unknown keys has a million). */
const MAX_REQUEST_PROBLEMS = 100;

/** Parses and validates the request body against its verb's schema, then runs the verb's handler. */
function serve<V extends ControlVerb>(context: HandlerContext, verb: V, msg: Msg): Promise<ControlReplies[V]> {
  const checked = checkControlRequest(verb, bodyOf(msg));
  if (!checked.ok) {
    const problems = checked.problems.slice(0, MAX_REQUEST_PROBLEMS).map((p) => ({ document: -1, ...p }));
    throw new ControlError("bad_request", `bad ${verb} request: ${formatProblems(checked.problems)}`, { problems });
  }
  return HANDLERS[verb](context, checked.value, msg.subject);
}

/** The parsed JSON body; an empty body is `{}`. */
function bodyOf(msg: Msg): unknown {
  if (msg.data.length === 0) return {};
  try {
    return msg.json<unknown>();
  } catch {
    throw new ControlError("bad_request", "the request body is not JSON", { problems: [{ document: -1, path: "(root)", message: "must be JSON" }] });
  }
}

/** The verb of a control subject, as a metric label: a verb we serve, or `unknown` (subjects are the callers' to choose). */
function verbOf(subject: string): string {
  const verb = subject.split(".", 4)[3] ?? "";
  return Object.hasOwn(HANDLERS, verb) ? verb : "unknown";
}

/**
 * The queue a request waits in: a scoped verb's own subject (one queue per
 * service, the identity secure mode binds to it), else its verb; every
 * unknown verb shares one queue.
 */
export function dispatchKey(subject: string): string {
  const verb = verbOf(subject);
  return SCOPED_VERBS.has(verb) ? subject : verb;
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
