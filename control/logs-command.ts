import type { NatsConnection } from "@nats-io/transport-node";
import { jetstream, type Consumer, type JsMsg } from "@nats-io/jetstream";
import { accessFilter, type AccessRecord } from "../schemas/index.ts";
import { ACCESS_STREAM } from "./access-stream.ts";
import { durationArg, parseCommand, serviceArg } from "./cli-args.ts";
import { CliError, Exit, connectCli } from "./client.ts";

export const LOGS_SYNOPSIS = "logs [SERVICE] [--from CALLER] [--since 5m] [--follow] [-o json]";
const DEFAULT_SINCE = "5m";

/**
 * `mesh logs`: access records from stream MESH_ACCESS, read with an ordered
 * consumer (nothing durable is left behind). SERVICE: calls to it; --from:
 * calls made by that caller. Each request appears once per sidecar that saw
 * it: `out` from the caller's, `in` from the provider's.
 */
export async function logs(args: string[]): Promise<number> {
  const { values, positionals } = parseCommand(
    "logs",
    args,
    { from: { type: "string" }, since: { type: "string" }, follow: { type: "boolean", short: "f" }, output: { type: "string", short: "o" } },
    1,
  );
  const destination = serviceArg("logs", "SERVICE", positionals[0]);
  const source = serviceArg("logs", "--from", values.from);
  const sinceMs = durationArg("logs", "since", values.since, DEFAULT_SINCE);
  if (values.output !== undefined && values.output !== "json") throw new CliError(Exit.usage, `mesh logs: -o must be json, got '${values.output}'`);
  const print = values.output === "json" ? (r: AccessRecord) => console.log(JSON.stringify(r)) : (r: AccessRecord) => console.log(formatAccessRecord(r));
  const nc = await connectCli(values);
  try {
    const consumer = await openConsumer(nc, accessFilter(destination, source), Date.now() - sinceMs);
    await readRecords(consumer, Date.now() - sinceMs, values.follow === true, print);
  } finally {
    await nc.close().catch(() => undefined);
  }
  return Exit.ok;
}

async function openConsumer(nc: NatsConnection, filter: string, since: number): Promise<Consumer> {
  try {
    return await jetstream(nc).consumers.get(ACCESS_STREAM, { filter_subjects: filter, opt_start_time: new Date(since).toISOString() });
  } catch (err) {
    if (/stream not found/i.test(String((err as Error).message))) {
      throw new CliError(Exit.unreachable, `no access log: stream ${ACCESS_STREAM} does not exist (mesh control creates it)`);
    }
    throw new CliError(Exit.unreachable, `cannot read ${ACCESS_STREAM}: ${(err as Error).message}`);
  }
}

/** Prints every record since `since`; with `follow`, goes on until SIGINT or SIGTERM. */
async function readRecords(consumer: Consumer, since: number, follow: boolean, print: (r: AccessRecord) => void): Promise<void> {
  // Without --follow, stop after what was there when the consumer was made, however busy the mesh.
  let left = (await consumer.info(true)).num_pending;
  if (!follow && left === 0) return;
  const messages = await consumer.consume({ max_messages: 256 });
  const stop = () => void messages.close();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  try {
    for await (const m of messages) {
      for (const r of recordsOf(m)) if (Date.parse(r.time) >= since) print(r);
      if (!follow && (--left <= 0 || m.info.pending === 0)) break;
    }
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
    await messages.close();
  }
}

/** The records of one message (a batch, one JSON line each); lines that are not records are skipped. */
export function recordsOf(m: Pick<JsMsg, "string">): AccessRecord[] {
  const out: AccessRecord[] = [];
  for (const line of m.string().split("\n")) {
    if (!line) continue;
    try {
      const r = JSON.parse(line) as AccessRecord;
      if (r && typeof r.time === "string" && typeof r.requestId === "string") out.push(r);
    } catch {
      /* not a record */
    }
  }
  return out;
}

/**
 * `TIME REQUEST-ID out|in SOURCE -> DESTINATION VERSION INSTANCE METHOD PATH STATUS DURATION attempts=N [error=CODE]`
 */
export function formatAccessRecord(r: AccessRecord): string {
  const side = r.direction === "outbound" ? "out" : "in ";
  const error = r.meshError ? ` error=${r.meshError}` : "";
  return `${r.time} ${r.requestId} ${side} ${r.source} -> ${r.destination} ${r.version} ${r.instance ?? "-"} ${r.method} ${r.path} ${r.status} ${r.durationMs.toFixed(1)}ms attempts=${r.attempts}${error}`;
}
