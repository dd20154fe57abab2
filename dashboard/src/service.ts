import { diffLines } from "diff";
import type { AccessLogPage, PolicyKind, PolicyRevision, ServiceView } from "../../control/dashboard/model.ts";
import { Charts } from "./charts.ts";
import { age, fill, getJson, h, table } from "./dom.ts";
import { edgeTable } from "./topology.ts";

/**
 * One service (docs/dashboard.md §Service page): charts, peers, instances,
 * its Route/Authz/Quota in force, their history with a diff between two
 * revisions, and a live tail of its access records filtered by caller,
 * status and path.
 */
const KINDS: readonly PolicyKind[] = ["Route", "Authz", "Quota"];
/** access records the tail keeps on the page, and shows at most (newest first, in a scrolling box) */
const TAIL_KEEP = 500;
const TAIL_SHOW = 100;
/** pages (of 200 records) read per event at most: a service with more than ~1000 records a second makes the tail lag */
const TAIL_PAGES_PER_EVENT = 5;

type TailRecord = AccessLogPage["records"][number];

export class ServicePage {
  readonly #service: string;
  readonly #charts: Charts;
  readonly #parts: Record<"instances" | "inbound" | "outbound" | "policies" | "tail", HTMLElement>;
  readonly #filters: Record<"caller" | "status" | "path", HTMLInputElement>;
  #tail: TailRecord[] = [];
  #afterSeq: number | undefined;
  #tailBusy = false;
  #policyKey = "";
  readonly #reloadHistory: () => Promise<void>;

  constructor(root: HTMLElement, service: string) {
    this.#service = service;
    const part = (name: string) => h("section", { "data-testid": name });
    this.#parts = { instances: part("instances"), inbound: part("inbound"), outbound: part("outbound"), policies: part("policies"), tail: h("section", { "data-testid": "tail", class: "tail" }) };
    const input = (name: string, placeholder: string) => h("input", { type: "search", name, placeholder, "data-filter": name });
    this.#filters = { caller: input("caller", "caller"), status: input("status", "status, e.g. 500 or 5xx"), path: input("path", "path contains") };
    for (const f of Object.values(this.#filters)) f.addEventListener("input", () => this.#renderTail());
    const charts = h("div", { class: "charts", "data-testid": "charts" });
    const history = h("section", { "data-testid": "history" });
    fill(
      root,
      h("h1", {}, service),
      charts,
      h("div", { class: "columns" }, h("div", {}, h("h2", {}, "Inbound (callers)"), this.#parts.inbound), h("div", {}, h("h2", {}, "Outbound (callees)"), this.#parts.outbound)),
      h("h2", {}, "Instances"),
      this.#parts.instances,
      h("h2", {}, "Policies in force"),
      this.#parts.policies,
      h("h2", {}, "Policy history"),
      history,
      h("h2", {}, "Live access log"),
      h("div", { class: "filters" }, this.#filters.caller, this.#filters.status, this.#filters.path),
      this.#parts.tail,
    );
    this.#charts = new Charts(charts);
    this.#reloadHistory = historyPicker(history, service);
  }

  destroy(): void {
    this.#charts.destroy();
  }

  update(v: ServiceView): void {
    this.#charts.update(v.series);
    fill(this.#parts.inbound, edgeTable(v.inbound));
    fill(this.#parts.outbound, edgeTable(v.outbound));
    fill(this.#parts.instances, instancesTable(v));
    const key = KINDS.map((k) => v.policies[k]?.revision ?? 0).join(",");
    if (key !== this.#policyKey) {
      // A new revision: the history gains it too (not on the first update, which the picker loaded already).
      if (this.#policyKey) void this.#reloadHistory();
      this.#policyKey = key;
      fill(this.#parts.policies, ...KINDS.map((k) => policyCard(k, v.policies[k])));
    }
    void this.#pollTail();
  }

  async #pollTail(): Promise<void> {
    if (this.#tailBusy) return;
    this.#tailBusy = true;
    try {
      let more = true;
      for (let pages = 0; more && pages < TAIL_PAGES_PER_EVENT; pages++) {
        const q = new URLSearchParams({ service: this.#service });
        if (this.#afterSeq !== undefined) q.set("afterSeq", String(this.#afterSeq));
        const page = await getJson<AccessLogPage>(`api/logs?${q}`);
        this.#afterSeq = page.lastSeq;
        more = page.more;
        this.#tail = [...page.records.reverse(), ...this.#tail].slice(0, TAIL_KEEP);
      }
      this.#renderTail();
    } catch {
      // control restarting: the next event polls again
    } finally {
      this.#tailBusy = false;
    }
  }

  #renderTail(): void {
    const caller = this.#filters.caller.value.trim();
    const status = this.#filters.status.value.trim().toLowerCase();
    const path = this.#filters.path.value;
    const shown = this.#tail
      .filter(({ record: r }) => {
        if (caller && r.source !== caller) return false;
        if (status && !statusMatches(r.status, r.code, status)) return false;
        return !path || r.path.includes(path);
      })
      .slice(0, TAIL_SHOW);
    const rows = shown.map(({ record: r }) =>
      h(
        "tr",
        { class: r.status >= 500 ? "error" : "" },
        h("td", {}, new Date(r.time).toLocaleTimeString()),
        h("td", {}, r.direction),
        h("td", {}, r.source),
        h("td", {}, r.method),
        h("td", { class: "path", "data-field": "path" }, r.path),
        h("td", {}, String(r.status)),
        h("td", {}, r.meshError ?? ""),
        h("td", {}, `${r.durationMs.toFixed(1)} ms`),
        h("td", {}, r.version),
      ),
    );
    fill(this.#parts.tail, shown.length ? table(["time", "seen by", "caller", "method", "path", "status", "mesh error", "duration", "version"], rows) : h("p", { class: "muted" }, "no access records yet"));
  }
}

function statusMatches(status: number, code: string, want: string): boolean {
  if (/^[1-5]xx$/.test(want)) return String(status).startsWith(want[0]!);
  return String(status) === want || code.toLowerCase() === want;
}

function instancesTable(v: ServiceView): Node {
  if (v.instances.length === 0) return h("p", { class: "muted" }, "no registered instances (a caller only, or not running)");
  const rows = v.instances.map((i) =>
    h(
      "tr",
      { "data-instance": i.instance, class: i.state === "ready" ? "" : "warn" },
      h("td", {}, i.instance),
      h("td", {}, i.version),
      h("td", {}, i.state),
      h("td", {}, i.region ?? "–"),
      h("td", {}, i.host),
      h("td", { title: i.startedAt }, age(i.ageSeconds)),
    ),
  );
  return table(["instance", "version", "health", "region", "host", "age"], rows);
}

function policyCard(kind: PolicyKind, r: PolicyRevision | null): Node {
  if (!r) return h("article", { class: "policy", "data-kind": kind }, h("h3", {}, kind), h("p", { class: "muted" }, kind === "Authz" ? "none: every caller is allowed" : "none: defaults apply"));
  const rejected = r.rejected ? h("p", { class: "error" }, `revision ${r.rejected.revision} was rejected: ${r.rejected.problems.join("; ")}`) : null;
  return h(
    "article",
    { class: "policy", "data-kind": kind, "data-revision": String(r.revision) },
    h("h3", {}, `${kind} · revision ${r.revision} · ${new Date(r.created).toLocaleString()}`),
    rejected,
    h("pre", {}, JSON.stringify(r.document, null, 2)),
  );
}

/** Kind and two revisions of its history, and the line diff between them (the `diff` package). Returns how to reload it. */
function historyPicker(root: HTMLElement, service: string): () => Promise<void> {
  const kind = h("select", { "data-testid": "history-kind" }, ...KINDS.map((k) => h("option", { value: k }, k)));
  const from = h("select", { "data-testid": "history-from" });
  const to = h("select", { "data-testid": "history-to" });
  const out = h("pre", { class: "diff", "data-testid": "diff" });
  let entries: PolicyRevision[] = [];
  const text = (rev: string) => {
    const e = entries.find((x) => String(x.revision) === rev);
    return !e ? "" : e.operation === "PUT" ? `${JSON.stringify(e.document, null, 2)}\n` : `(${e.operation.toLowerCase()}d)\n`;
  };
  const show = () => {
    const parts = diffLines(text(from.value), text(to.value));
    fill(out, ...parts.map((p) => h("span", { class: p.added ? "added" : p.removed ? "removed" : "" }, p.value.replace(/^(?=.)/gm, p.added ? "+ " : p.removed ? "- " : "  "))));
  };
  const load = async () => {
    entries = (await getJson<{ entries: PolicyRevision[] }>(`api/history?kind=${kind.value}&service=${encodeURIComponent(service)}`).catch(() => ({ entries: [] }))).entries;
    const options = () => entries.map((e) => h("option", { value: String(e.revision) }, `${e.revision} · ${e.operation} · ${new Date(e.created).toLocaleString()}`));
    fill(from, ...options());
    fill(to, ...options());
    if (entries.length >= 2) from.value = String(entries[entries.length - 2]!.revision);
    if (entries.length >= 1) to.value = String(entries[entries.length - 1]!.revision);
    if (entries.length === 0) fill(out, `no ${kind.value} history for ${service}`);
    else show();
  };
  kind.addEventListener("change", () => void load());
  from.addEventListener("change", show);
  to.addEventListener("change", show);
  fill(root, h("div", { class: "filters" }, kind, " from ", from, " to ", to), out);
  void load();
  return load;
}
