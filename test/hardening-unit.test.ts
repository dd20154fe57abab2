import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  HEADER_REGEX_MAX_INPUT,
  HEADER_REGEX_MAX_PATTERN,
  compileHeaderRegex,
  validatePolicy,
  type PolicyProblem,
  type RoutePolicy,
} from "../schemas/index.ts";
import { compileRoute } from "../sidecar/routing.ts";

/** The problems validating a Route with `headersRegex` gives. */
function regexProblems(headersRegex: Record<string, string>): PolicyProblem[] {
  const r = validatePolicy({ kind: "Route", service: "pricing", rules: [{ match: { headersRegex }, backends: [{ version: "v1" }] }] });
  return r.ok ? [] : r.problems;
}

describe("header regexes are RE2: linear time, bounded pattern and input", () => {
  test("syntax RE2 lacks (backreferences, lookaround) is rejected with its JSON path", () => {
    for (const source of ["(a)\\1", "(?<=a)b", "a(?!b)", "(a"]) {
      const problems = regexProblems({ "x-k": source });
      assert.equal(problems.length, 1, source);
      assert.equal(problems[0]!.path, "rules[0].match.headersRegex.x-k");
      assert.match(problems[0]!.message, /must be a valid regular expression in RE2 syntax/);
    }
  });

  test("a pattern over the length cap is rejected, one at the cap is accepted", () => {
    const long = regexProblems({ "x-k": "a".repeat(HEADER_REGEX_MAX_PATTERN + 1) });
    assert.equal(long.length, 1);
    assert.equal(long[0]!.path, "rules[0].match.headersRegex.x-k");
    assert.match(long[0]!.message, /256 characters/);
    assert.deepEqual(regexProblems({ "x-k": "a".repeat(HEADER_REGEX_MAX_PATTERN) }), []);
  });

  test("the classic catastrophic pattern is harmless: it answers at once on an input that would backtrack forever", () => {
    const evil = compileHeaderRegex("^(a+)+$");
    // With RegExp this call would not return in the lifetime of the test run.
    assert.equal(evil(`${"a".repeat(5_000)}!`), false);
    assert.equal(evil("aaaa"), true);
  });

  test("a header value longer than the input cap never matches", () => {
    const any = compileHeaderRegex("^a+$");
    assert.equal(any("a".repeat(HEADER_REGEX_MAX_INPUT)), true);
    assert.equal(any("a".repeat(HEADER_REGEX_MAX_INPUT + 1)), false);
  });

  test("routing uses them: unanchored unless anchored, as before", () => {
    const r = validatePolicy({ kind: "Route", service: "pricing", rules: [{ match: { headersRegex: { "user-agent": "^tester/\\d+$", "x-t": "canary" } }, backends: [{ version: "v2" }] }] });
    assert.ok(r.ok);
    const route = compileRoute(r.value as RoutePolicy);
    const headers: Record<string, string> = { "user-agent": "tester/12", "x-t": "is-canary-yes" };
    assert.ok(route.select("GET", "/", (n) => headers[n]));
    headers["user-agent"] = "tester/12x";
    assert.equal(route.select("GET", "/", (n) => headers[n]), undefined);
  });
});
