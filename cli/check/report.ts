// One line per check, like `linkerd check`: ✓ or ✗ (or - when it could not
// run), and a hint per failure (docs/run.md "mesh check").

export type CheckStatus = "ok" | "fail" | "skip";

export interface CheckResult {
  /** the group the check belongs to, e.g. "NATS", "JetStream" */
  category: string;
  status: CheckStatus;
  /** what was found, one line */
  detail: string;
  /** what to do about a failure */
  hint?: string;
}

const MARK: Record<CheckStatus, string> = { ok: "✓", fail: "✗", skip: "-" };

/** Bounds a list for a one-line detail: the first `max` and how many more. */
export function listed(items: readonly string[], max = 8): string {
  return items.length <= max ? items.join(", ") : `${items.slice(0, max).join(", ")} and ${items.length - max} more`;
}

export function formatText(results: readonly CheckResult[]): string {
  const lines: string[] = [];
  let category: string | undefined;
  for (const r of results) {
    if (r.category !== category) {
      if (category !== undefined) lines.push("");
      category = r.category;
      lines.push(r.category, "-".repeat(r.category.length));
    }
    lines.push(`${MARK[r.status]} ${r.detail}`);
    if (r.hint && r.status !== "ok") lines.push(`    hint: ${r.hint}`);
  }
  const failed = results.filter((r) => r.status === "fail").length;
  lines.push("", failed === 0 ? "Status check results are ✓" : `Status check results are ✗ (${failed} failed)`);
  return lines.join("\n");
}

export function formatJson(results: readonly CheckResult[]): string {
  return JSON.stringify({ ok: results.every((r) => r.status !== "fail"), checks: results }, null, 2);
}
