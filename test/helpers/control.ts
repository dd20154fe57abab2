import { connect, type NatsConnection } from "@nats-io/transport-node";
import pino, { type Logger } from "pino";
import { Registry } from "prom-client";
import { startControl, type ControlService } from "../../control/service.ts";
import { onFileEnd } from "./cleanup.ts";

export interface TestControl extends ControlService {
  nc: NatsConnection;
  /** stops serving and closes its connection, as if the process died */
  kill(): Promise<void>;
}

/** A real control replica in this process, with its own NATS connection. */
export async function startTestControl(urls: string[], logger: Logger = pino({ level: "silent" })): Promise<TestControl> {
  const nc = await connect({ servers: urls, noAsyncTraces: true });
  const control = await startControl(nc, logger, new Registry());
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
