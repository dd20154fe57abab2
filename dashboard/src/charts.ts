import uPlot from "uplot";
import type { SeriesField, ServiceSeries } from "../../control/dashboard/model.ts";
import { h } from "./dom.ts";

/**
 * The service page's golden-signal charts (uPlot), over the 15 minutes
 * control keeps (docs/dashboard.md §Time series). Each chart element says
 * how many points it holds in `data-points`.
 */
interface ChartSpec {
  id: string;
  title: string;
  /** fixed y range; absent: fitted to the data */
  range?: [number, number];
  series: Array<{ field: SeriesField; label: string; color: string; scale?: (v: number) => number }>;
}

const CHARTS: readonly ChartSpec[] = [
  { id: "rate", title: "Request rate (rps)", series: [{ field: "rps", label: "rps", color: "#3b6fd8" }] },
  { id: "success", title: "Success rate (%)", range: [0, 100], series: [{ field: "successRate", label: "success %", color: "#2e8b57", scale: (v) => v * 100 }] },
  {
    id: "latency",
    title: "Latency (ms)",
    series: [
      { field: "p50Ms", label: "p50", color: "#3b6fd8" },
      { field: "p99Ms", label: "p99", color: "#d93025" },
    ],
  },
  {
    id: "rejections",
    title: "Retries, quota rejections, authz denials (per s)",
    series: [
      { field: "retries", label: "retries/s", color: "#d98a00" },
      { field: "quotaRejected", label: "quota rejected/s", color: "#7b3fbf" },
      { field: "authzDenied", label: "authz denied/s", color: "#d93025" },
    ],
  },
  { id: "breakers", title: "Callers with the breaker open", series: [{ field: "breakersOpen", label: "open breakers", color: "#b3261e" }] },
];

export class Charts {
  readonly #plots = new Map<string, { plot: uPlot; el: HTMLElement; spec: ChartSpec }>();

  constructor(root: HTMLElement) {
    const width = Math.max(320, Math.min(560, root.clientWidth / 2 - 24 || 480));
    for (const spec of CHARTS) {
      const el = h("figure", { class: "chart", "data-chart": spec.id, "data-points": "0" }, h("figcaption", {}, spec.title));
      root.append(el);
      const opts: uPlot.Options = {
        width,
        height: 180,
        series: [{}, ...spec.series.map((s) => ({ label: s.label, stroke: s.color, width: 2, spanGaps: false }))],
        axes: [{}, { size: 50 }],
        ...(spec.range ? { scales: { y: { range: spec.range } } } : {}),
      };
      const plot = new uPlot(opts, [[], ...spec.series.map(() => [])], el);
      this.#plots.set(spec.id, { plot, el, spec });
    }
  }

  update(series: ServiceSeries | null): void {
    for (const { plot, el, spec } of this.#plots.values()) {
      const t = series?.t ?? [];
      const columns = spec.series.map((s) => (series?.[s.field] ?? []).map((v) => (v === null ? null : s.scale ? s.scale(v) : v)));
      plot.setData([t, ...columns] as uPlot.AlignedData);
      el.dataset.points = String(columns[0]!.filter((v) => v !== null).length);
    }
  }

  destroy(): void {
    for (const { plot } of this.#plots.values()) plot.destroy();
  }
}
