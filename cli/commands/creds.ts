import { CliError, Exit } from "../client.ts";
import { UsageError, stringValue, type Parsed } from "../args.ts";
import type { Command } from "../command.ts";

async function creds(p: Parsed): Promise<number> {
  const dir = stringValue(p, "out");
  if (!dir) throw new UsageError("--out DIR is required");
  // Loaded on use, as every heavy command is (docs/cli.md "Latency").
  const { CredsError, seedFile, writeCreds } = await import("../../local/index.ts");
  try {
    const result = await writeCreds(dir, p.positionals);
    for (const identity of result.identities) console.log(`${seedFile(result.dir, identity)}: ${result.created.includes(identity) ? "created" : "kept"}`);
    console.log(`${result.authConf}: ${result.identities.length} users (include it from nats.conf)`);
    console.log(`${result.leafAuthConf}: for edge sites' leaf nodes; ${result.leafSecret}: their link's password (docs/multi-region.md)`);
    return Exit.ok;
  } catch (err) {
    if (!(err instanceof CredsError)) throw err;
    const [first, ...rest] = err.message.split("\n");
    throw new CliError(err.exitCode, first!, rest);
  }
}

export const CREDS_COMMAND: Command = {
  synopsis: "creds --out DIR SERVICE...",
  summary: "secure mode: nkey seeds per service, control and admin, and auth.conf for nats.conf",
  details: [
    "Writes DIR/<service>.nk for each SERVICE, DIR/control.nk, DIR/admin.nk (user nkey seeds,",
    "mode 0600) and DIR/auth.conf (include it from nats.conf). Keys already in DIR are kept, never",
    "rotated; to rotate one, delete its file and run again. auth.conf covers every <service>.nk in",
    "DIR, so adding services never locks out others. Then: mesh sidecar --creds DIR/<service>.nk,",
    "mesh control --creds DIR/control.nk, mesh get ... --creds DIR/admin.nk (or env NATS_CREDS).",
    "Also DIR/leaf-auth.conf and DIR/leaf.secret (mode 0600): what an edge site's leaf node includes,",
    "and the password its leaf remote presents as user 'leaf' (docs/multi-region.md).",
  ].join("\n"),
  args: {
    flags: { out: { type: "string", env: "MESH_CREDS_DIR", value: "DIR", help: "where to write the keys and auth.conf" } },
    positionals: { min: 1, max: Number.MAX_SAFE_INTEGER, names: "SERVICE..." },
  },
  run: creds,
};
