// Connections as a secure-mode identity (keys from `mesh creds`), for tests
// that attack or drive the mesh the way a process holding that key would.
import { connect, type ConnectionOptions, type NatsConnection } from "@nats-io/transport-node";
import { seedFile } from "../../local/creds.ts";
import { inboxPrefixOf } from "../../local/creds-permissions.ts";
import { authenticatorFromFile } from "../../runtime/index.ts";
import { onFileEnd } from "./cleanup.ts";

/**
 * Connects with `identity`'s key from `credsDir` and the inbox prefix its
 * permissions allow; `errors` collects what the server refused (permission
 * violations arrive asynchronously). Closed when the test file ends.
 */
export async function connectAs(
  servers: string[],
  credsDir: string,
  identity: string,
  opts: Partial<ConnectionOptions> = {},
): Promise<{ nc: NatsConnection; errors: string[] }> {
  const nc = await connect({ servers, authenticator: await authenticatorFromFile(seedFile(credsDir, identity)), noAsyncTraces: true, inboxPrefix: inboxPrefixOf(identity), ...opts });
  onFileEnd(() => nc.close());
  const errors: string[] = [];
  void (async () => {
    for await (const s of nc.status()) if (s.type === "error") errors.push(String(s.error?.message));
  })();
  return { nc, errors };
}
