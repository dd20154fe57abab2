// The `mesh` CLI's grammar as a user meets it (docs/cli.md): help on every
// command, version, typos with "did you mean", exit codes, plain words, shell
// completion, and permission errors that name the identity and the permission.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { seedFile, writeCreds } from "../local/creds.ts";
import { startTestControl } from "./helpers/control.ts";
import { runMesh } from "./helpers/mesh.ts";
import { startNats, type NatsCluster } from "./helpers/nats.ts";

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), "natsmesh-cli-"));
});
after(() => rm(root, { recursive: true, force: true }));

/** Node's own parser and internals never reach the user. */
function assertPlainWords(text: string): void {
  for (const leak of [/place it at the end of the command/, /expected \d+ to \d+ arguments/, /has no a /, /\bat .*\.ts:\d+/, /Error:/]) assert.doesNotMatch(text, leak);
}

describe("grammar", () => {
  test("-h and --help on every command: exit 0 and its usage", async () => {
    const listing = await runMesh(["help"]);
    assert.equal(listing.code, 0);
    const commands = [...listing.stdout.matchAll(/^ {2}mesh (\S+)/gm)].map((m) => m[1]!);
    assert.ok(commands.length >= 15 && commands.includes("version") && commands.includes("completion") && commands.includes("diff"), listing.stdout);
    for (const name of commands) {
      const r = await runMesh([name, name === "sidecar" ? "-h" : "--help"]);
      assert.equal(r.code, 0, `${name}: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^usage: mesh ${name}`), name);
    }
  });

  test("mesh version and mesh --version: natsmesh, nats.js and node versions", async () => {
    for (const args of [["version"], ["--version"]]) {
      const r = await runMesh(args);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^mesh \d+\.\d+\.\d+ \(nats\.js 3\.\d+\.\d+, node \d+\.\d+\.\d+\)\n$/);
    }
    const json = JSON.parse((await runMesh(["version", "-o", "json"])).stdout);
    assert.equal(json.node, process.versions.node);
  });

  test("usage errors: exit 2, one line, did you mean", async () => {
    const cases: Array<[string[], RegExp]> = [
      [["servics"], /^mesh: unknown command 'servics'; did you mean 'services'\?/],
      [["get", "routes", "--bogus"], /^mesh get: unknown option '--bogus'/],
      [["logs", "--folow"], /did you mean '--follow'\?/],
      [["history", "routes"], /^mesh history: missing SERVICE/],
      [["diff", "routes", "pricing", "x"], /^mesh diff: REV1 must be a revision number/],
      [["sidecar"], /^mesh sidecar: --service is required \(see mesh sidecar --help\)$/m],
      [["completion", "fish"], /no completion for shell 'fish'/],
      [["top", "--window", "soon"], /--window must be a duration/],
      [[], /^mesh: no command given/],
    ];
    for (const [args, message] of cases) {
      const r = await runMesh(args, { env: { NATS_URL: "nats://127.0.0.1:1" } });
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, message, args.join(" "));
      assert.equal(r.stdout, "", args.join(" "));
      assertPlainWords(r.stderr);
      assert.equal(r.stderr.trimEnd().split("\n").length, 1, `one line: ${r.stderr}`);
    }
  });

  test("mesh validate says the file is invalid, not that nothing was applied", async () => {
    const bad = join(root, "bad.yaml");
    await writeFile(bad, "kind: Route\nservice: pricing\ntimeoutMs: -1\n");
    const r = await runMesh(["validate", "-f", bad, "--offline"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /bad\.yaml: invalid/);
    assert.doesNotMatch(r.stderr, /applied/);
  });

  test("mesh completion bash completes commands, flags and kinds", async () => {
    const r = await runMesh(["completion", "bash"]);
    assert.equal(r.code, 0, r.stderr);
    const script = join(root, "mesh.bash");
    await writeFile(script, r.stdout);
    const complete = async (...words: string[]) => {
      const probe = `source ${script}; COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${words.length - 1}; _mesh; echo "\${COMPREPLY[@]}"`;
      return (await promisify(execFile)("bash", ["-c", probe])).stdout.trim();
    };
    assert.equal(await complete("mesh", "servi"), "services");
    assert.equal(await complete("mesh", "get", "ro"), "routes");
    assert.equal(await complete("mesh", "logs", "--fo"), "--follow");
    assert.equal(await complete("mesh", "help", "hist"), "history");
    const zsh = await runMesh(["completion", "zsh"]);
    assert.equal(zsh.code, 0);
    assert.match(zsh.stdout, /^#compdef mesh/);
  });
});

describe("permission errors", () => {
  let nats: NatsCluster;
  let dir: string;
  before(async () => {
    dir = join(root, "creds");
    const made = await writeCreds(dir, ["echo"]);
    nats = await startNats({ include: [made.authConf] });
    await startTestControl(nats.urls, undefined, { creds: seedFile(dir, "control") });
  });

  test("a sidecar's key used for the CLI: which identity lacks which permission, and what to use", async () => {
    const file = seedFile(dir, "echo");
    const r = await runMesh(["services", "--nats", nats.urls.join(","), "--creds", file]);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(
      r.stderr.replace(/_INBOX\.admin\.\w+/, "_INBOX.admin.X"),
      `mesh services: the identity in ${file} (sidecar 'echo') may not subscribe to _INBOX.admin.X.*; use admin credentials from mesh creds (admin.nk)\n`,
    );
  });

  test("no key at all: NATS refuses the connection, and the message says what to give", async () => {
    const r = await runMesh(["services", "--nats", nats.urls.join(",")], { env: { NATS_CREDS: "" } });
    assert.equal(r.code, 3);
    assert.match(r.stderr, /Authorization Violation \(NATS wants a key: --creds FILE or NATS_CREDS, see mesh creds\)\n$/);
  });

  test("the admin key works", async () => {
    const r = await runMesh(["services", "--nats", nats.urls.join(","), "--creds", seedFile(dir, "admin")]);
    assert.equal(r.code, 0, r.stderr);
  });
});
