// One CLI call, timed by phase from inside the process (bench/cli-latency.ts
// runs it). Prints one JSON line: ms since the process began (performance
// timeOrigin) at each phase. Argument: the NATS URL.
import { performance } from "node:perf_hooks";

const at = () => Math.round(performance.now() * 10) / 10;
const phases: Record<string, number> = { nodeReady: Math.round(performance.nodeTiming.bootstrapComplete * 10) / 10, userCode: at() };
await import("../cli/main.ts");
phases.cliLoaded = at();
const { connectCli, controlRequest } = await import("../cli/client.ts");
const nc = await connectCli({ nats: process.argv[2] });
phases.connected = at();
await controlRequest(nc, "services", {});
phases.firstReply = at();
await controlRequest(nc, "services", {});
phases.secondReply = at();
await nc.close();
phases.closed = at();
console.log(JSON.stringify(phases));
