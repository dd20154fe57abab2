import { connect, type NatsConnection } from "@nats-io/transport-node";
import pino, { type Logger } from "pino";
import { Registry } from "prom-client";
import { startControl, type ControlService } from "../../control/service.ts";
import { inboxPrefixFor } from "../../schemas/index.ts";
import { authenticatorFromFile } from "../../runtime/index.ts";
import { onFileEnd } from "./cleanup.ts";

export interface TestControl extends ControlService {
  nc: NatsConnection;
  /** stops serving and closes its connection, as if the process died */
  kill(): Promise<void>;
}

/** A real control replica in this process, with its own NATS connection (secure mode: `creds`, its seed file; `now`: the clock quota windows follow). */
export async function startTestControl(
  urls: string[],
  logger: Logger = pino({ level: "silent" }),
  opts: { creds?: string; now?: () => number } = {},
): Promise<TestControl> {
  const auth = opts.creds ? { authenticator: await authenticatorFromFile(opts.creds) } : {};
  const nc = await connect({ servers: urls, noAsyncTraces: true, inboxPrefix: inboxPrefixFor("control"), ...auth });
  const control = await startControl(nc, logger, new Registry(), undefined, { now: opts.now });
  let killed = false;
  const kill = async () => {
    if (killed) return;
    killed = true;
    await control.stop().catch(() => undefined);
    await nc.close();
  };
  onFileEnd(kill);
  return Object.assign(control, { nc, kill });
}
