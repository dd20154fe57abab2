// What `mesh up` keeps between runs (docs/run.md "State"): the data dir holds
// the JetStream store (policy, its history, access records), the logs and,
// in secure mode, the keys. Example policies go only into an empty mesh;
// --reset wipes the data dir first, and only a dir that holds nothing else.
import { readdir, rm } from "node:fs/promises";
import type { NatsConnection } from "@nats-io/transport-node";
import { requestControl } from "../control/index.ts";
import { POLICY_KINDS } from "../schemas/index.ts";

/** Entries `mesh up` writes in its data dir; --reset refuses a dir with anything else in it. */
const DATA_DIR_ENTRIES: ReadonlySet<string> = new Set(["nats", "logs", "creds", "pids.json", "pids.json.tmp"]);

/** A data dir --reset must not wipe; the message names what is foreign in it. */
export class NotADataDirError extends Error {}

/** Removes the data dir, when it holds only what mesh up writes (else NotADataDirError, nothing removed). */
export async function resetDataDir(dir: string): Promise<void> {
  const entries = await readdir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return [];
    throw err;
  });
  const foreign = entries.filter((e) => !DATA_DIR_ENTRIES.has(e));
  if (foreign.length) {
    const shown = foreign.slice(0, 3).map((e) => `'${e}'`).join(", ");
    throw new NotADataDirError(`--reset: ${dir} holds ${shown}${foreign.length > 3 ? ", ..." : ""}, which mesh up did not write; not wiping it`);
  }
  await rm(dir, { recursive: true, force: true, maxRetries: 5 });
}

/** How many policy documents (every kind) are in force: 0 = an empty mesh. */
export async function policyDocuments(nc: NatsConnection): Promise<number> {
  let n = 0;
  for (const kind of POLICY_KINDS) n += (await requestControl(nc, "get", { kind })).items.length;
  return n;
}
