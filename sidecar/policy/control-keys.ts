import type { Msg, NatsConnection } from "@nats-io/transport-node";
import { checkControlReply, formatProblems, keysSubject, type BucketEntry, type BucketKeysPage, type ControlRequests } from "../../schemas/index.ts";
import type { KvValue } from "../../runtime/index.ts";

/**
 * How long one page may take: control tries the buckets' home, then its
 * mirror, 2 s each at most, then reads the page's values (control/bucket-keys.ts).
 */
const PAGE_TIMEOUT_MS = 10_000;

/**
 * The newest revision of every key of `bucket` under `filter`, read by
 * control for this sidecar (verb `keys` on `mesh.ctl.v1.keys.<service>`,
 * docs/multi-region.md): what a sidecar does when it cannot list the
 * bucket itself, because the buckets' home is gone and its own account
 * reaches no mirror (secure mode) or its region has none. Undefined when
 * control says the bucket does not exist.
 *
 * Page by page; a key written or deleted between two pages may shift the
 * next page by one key, which the follower catches up on when it hears of
 * writes or reads the bucket again.
 */
export async function newestThroughControl(nc: NatsConnection, service: string, bucket: string, filter: string): Promise<KvValue[] | undefined> {
  const values = new Map<string, KvValue>();
  for (let offset: number | undefined = 0; offset !== undefined; ) {
    const page = await askPage(nc, service, { bucket: bucket as ControlRequests["keys"]["bucket"], filter, offset, values: true });
    if (!page) return undefined;
    for (const e of page.entries ?? []) values.set(e.key, valueOf(e));
    // A page always moves on: a `next` that does not would be a loop.
    offset = page.next !== undefined && page.next > offset ? page.next : undefined;
  }
  return [...values.values()];
}

async function askPage(nc: NatsConnection, service: string, body: ControlRequests["keys"]): Promise<BucketKeysPage | undefined> {
  const msg = await nc.request(keysSubject(service), JSON.stringify(body), { timeout: PAGE_TIMEOUT_MS });
  const checked = checkControlReply("keys", parseJson(msg));
  if (!checked.ok) throw new Error(`invalid keys reply: ${formatProblems(checked.problems)}`);
  const reply = checked.value;
  if (reply.ok) return reply;
  if (reply.error.code === "not_found") return undefined;
  throw new Error(`control could not list '${body.bucket}': ${reply.error.code}: ${reply.error.message}`);
}

function valueOf(e: BucketEntry): KvValue {
  return { key: e.key, revision: e.revision, operation: e.operation, value: new Uint8Array(Buffer.from(e.value, "base64")), created: new Date(e.created) };
}

/** The parsed JSON of a reply, or undefined when it is not JSON (which no reply schema accepts). */
function parseJson(msg: Msg): unknown {
  try {
    return msg.json<unknown>();
  } catch {
    return undefined;
  }
}
