// What the CLI prints for people (docs/cli.md): mesh history with a
// per-document change count beside KV's revision, mesh diff as a unified diff,
// mesh logs when there is nothing, mesh top when the window is clamped, and
// rollback refusals in plain words. Real NATS and a real control.
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { before, describe, test } from "node:test";
import { parsePatch } from "diff";
import { tempDir } from "./helpers/cleanup.ts";
import { startTestControl } from "./helpers/control.ts";
import { runMesh } from "./helpers/mesh.ts";
import { startNats } from "./helpers/nats.ts";

let env: NodeJS.ProcessEnv;
let dir: string;

before(async () => {
  const nats = await startNats();
  await startTestControl(nats.urls);
  env = { NATS_URL: nats.urls.join(",") };
  dir = await tempDir("natsmesh-output-");
  const apply = async (name: string, text: string) => {
    const file = join(dir, name);
    await writeFile(file, text);
    const r = await runMesh(["apply", "-f", file], { env });
    assert.equal(r.code, 0, r.stderr);
  };
  // Writes to another key between pricing's, so KV revisions are not 1, 2, 3 (as in a real mesh).
  await apply("a.yaml", "kind: Route\nservice: pricing\ntimeoutMs: 1000\n");
  await apply("other.yaml", "kind: Route\nservice: catalog\n");
  await apply("b.yaml", "kind: Route\nservice: pricing\ntimeoutMs: 2000\nrules:\n  - backends: [{ version: v2 }]\n");
  await apply("other2.yaml", "kind: Route\nservice: catalog\ntimeoutMs: 5\n");
  await apply("c.yaml", "kind: Route\nservice: pricing\ntimeoutMs: 2000\nrules:\n  - backends: [{ version: v1, weight: 90 }, { version: v2, weight: 10 }]\n");
});

interface HistoryRow {
  change: number;
  revision: number;
  what: string;
}

function historyRows(stdout: string): HistoryRow[] {
  return [...stdout.matchAll(/^(\d+)\s+(\d+)\s+\S+\s+(.*)$/gm)].map((m) => ({ change: Number(m[1]), revision: Number(m[2]), what: m[3]! }));
}

describe("mesh history and mesh diff", () => {
  test("history: changes counted per document, KV revisions beside them, what changed", async () => {
    const r = await runMesh(["history", "routes", "pricing"], { env });
    assert.equal(r.code, 0, r.stderr);
    const rows = historyRows(r.stdout);
    assert.deepEqual(rows.map((x) => x.change), [1, 2, 3]);
    assert.deepEqual(rows.map((x) => x.what), ["created", "changed timeoutMs, rules", "changed rules"]);
    assert.ok(rows[1]!.revision - rows[0]!.revision > 1, "KV revisions count across the bucket");
    assert.match(r.stdout, /Route pricing: 3 change\(s\)/);
    assert.match(r.stdout, new RegExp(`mesh diff routes pricing ${rows[1]!.revision} ${rows[2]!.revision}`));
  });

  test("diff REV1 REV2 and diff REV1 (against the revision in force): a unified diff", async () => {
    const rows = historyRows((await runMesh(["history", "routes", "pricing"], { env })).stdout);
    let r = await runMesh(["diff", "routes", "pricing", String(rows[0]!.revision), String(rows[1]!.revision)], { env });
    assert.equal(r.code, 0, r.stderr);
    const [patch] = parsePatch(r.stdout);
    assert.equal(patch!.oldFileName, `Route/pricing@${rows[0]!.revision}`);
    const lines = patch!.hunks.flatMap((h) => h.lines);
    assert.ok(lines.includes("-timeoutMs: 1000") && lines.includes("+timeoutMs: 2000"), r.stdout);
    assert.ok(lines.includes("+rules:"), r.stdout);

    r = await runMesh(["diff", "routes", "pricing", String(rows[1]!.revision)], { env });
    assert.equal(r.code, 0, r.stderr);
    const [toCurrent] = parsePatch(r.stdout);
    assert.equal(toCurrent!.newFileName, `Route/pricing@${rows[2]!.revision} (in force)`);
    assert.ok(toCurrent!.hunks.flatMap((h) => h.lines).some((l) => l.startsWith("+") && l.includes("weight: 90")), r.stdout);
  });

  test("a revision that is not in the history: exit 1, the revisions kept", async () => {
    const r = await runMesh(["diff", "routes", "pricing", "9999"], { env });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^mesh diff: Route 'pricing' has no revision 9999 in its history \(kept: \d+, \d+, \d+\)\n$/);
    const rb = await runMesh(["rollback", "routes", "pricing", "--to", "9999"], { env });
    assert.equal(rb.code, 1);
    assert.match(rb.stderr, /Route 'pricing' has no revision 9999 in its history \(kept: /);
    assert.doesNotMatch(rb.stderr, /no a /);
  });
});

describe("empty and clamped answers say so", () => {
  test("mesh logs with no records: a note on stderr, nothing on stdout", async () => {
    let r = await runMesh(["logs", "pricing"], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "");
    assert.equal(r.stderr, "no records in the last 5m of calls to 'pricing'\n");
    r = await runMesh(["logs", "--since", "1h", "-o", "json"], { env });
    assert.equal(r.stdout, "");
    assert.equal(r.stderr, "no records in the last 1h\n");
  });

  test("mesh top --window 120s says it was clamped to 60s", async () => {
    let r = await runMesh(["top", "--once", "--window", "120s"], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /note: --window 120s clamped to 60s/);
    r = await runMesh(["top", "--once", "--window", "120s", "-o", "json"], { env });
    assert.match(r.stderr, /note: --window 120s clamped to 60s/);
    assert.ok(JSON.parse(r.stdout).windowSeconds <= 60);
    r = await runMesh(["top", "--once", "--window", "30s"], { env });
    assert.doesNotMatch(r.stdout + r.stderr, /clamped/);
  });
});
