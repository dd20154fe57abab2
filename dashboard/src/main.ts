import type { Topology } from "../../control/dashboard/model.ts";
import { fill, h } from "./dom.ts";
import { Live } from "./live.ts";
import { policyCheck } from "./policy-check.ts";
import { ServicePage } from "./service.ts";
import { TopologyView } from "./topology.ts";

/**
 * The dashboard page (docs/dashboard.md): a hash router over three views,
 * fed by one live event stream. `#/?window=30`, `#/service/NAME`, `#/policy`.
 */
const main = document.getElementById("main")!;
const live = new Live(document.getElementById("status")!);
let page: { destroy?(): void } | undefined;
const WINDOWS = [10, 30, 60];

function route(): void {
  page?.destroy?.();
  page = undefined;
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path = "/", query = ""] = hash.split("?");
  const windowSeconds = windowOf(new URLSearchParams(query).get("window"));
  const service = /^\/service\/([a-z0-9-]{1,63})$/.exec(path)?.[1];
  if (service) {
    const p = new ServicePage(main, service);
    page = p;
    live.follow({ window: windowSeconds, service }, { service: (v) => p.update(v) });
  } else if (path === "/policy") {
    policyCheck(main);
    live.follow({ window: windowSeconds }, {});
  } else {
    const picker = windowPicker(windowSeconds);
    const holder = h("div");
    fill(main, h("div", { class: "toolbar" }, h("h1", {}, "Topology"), picker), holder);
    const view = new TopologyView(holder, (s) => (location.hash = `#/service/${s}`));
    live.follow({ window: windowSeconds }, { topology: (t: Topology) => view.update(t) });
  }
}

function windowOf(raw: string | null): number {
  const n = Number(raw);
  return WINDOWS.includes(n) ? n : 30;
}

function windowPicker(current: number): HTMLElement {
  const select = h("select", { "data-testid": "window" }, ...WINDOWS.map((w) => h("option", { value: String(w) }, `last ${w}s`)));
  select.value = String(current);
  select.addEventListener("change", () => (location.hash = `#/?window=${select.value}`));
  return h("label", {}, "window ", select);
}

window.addEventListener("hashchange", route);
route();
