import type { PolicyProblem, ValidateResult } from "../../control/dashboard/model.ts";
import { fill, getJson, h } from "./dom.ts";

/**
 * Policy check (docs/dashboard.md §Policy check): paste YAML or JSON, and
 * control checks it exactly as `mesh validate` does, answering each problem
 * with its document and JSON path. Nothing is applied: the page has no way to.
 */
export function policyCheck(root: HTMLElement): void {
  const text = h("textarea", { rows: "16", spellcheck: "false", "data-testid": "policy-text", placeholder: "kind: Route\nservice: pricing\n..." });
  const button = h("button", { type: "button", "data-testid": "policy-validate" }, "Validate");
  const out = h("div", { "data-testid": "policy-result", role: "status" });
  button.addEventListener("click", async () => {
    fill(out, "checking…");
    try {
      const r = await getJson<ValidateResult>("api/validate", { method: "POST", body: text.value, headers: { "content-type": "text/plain" } });
      fill(out, ...(r.ok ? [h("p", { class: "ok", "data-state": "valid" }, `valid: ${r.documents.length} document(s)`), problems("warning", r.warnings)] : [h("p", { class: "error", "data-state": "invalid" }, "rejected"), problems("error", r.problems)]));
    } catch (err) {
      fill(out, h("p", { class: "error" }, (err as Error).message));
    }
  });
  fill(root, h("h1", {}, "Policy check"), h("p", { class: "muted" }, "Checked by control as mesh validate checks it; nothing is applied."), text, h("p", {}, button), out);
}

function problems(kind: "error" | "warning", list: readonly PolicyProblem[]): Node {
  return h(
    "ul",
    { class: kind },
    ...list.map((p) => h("li", { "data-path": p.path }, `${p.document >= 0 ? `document ${p.document}: ` : ""}`, h("code", {}, p.path), `: ${p.message}`)),
  );
}
