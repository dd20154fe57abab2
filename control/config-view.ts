import type { NatsConnection } from "@nats-io/transport-node";
import { POLICY_HISTORY } from "./buckets.ts";
import { DISPATCH_LIMITS } from "./dispatch.ts";
import type { ControlOptions } from "./main.ts";
import { RECENT_MAX_WINDOW_MS } from "./recent-traffic.ts";
import { TELEMETRY_LIMITS } from "./telemetry-limits.ts";

/**
 * What control's admin `/config` shows (docs/cli.md "Admin endpoints"): the
 * configuration it runs with and its limits, with secrets redacted. A key
 * file is named, never read out; a password or token in a NATS URL is `***`.
 */

/** `nats://user:secret@host` → `nats://user:***@host`; `nats://token@host` → `nats://***@host`. */
export function redactUrl(url: string): string {
  const m = /^([a-z]+:\/\/)([^@/]*)@(.*)$/i.exec(url);
  if (!m) return url;
  const [, scheme, auth, rest] = m;
  const colon = auth!.indexOf(":");
  return `${scheme}${colon === -1 ? "***" : `${auth!.slice(0, colon)}:***`}@${rest}`;
}

/** `nc` is absent while control is still connecting. */
export function controlConfig(opts: ControlOptions, instance: string, nc: NatsConnection | undefined): Record<string, unknown> {
  return {
    instance,
    nats: opts.nats.map(redactUrl),
    connectedTo: !nc || nc.isClosed() ? null : redactUrl(nc.getServer()),
    credentials: opts.creds ? { file: opts.creds, key: "redacted" } : null,
    admin: opts.admin,
    logLevel: opts.logLevel,
    limits: {
      dispatch: DISPATCH_LIMITS,
      telemetry: TELEMETRY_LIMITS,
      statsMaxWindowSeconds: RECENT_MAX_WINDOW_MS / 1000,
      policyHistoryPerKey: POLICY_HISTORY,
    },
  };
}
