import { Writable } from "node:stream";
import pino, { type Logger } from "pino";

export interface CapturedLogs {
  logger: Logger;
  /** parsed JSON log lines, in order */
  lines: Array<Record<string, any>>;
}

/** A pino logger whose lines tests read as data (STYLE §9). */
export function captureLogs(level = "info"): CapturedLogs {
  const lines: Array<Record<string, any>> = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split("\n")) if (line) lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: pino({ level }, stream), lines };
}
