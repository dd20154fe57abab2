/**
 * Building the page: every value shown goes in through textContent or an
 * attribute, never through HTML parsing, so a request path like
 * `<script>...` is only ever text (docs/dashboard.md §Safety).
 */
type Child = Node | string | number | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string | undefined> = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined) el.setAttribute(k, v);
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(typeof c === "object" ? c : document.createTextNode(String(c)));
  return el;
}

/** Replaces an element's children. */
export function fill(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(typeof c === "object" ? c : document.createTextNode(String(c)));
}

export function table(head: string[], rows: Node[]): HTMLTableElement {
  return h("table", {}, h("thead", {}, h("tr", {}, ...head.map((c) => h("th", {}, c)))), h("tbody", {}, ...rows));
}

export const percent = (v: number | null | undefined) => (v === null || v === undefined ? "–" : `${(v * 100).toFixed(v === 1 ? 0 : 1)}%`);
export const millis = (v: number | null | undefined) => (v === null || v === undefined ? "–" : v >= 100 ? `${Math.round(v)} ms` : `${v.toFixed(1)} ms`);
export const rate = (v: number) => `${v.toFixed(v >= 10 ? 0 : 1)} rps`;

export function age(seconds: number): string {
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`;
  return `${Math.round(seconds / 3600)}h`;
}

export async function getJson<T>(path: string, init?: RequestInit): Promise<T> {
  const res = await fetch(path, init);
  const body = (await res.json()) as T & { message?: string };
  if (!res.ok) throw new Error(body.message ?? `${path}: ${res.status}`);
  return body;
}
