import { setTimeout as sleep } from "node:timers/promises";
import type { NatsConnection } from "@nats-io/transport-node";
import { printable, type AccessLogPage, type AccessRecord } from "../../schemas/index.ts";
import { NATS_FLAGS, OUTPUT_FLAG, durationArg, jsonOutput, serviceArg, type Parsed } from "../args.ts";
import { Exit, connectCli, controlRequest, type NatsFlags } from "../client.ts";
import type { Command } from "../command.ts";
const DEFAULT_SINCE = "5m";
/** how often --follow asks control for what came since */
export const FOLLOW_POLL_MS = 500;
/** pages read without --follow, as a guard against a mesh logging faster than it is read */
const MAX_PAGES = 1_000;

/**
 * `mesh logs`: access records from stream MESH_ACCESS, read by control (verb
 * `logs`), so the CLI needs no JetStream permission. SERVICE: calls to it;
 * --from: calls made by that caller. Each request appears once per sidecar
 * that saw it: `out` from the caller's, `in` from the provider's. Records are
 * printed in time order; --follow asks control every 500 ms for what was
 * stored since the last batch it printed.
 */
async function logs(p: Parsed): Promise<number> {
  const { values, positionals } = p;
  const service = serviceArg("SERVICE", positionals[0]);
  const from = serviceArg("--from", values.from);
  const sinceMs = durationArg("since", values.since, DEFAULT_SINCE);
  const print = jsonOutput(p) ? (r: AccessRecord) => console.log(JSON.stringify(r)) : (r: AccessRecord) => console.log(formatAccessRecord(r));
  const nc = await connectCli(values as NatsFlags);
  try {
    const query = { ...(service ? { service } : {}), ...(from ? { from } : {}), since: Date.now() - sinceMs };
    if (values.follow === true) await follow(nc, query, print);
    else {
      const records = await readAll(nc, query);
      for (const r of records) print(r);
      // An empty answer says so (on stderr, so -o json output stays only records).
      if (records.length === 0) console.error(`no records in the last ${typeof values.since === "string" ? values.since : DEFAULT_SINCE}${describeQuery(query)}`);
    }
  } finally {
    await nc.close().catch(() => undefined);
  }
  return Exit.ok;
}

type Query = { service?: string; from?: string; since: number };

function describeQuery(q: Query): string {
  return [q.service ? ` of calls to '${q.service}'` : "", q.from ? ` made by '${q.from}'` : ""].join("");
}

function page(nc: NatsConnection, query: Query, afterSeq: number | undefined): Promise<AccessLogPage> {
  return controlRequest(nc, "logs", { ...query, ...(afterSeq !== undefined ? { afterSeq } : {}) });
}

/** Every record there is now, in time order. */
async function readAll(nc: NatsConnection, query: Query): Promise<AccessRecord[]> {
  const entries: AccessLogPage["records"] = [];
  let afterSeq: number | undefined;
  for (let n = 0; n < MAX_PAGES; n++) {
    const p = await page(nc, query, afterSeq);
    entries.push(...p.records);
    if (!p.more || p.lastSeq === afterSeq) break;
    afterSeq = p.lastSeq;
  }
  return sortByTime(entries);
}

/** Prints pages as they come until SIGINT or SIGTERM. */
async function follow(nc: NatsConnection, query: Query, print: (r: AccessRecord) => void): Promise<void> {
  const stopped = new AbortController();
  const stop = () => stopped.abort();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  try {
    let afterSeq: number | undefined;
    while (!stopped.signal.aborted) {
      const p = await page(nc, query, afterSeq);
      for (const r of sortByTime(p.records)) print(r);
      afterSeq = p.lastSeq;
      if (!p.more) await sleep(FOLLOW_POLL_MS, undefined, { signal: stopped.signal }).catch(() => undefined);
    }
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
  }
}

function sortByTime(entries: AccessLogPage["records"]): AccessRecord[] {
  return [...entries].sort((a, b) => (a.record.time < b.record.time ? -1 : a.record.time > b.record.time ? 1 : a.seq - b.seq)).map((e) => e.record);
}

/**
 * `TIME REQUEST-ID out|in SOURCE -> DESTINATION VERSION INSTANCE METHOD PATH STATUS DURATION attempts=N [error=CODE] [bytes=IN/OUT [aborted=REASON]]`.
 * Every field is printed with control characters escaped, so a record cannot move the cursor, recolour or
 * forge lines on the reader's terminal.
 */
export function formatAccessRecord(r: AccessRecord): string {
  const p = printable;
  const side = r.direction === "outbound" ? "out" : "in ";
  const error = r.meshError ? ` error=${p(r.meshError)}` : "";
  const duration = typeof r.durationMs === "number" && Number.isFinite(r.durationMs) ? `${r.durationMs.toFixed(1)}ms` : "-";
  const stream = r.stream ? ` bytes=${p(r.stream.bytesIn)}/${p(r.stream.bytesOut)}${r.stream.aborted ? ` aborted=${p(r.stream.aborted)}` : ""}` : "";
  return `${p(r.time)} ${p(r.requestId)} ${side} ${p(r.source)} -> ${p(r.destination)} ${p(r.version)} ${p(r.instance ?? "-")} ${p(r.method)} ${p(r.path)} ${p(r.status)} ${duration} attempts=${p(r.attempts)}${error}${stream}`;
}

export const LOGS_COMMAND: Command = {
  synopsis: "logs [SERVICE] [--from CALLER] [--since 5m] [--follow] [-o json]",
  summary: "access records of calls to SERVICE (or made by --from CALLER), from stream MESH_ACCESS",
  args: {
    flags: {
      from: { type: "string", value: "CALLER", help: "only calls made by this service" },
      since: { type: "string", value: "5m", help: "how far back (ms, s, m, h, d)" },
      follow: { type: "boolean", short: "f", help: "keep printing records as they arrive" },
      ...OUTPUT_FLAG,
      ...NATS_FLAGS,
    },
    positionals: { min: 0, max: 1, names: "SERVICE" },
  },
  run: logs,
};
