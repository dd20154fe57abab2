import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { validatePolicy, type AuthzPolicy } from "../schemas/index.ts";
import { compileAuthz, type AuthzDecider } from "../sidecar/policy/authz.ts";

/** Through the real entry point, so defaults are applied as in the sidecar. */
function decider(doc: Record<string, unknown>): AuthzDecider {
  const result = validatePolicy({ kind: "Authz", service: "orders", ...doc });
  assert.ok(result.ok, JSON.stringify(!result.ok && result.problems));
  return compileAuthz(result.value as AuthzPolicy);
}

/** The decider's view of a raw request target: the caller of the decider strips the query. */
function pathOf(target: string): string {
  const q = target.indexOf("?");
  return q === -1 ? target : target.slice(0, q);
}

describe("authz decisions", () => {
  test("no document: every caller, method and path is allowed", () => {
    const allow = compileAuthz(undefined);
    assert.equal(allow("anyone", "DELETE", "/admin/everything"), "allow");
  });

  test("default absent means deny; default allow allows everything", () => {
    assert.equal(decider({})("frontend", "GET", "/"), "deny");
    assert.equal(decider({ rules: [] })("frontend", "GET", "/"), "deny");
    assert.equal(decider({ default: "allow" })("frontend", "GET", "/"), "allow");
    assert.equal(decider({ default: "allow", rules: [{ from: ["frontend"], paths: ["/x"] }] })("other", "POST", "/y"), "allow");
  });

  test("the DESIGN example: callers, admin-* globs, methods and paths", () => {
    const d = decider({ default: "deny", rules: [{ from: ["frontend", "admin-*"], methods: ["GET", "POST"], paths: ["/orders", "/orders/*"] }] });
    assert.equal(d("frontend", "GET", "/orders"), "allow");
    assert.equal(d("frontend", "POST", "/orders/42"), "allow");
    assert.equal(d("admin-ui", "GET", "/orders/42"), "allow");
    assert.equal(d("admin-", "GET", "/orders"), "allow", "* matches an empty run");
    assert.equal(d("admin", "GET", "/orders"), "deny", "admin-* needs the dash");
    assert.equal(d("superadmin-ui", "GET", "/orders"), "deny", "globs are anchored");
    assert.equal(d("billing", "GET", "/orders"), "deny");
    assert.equal(d("frontend", "DELETE", "/orders/42"), "deny");
    assert.equal(d("frontend", "get", "/orders"), "deny", "methods are compared exactly");
    assert.equal(d("frontend", "GET", "/orders/42/items"), "deny", "* stays within one segment");
    assert.equal(d("frontend", "GET", "/ordersx"), "deny");
  });

  test("a rule without methods or paths allows any; * as a method allows any", () => {
    const d = decider({ rules: [{ from: ["ops"] }, { from: ["*"], methods: ["*"], paths: ["/health"] }] });
    assert.equal(d("ops", "PATCH", "/anything/at/all"), "allow");
    assert.equal(d("random", "OPTIONS", "/health"), "allow", "* matches every caller, * every method");
    assert.equal(d("random", "GET", "/healthz"), "deny");
  });

  test("** matches any number of segments, none included", () => {
    const d = decider({ rules: [{ from: ["frontend"], paths: ["/orders/**"] }, { from: ["root"], paths: ["/**"] }, { from: ["mid"], paths: ["/a/**/z"] }] });
    for (const p of ["/orders", "/orders/1", "/orders/1/items", "/orders/1/items/2"]) assert.equal(d("frontend", "GET", p), "allow", p);
    assert.equal(d("frontend", "GET", "/ordersx"), "deny");
    assert.equal(d("frontend", "GET", "/"), "deny");
    for (const p of ["/", "/x", "/x/y/z"]) assert.equal(d("root", "GET", p), "allow", p);
    for (const p of ["/a/z", "/a/b/z", "/a/b/c/z"]) assert.equal(d("mid", "GET", p), "allow", p);
    assert.equal(d("mid", "GET", "/a/b/c"), "deny");
  });

  test("any one matching rule allows; rules are independent", () => {
    const d = decider({ rules: [{ from: ["a"], methods: ["GET"] }, { from: ["b"], methods: ["POST"] }] });
    assert.equal(d("a", "GET", "/"), "allow");
    assert.equal(d("a", "POST", "/"), "deny", "a's POST is not allowed by b's rule");
    assert.equal(d("b", "POST", "/"), "allow");
  });

  test("the query is not part of the path the decider sees", () => {
    const d = decider({ rules: [{ from: ["frontend"], paths: ["/orders/*"] }] });
    assert.equal(d("frontend", "GET", pathOf("/orders/1?expand=items/2")), "allow");
    assert.equal(d("frontend", "GET", "/orders/1?expand=items/2"), "deny", "an unstripped query would not match");
  });

  test("paths an application may read differently never match a path glob", () => {
    const d = decider({ rules: [{ from: ["frontend"], paths: ["/orders/**"] }, { from: ["any"] }] });
    for (const p of ["/orders/../admin", "/orders/./1", "/orders/%2e%2e/admin", "/orders/%2E./x", "/orders//1", "/orders/1%2fadmin", "/orders/..", "/orders\\..\\admin"]) {
      assert.equal(d("frontend", "GET", p), "deny", p);
      assert.equal(d("any", "GET", p), "allow", `a rule without paths still matches ${p}`);
    }
    assert.equal(d("frontend", "GET", "/orders/.well-known"), "allow", "a dot inside a segment is fine");
    assert.equal(d("frontend", "GET", "/orders/1/"), "allow", "a trailing slash is fine");
  });
});
