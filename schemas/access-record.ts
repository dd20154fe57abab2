import { validatorOf } from "./documents.ts";
import { ACCESS_PREFIX } from "./subjects.ts";
import type { AccessRecord } from "./telemetry.generated.ts";

const validate = validatorOf<AccessRecord>("access-record");

/**
 * The records of one MESH_ACCESS message (a batch, one JSON line each) that
 * are well-formed (access-record.schema.json) and agree with the subject
 * they were stored on (`mesh.access.<destination>.<source>.<direction>`,
 * which secure mode binds to the publishing sidecar); every other line is
 * dropped and counted in `dropped`.
 */
export function accessRecordsOf(subject: string, text: string): { records: AccessRecord[]; dropped: number } {
  const parts = subject.split(".");
  const bound = parts.length === 5 && `${parts[0]}.${parts[1]}` === ACCESS_PREFIX;
  const records: AccessRecord[] = [];
  let dropped = 0;
  for (const line of text.split("\n")) {
    if (!line) continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      value = undefined;
    }
    const ok = bound && validate(value) && value.destination === parts[2] && value.source === parts[3] && value.direction === parts[4];
    if (ok) records.push(value as AccessRecord);
    else dropped++;
  }
  return { records, dropped };
}

/** C0 and C1 controls, DEL, and the Unicode line and bidi controls a terminal may act on. */
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** Text safe to print on a terminal: control characters (ANSI escapes, CR, LF, ...) become `\\u001b`-style escapes, and `\\` becomes `\\\\`. */
export function printable(value: unknown): string {
  return String(value).replace(/\\/g, "\\\\").replace(UNPRINTABLE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}
