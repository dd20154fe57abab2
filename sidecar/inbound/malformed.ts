import type { Logger } from "pino";
import { Counter, type Registry } from "prom-client";

/** At most one warning per this many milliseconds; the rest are counted in it. */
export const MALFORMED_WARN_EVERY_MS = 10_000;

/**
 * What the inbound adapter does with a request whose NATS header block
 * cannot be read (only a raw client can send one): it is dropped unanswered,
 * counted in `mesh_inbound_malformed_total`, and logged at most once per 10 s
 * with the number dropped since the last line, so a flood cannot flood the log.
 */
export function createMalformedReporter(logger: Logger, registry: Registry, now: () => number = Date.now): (subject: string, err: unknown) => void {
  const counter = new Counter({ name: "mesh_inbound_malformed_total", help: "Requests dropped because their NATS header block could not be read", registers: [registry] });
  let lastWarn = -Infinity;
  let unlogged = 0;
  return (subject, err) => {
    counter.inc();
    unlogged++;
    const t = now();
    if (t - lastWarn < MALFORMED_WARN_EVERY_MS) return;
    lastWarn = t;
    logger.warn({ subject: subject.slice(0, 256), err: (err as Error)?.message, dropped: unlogged }, "dropped requests with a malformed header block");
    unlogged = 0;
  };
}
