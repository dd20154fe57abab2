import cytoscape, { type Core, type ElementDefinition } from "cytoscape";
import type { Topology, TopologyEdge, TopologyNode } from "../../control/dashboard/model.ts";
import { fill, h, millis, percent, rate, table } from "./dom.ts";

/**
 * The topology page (docs/dashboard.md §Topology): services as nodes (their
 * versions and ready/unready instances), calls as edges labelled with rate,
 * success rate and p99. An error edge is red AND says "ERROR"; a mirror edge
 * is dashed and says "mirror"; an edge across clusters is double and names
 * them. The same figures are in a table under the graph, for reading and
 * for tests.
 */
export class TopologyView {
  readonly #cy: Core;
  readonly #edges: HTMLElement;
  readonly #at: HTMLElement;
  #shape = "";

  constructor(root: HTMLElement, onPick: (service: string) => void) {
    const graph = h("div", { id: "graph", "data-testid": "graph" });
    this.#at = h("p", { class: "muted", "data-testid": "topology-at" });
    this.#edges = h("div", { "data-testid": "edges" });
    fill(root, graph, this.#at, h("h2", {}, "Calls"), this.#edges);
    this.#cy = cytoscape({ container: graph, style: STYLE, wheelSensitivity: 0.3, minZoom: 0.3, maxZoom: 3 });
    this.#cy.on("tap", "node", (e) => onPick(e.target.id() as string));
    (window as unknown as { meshDashboard?: object }).meshDashboard = { cy: this.#cy };
  }

  update(t: Topology): void {
    const elements: ElementDefinition[] = [...t.nodes.map(nodeElement), ...t.edges.map(edgeElement)];
    const shape = elements.map((e) => e.data.id).sort().join(" ");
    this.#cy.batch(() => {
      for (const el of this.#cy.elements()) if (!elements.some((e) => e.data.id === el.id())) el.remove();
      for (const e of elements) {
        const existing = this.#cy.getElementById(e.data.id!);
        if (existing.nonempty()) existing.data(e.data).classes(e.classes ?? "");
        else this.#cy.add(e);
      }
    });
    if (shape !== this.#shape) {
      this.#shape = shape;
      this.#cy.layout({ name: "preset", positions: place(t), fit: true, padding: 30 }).run();
    }
    fill(this.#at, `last ${t.windowSeconds}s, from the callers' sidecars · ${new Date(t.at).toLocaleTimeString()}`);
    fill(this.#edges, edgeTable(t.edges));
  }
}

/**
 * Rows of the graph, callers on top: each service one row below its lowest
 * caller (longest call path from a service nobody calls), so no call runs
 * along a row through another node. Cycles stop growing after as many
 * rounds as there are services. (Cytoscape's breadthfirst `maximal` option
 * would do this, but throws on some graphs in 3.35.)
 */
export function layers(t: Topology): string[][] {
  const depth = new Map(t.nodes.map((n) => [n.service, 0]));
  const calls = t.edges.filter((e) => e.kind === "call" && e.source !== e.destination);
  for (let round = 0; round < t.nodes.length; round++) {
    let moved = false;
    for (const e of calls) {
      const want = (depth.get(e.source) ?? 0) + 1;
      if ((depth.get(e.destination) ?? 0) < want) depth.set(e.destination, want), (moved = true);
    }
    if (!moved) break;
  }
  const rows: string[][] = [];
  for (const [service, d] of [...depth].sort((a, b) => a[0].localeCompare(b[0]))) (rows[d] ??= []).push(service);
  return rows.filter(Boolean);
}

const COLUMN_PX = 260;
const ROW_PX = 190;

/**
 * Positions: rows from `layers`, the first evenly spaced; below, each
 * service near the mean x of its callers (so a call that skips a row runs
 * between nodes, not behind one), then pushed apart to a column's width.
 */
function place(t: Topology): Record<string, { x: number; y: number }> {
  const at: Record<string, { x: number; y: number }> = {};
  const callers = new Map<string, string[]>();
  for (const e of t.edges) if (e.kind === "call") callers.set(e.destination, [...(callers.get(e.destination) ?? []), e.source]);
  for (const [depth, row] of layers(t).entries()) {
    const wanted = row.map((id, i) => {
      const xs = (callers.get(id) ?? []).flatMap((c) => (at[c] ? [at[c].x] : []));
      return { id, x: depth === 0 || xs.length === 0 ? (i - (row.length - 1) / 2) * COLUMN_PX : xs.reduce((a, b) => a + b, 0) / xs.length };
    });
    wanted.sort((a, b) => a.x - b.x || a.id.localeCompare(b.id));
    const xs = wanted.map((w) => w.x);
    for (let i = 1; i < xs.length; i++) xs[i] = Math.max(xs[i]!, xs[i - 1]! + COLUMN_PX);
    const shift = (wanted.reduce((a, w) => a + w.x, 0) - xs.reduce((a, x) => a + x, 0)) / Math.max(1, xs.length);
    wanted.forEach((w, i) => (at[w.id] = { x: xs[i]! + shift, y: depth * ROW_PX }));
  }
  return at;
}

export function edgeTable(edges: readonly TopologyEdge[]): Node {
  if (edges.length === 0) return h("p", { class: "muted" }, "no calls in the window");
  const rows = edges.map((e) =>
    h(
      "tr",
      { "data-edge": `${e.source}->${e.destination}`, "data-kind": e.kind, "data-state": e.error ? "error" : "ok", class: e.error ? "error" : e.kind },
      h("td", {}, e.source),
      h("td", {}, e.destination),
      h("td", { "data-field": "rps" }, e.kind === "mirror" ? "–" : rate(e.rps)),
      h("td", { "data-field": "success" }, percent(e.successRate)),
      h("td", { "data-field": "p99" }, millis(e.p99Ms)),
      h("td", { "data-field": "requests" }, e.kind === "mirror" ? "–" : String(e.requests)),
      h("td", { "data-field": "state" }, stateText(e)),
    ),
  );
  return table(["from", "to", "rate", "success", "p99", "requests", "state"], rows);
}

function stateText(e: TopologyEdge): string {
  const where = e.crossCluster ? ` (cross-cluster ${e.sourceCluster} → ${e.destinationCluster})` : "";
  if (e.kind === "mirror") return `mirror ${e.note ?? ""}${where}`;
  return `${e.error ? "ERROR" : "ok"}${where}`;
}

function nodeElement(n: TopologyNode): ElementDefinition {
  const unready = n.versions.reduce((s, v) => s + v.unready + v.draining, 0);
  const versions = n.versions.map((v) => `${v.version} ${v.ready}/${v.ready + v.unready + v.draining} ready`);
  const clusters = n.clusters.length ? [`[${n.clusters.join(", ")}]`] : [];
  const label = [n.service, ...(versions.length ? versions : ["(no instances)"]), ...clusters].join("\n");
  return { group: "nodes", data: { id: n.service, label }, classes: unready > 0 ? "unready" : n.versions.length === 0 ? "caller" : "" };
}

function edgeElement(e: TopologyEdge): ElementDefinition {
  const id = `${e.kind}:${e.source}->${e.destination}`;
  const where = e.crossCluster ? `\n${e.sourceCluster} → ${e.destinationCluster}` : "";
  const label =
    e.kind === "mirror"
      ? `mirror ${e.note ?? ""}`
      : `${e.error ? "ERROR " : ""}${rate(e.rps)} · ${percent(e.successRate)} · p99 ${millis(e.p99Ms)}${where}`;
  const classes = [e.kind, e.error ? "error" : "", e.crossCluster ? "cross" : ""].filter(Boolean).join(" ");
  return { group: "edges", data: { id, source: e.source, target: e.destination, label }, classes };
}

const STYLE: cytoscape.StylesheetJson = [
  {
    selector: "node",
    style: {
      label: "data(label)",
      "text-wrap": "wrap",
      "text-valign": "center",
      "font-size": 11,
      shape: "round-rectangle",
      width: 150,
      height: 56,
      "background-color": "#e8f0fe",
      "border-width": 2,
      "border-color": "#3b6fd8",
    },
  },
  { selector: "node.caller", style: { "background-color": "#f3f3f3", "border-color": "#888", "border-style": "dashed" } },
  { selector: "node.unready", style: { "border-color": "#d98a00", "border-width": 4 } },
  {
    selector: "edge",
    style: {
      label: "data(label)",
      "text-wrap": "wrap",
      "font-size": 10,
      "text-rotation": "autorotate",
      "text-background-color": "#fff",
      "text-background-opacity": 0.85,
      "curve-style": "bezier",
      "target-arrow-shape": "triangle",
      width: 2,
      "line-color": "#2e8b57",
      "target-arrow-color": "#2e8b57",
    },
  },
  { selector: "edge.error", style: { "line-color": "#d93025", "target-arrow-color": "#d93025", color: "#b3261e", width: 4 } },
  { selector: "edge.mirror", style: { "line-style": "dashed", "line-color": "#7b3fbf", "target-arrow-color": "#7b3fbf", color: "#5b2a91" } },
  { selector: "edge.cross", style: { "line-style": "dotted", width: 3 } },
];
