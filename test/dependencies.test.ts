// Dependencies match the engines field: every package npm installs from the
// lock file accepts the oldest Node this project declares, so `npm ci` on
// Node 20 prints no EBADENGINE. And install scripts run only where declared:
// every package with one is in allowScripts (docs/cli.md "Dependencies").
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { describe, test } from "node:test";

const pkg = JSON.parse(await readFile(new URL("../package.json", import.meta.url), "utf8")) as {
  engines: { node: string };
  allowScripts?: Record<string, boolean>;
};
const lock = JSON.parse(await readFile(new URL("../package-lock.json", import.meta.url), "utf8")) as {
  packages: Record<string, { engines?: Record<string, string> | string[]; hasInstallScript?: boolean; optional?: boolean; dev?: boolean }>;
};

type Version = [number, number, number];

function parse(v: string): Version {
  const [major, minor, patch] = v.replace(/^v/, "").split(".").map((p) => (/^\d+$/.test(p) ? Number(p) : 0));
  return [major ?? 0, minor ?? 0, patch ?? 0];
}

function compare(a: Version, b: Version): number {
  return a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
}

/** Whether `version` satisfies one comparator of a semver range (the forms found in lock files' engines). */
function satisfiesComparator(version: Version, comparator: string): boolean {
  const m = /^(>=|<=|>|<|\^|~|=)?\s*(.*)$/.exec(comparator)!;
  const [op, raw] = [m[1] ?? "", m[2]!];
  if (raw === "" || raw === "*" || raw === "x") return true;
  const target = parse(raw);
  const c = compare(version, target);
  const wild = raw.split(".").length < 3 || /[x*]/.test(raw);
  switch (op) {
    case ">=":
      return c >= 0;
    case ">":
      return c > 0;
    case "<=":
      return c <= 0;
    case "<":
      return c < 0;
    case "^":
      return c >= 0 && version[0] === target[0];
    case "~":
      return c >= 0 && version[0] === target[0] && version[1] === target[1];
    default:
      return wild ? version[0] === target[0] && (raw.split(".").length < 2 || /x|\*/.test(raw.split(".")[1]!) || version[1] === target[1]) : c === 0;
  }
}

function satisfies(version: string, range: string): boolean {
  const v = parse(version);
  return range.split("||").some((alt) => alt.trim().replace(/(>=|<=|>|<|\^|~|=)\s+/g, "$1").split(/\s+/).every((c) => satisfiesComparator(v, c)));
}

describe("dependencies", () => {
  test("the range check reads the forms lock files use", () => {
    assert.ok(satisfies("20.18.1", ">= 18.x"));
    assert.ok(!satisfies("20.18.1", ">= 22.x"));
    assert.ok(satisfies("20.18.1", "^18.17.0 || >=20.5.0"));
    assert.ok(!satisfies("20.18.1", "^16"));
    assert.ok(satisfies("20.18.1", "^14.17.0 || ^16.10.0 || >=17.0.0"));
    assert.ok(satisfies("20.18.1", "*"));
  });

  test("every locked package accepts the oldest Node the project declares", () => {
    const oldest = /^>=\s*(\d+\.\d+\.\d+)$/.exec(pkg.engines.node)?.[1];
    assert.ok(oldest, `engines.node is '${pkg.engines.node}'`);
    const refused = Object.entries(lock.packages)
      .filter(([path, p]) => path !== "" && !Array.isArray(p.engines) && typeof p.engines?.node === "string" && !satisfies(oldest, p.engines.node))
      .map(([path, p]) => `${path}: node ${(p.engines as Record<string, string>).node}`);
    assert.deepEqual(refused, []);
  });

  test("every locked package with an install script is decided in allowScripts", () => {
    const name = (path: string) => path.slice(path.lastIndexOf("node_modules/") + "node_modules/".length);
    const undecided = Object.entries(lock.packages)
      .filter(([path, p]) => p.hasInstallScript && !Object.hasOwn(pkg.allowScripts ?? {}, name(path)))
      .map(([path]) => path);
    assert.deepEqual(undecided, []);
  });
});
