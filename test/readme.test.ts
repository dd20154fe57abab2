// The README, true and tested: every `sh` block of its "Quick start" section
// runs, in order, against a real `mesh up` (the demo, on free ports), and must
// exit 0 and print the text of each of its `# → TEXT` comments. The only
// changes made to a block are the ones the README states: NATS_URL is set,
// and every 127.0.0.1/localhost port moves by the offset of --base-port.
// Also: the Grafana dashboard declares the inputs its import asks for.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { UP_DEFAULTS } from "../local/up-plan.ts";
import { startMeshUp, type RunningMeshUp } from "./helpers/mesh-up.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const README = await readFile(new URL("../README.md", import.meta.url), "utf8");

/** The text from `heading` to the next heading of the same or a higher level. */
function section(markdown: string, heading: string): string {
  const start = markdown.indexOf(`\n${heading}\n`);
  if (start === -1) throw new Error(`no '${heading}' in the README`);
  const level = /^#+/.exec(heading)![0].length;
  const rest = markdown.slice(start + heading.length + 2);
  const next = new RegExp(`^#{1,${level}} `, "m").exec(rest);
  return next ? rest.slice(0, next.index) : rest;
}

function shBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
}

/** What each `# → TEXT` comment of a block says it prints. */
function expectations(block: string): string[] {
  return [...block.matchAll(/# → (.+?)\s*$/gm)].map((m) => m[1]!);
}

/** The block as it runs against a mesh on another base port. */
function onBasePort(block: string, basePort: number): string {
  return block.replace(/\b(127\.0\.0\.1|localhost):(\d{4,5})\b/g, (_, host: string, port: string) => `${host}:${Number(port) + basePort - UP_DEFAULTS.basePort}`);
}

describe("README quick start", () => {
  const blocks = shBlocks(section(README, "### Quick start"));
  let mesh: RunningMeshUp;
  before(async () => {
    mesh = await startMeshUp();
  });

  test("the section has its blocks, and every block says what it prints", () => {
    assert.ok(blocks.length >= 6, `found ${blocks.length} sh blocks`);
    for (const b of blocks) assert.ok(expectations(b).length > 0, `no '# →' in\n${b}`);
  });

  for (const [i, block] of blocks.entries()) {
    test(`block ${i + 1}: ${block.split("\n")[0]}`, async () => {
      const script = onBasePort(block, mesh.basePort);
      const run = await promisify(execFile)("bash", ["-e", "-o", "pipefail", "-c", script], {
        cwd: ROOT,
        env: { ...process.env, NATS_URL: mesh.natsUrls.join(",") },
      }).catch((err: { code?: number; stdout?: string; stderr?: string }) => assert.fail(`exit ${err.code}:\n${script}\nstdout:\n${err.stdout}\nstderr:\n${err.stderr}`));
      const printed = run.stdout + run.stderr;
      for (const text of expectations(block)) assert.ok(printed.includes(text), `'${text}' not printed by\n${script}\noutput:\n${printed}`);
    });
  }
});

describe("the Grafana dashboard imports as the README says", () => {
  test("every ${DS_…} it uses is a declared __input, and every input is used", async () => {
    const text = await readFile(new URL("../dashboards/natsmesh.json", import.meta.url), "utf8");
    const dashboard = JSON.parse(text) as { __inputs?: Array<{ name: string; type: string; pluginId: string }> };
    const declared = (dashboard.__inputs ?? []).map((i) => i.name);
    const used = [...new Set([...text.matchAll(/\$\{(DS_[A-Z_]+)\}/g)].map((m) => m[1]!))];
    assert.deepEqual(declared, ["DS_PROMETHEUS"]);
    assert.deepEqual(used, declared);
    assert.equal(dashboard.__inputs![0]!.pluginId, "prometheus");
    assert.match(README, /declares one input, `DS_PROMETHEUS`/);
  });
});
