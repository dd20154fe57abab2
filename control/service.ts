import type { Msg, NatsConnection, Subscription } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { Counter, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { CONTROL_QUEUE, ctlSubject, type ControlVerb } from "../schemas/index.ts";
import { ensureBuckets } from "./buckets.ts";
import { ControlError } from "./errors.ts";
import { PolicyStore } from "./policy-store.ts";

export interface ControlService {
  readonly store: PolicyStore;
  readonly registry: Registry;
  stop(): Promise<void>;
}

type Handler = (store: PolicyStore, body: any) => Promise<unknown>;

/** One line per verb: adding a verb is adding a line. */
const HANDLERS: Readonly<Record<ControlVerb, Handler>> = {
  apply: (s, b) => s.apply(b),
  validate: (s, b) => s.validate(b),
  get: (s, b) => s.get(b),
  delete: (s, b) => s.delete(b),
  history: (s, b) => s.history(b),
  rollback: (s, b) => s.rollback(b),
  services: (s) => s.services(),
};

/**
 * Serves `mesh.ctl.v1.<verb>` in a queue group: run as many replicas as you
 * like; each request is answered by one of them, and all state is in KV.
 */
export async function startControl(nc: NatsConnection, logger: Logger, registry = new Registry()): Promise<ControlService> {
  collectDefaultMetrics({ register: registry });
  const requests = new Counter({ name: "mesh_control_requests_total", help: "Control requests by verb and outcome", labelNames: ["verb", "outcome"], registers: [registry] });
  const duration = new Histogram({ name: "mesh_control_request_duration_seconds", help: "Control request handling time", labelNames: ["verb"], registers: [registry] });
  const store = new PolicyStore(await ensureBuckets(nc, logger));

  const handle = async (msg: Msg): Promise<void> => {
    const verb = msg.subject.slice(msg.subject.lastIndexOf(".") + 1);
    const stopTimer = duration.startTimer({ verb });
    let outcome = "ok";
    let reply: unknown;
    try {
      const handler = Object.hasOwn(HANDLERS, verb) ? HANDLERS[verb as ControlVerb] : undefined;
      if (!handler) throw new ControlError("bad_request", `unknown control verb '${verb}'`);
      const body = msg.data.length > 0 ? msg.json<unknown>() : {};
      reply = { ok: true, ...((await handler(store, body)) as object) };
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

  const sub: Subscription = nc.subscribe(ctlSubject("*"), {
    queue: CONTROL_QUEUE,
    callback: (err, msg) => {
      if (err) logger.error({ err }, "control subscription failed");
      else void handle(msg);
    },
  });
  await nc.flush();
  logger.info({ subject: ctlSubject("*"), queue: CONTROL_QUEUE }, "control serving");
  return {
    store,
    registry,
    stop: async () => {
      await sub.drain();
    },
  };
}
