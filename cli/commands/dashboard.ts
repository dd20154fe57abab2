import { spawn } from "node:child_process";
import { onPath } from "../../local/nats-binary.ts";
import { NATS_FLAGS, OUTPUT_FLAG, jsonOutput, type Parsed } from "../args.ts";
import { CliError, Exit, connectCli, controlRequest, type NatsFlags } from "../client.ts";
import type { Command } from "../command.ts";

/**
 * `mesh dashboard`: asks control where its dashboard is (the `info` verb,
 * answered by whichever replica the queue group picks), prints the URL, and
 * opens it in a browser when this machine has a display and `xdg-open`
 * (docs/dashboard.md). `--no-open` only prints.
 */
async function dashboard(p: Parsed): Promise<number> {
  const nc = await connectCli(p.values as NatsFlags);
  const info = await controlRequest(nc, "info", {}).finally(() => nc.close().catch(() => undefined));
  if (!info.dashboard) throw new CliError(Exit.unreachable, `control replica ${info.instance} serves no dashboard (it has no admin listener)`);
  if (jsonOutput(p)) return console.log(JSON.stringify(info)), Exit.ok;
  console.log(info.dashboard);
  console.error(`served by control replica ${info.instance} on its admin listener (reachable from its own host)`);
  if (p.values["no-open"] !== true) await openBrowser(info.dashboard);
  return Exit.ok;
}

/** xdg-open, detached, only where a graphical session can show it; otherwise the printed URL is the answer. */
async function openBrowser(url: string): Promise<void> {
  if (!process.env.DISPLAY && !process.env.WAYLAND_DISPLAY) return;
  const opener = await onPath("xdg-open");
  if (!opener) return;
  const child = spawn(opener, [url], { detached: true, stdio: "ignore" });
  child.on("error", () => undefined);
  child.unref();
}

export const DASHBOARD_COMMAND: Command = {
  synopsis: "dashboard [--no-open] [-o json]",
  summary: "print the web dashboard's URL (from control) and open it in a browser when there is one",
  details: "The dashboard is served by every control replica on its admin listener under /dashboard/ (127.0.0.1 by default).",
  args: {
    flags: {
      "no-open": { type: "boolean", env: "MESH_NO_OPEN", help: "only print the URL" },
      ...OUTPUT_FLAG,
      ...NATS_FLAGS,
    },
  },
  run: dashboard,
};
