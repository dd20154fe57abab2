import type { ServiceView, Topology } from "../../control/dashboard/model.ts";

/**
 * The page's one live feed: server-sent events from control
 * (`/dashboard/events`). When the stream breaks (control restarting, a
 * failover) the status says "reconnecting" and a new stream is opened every
 * second until one answers; any control replica serves it.
 */
export interface LiveHandlers {
  topology?(t: Topology): void;
  service?(s: ServiceView): void;
}

const RECONNECT_MS = 1_000;

export class Live {
  #source: EventSource | undefined;
  #timer: number | undefined;
  #url = "";
  #handlers: LiveHandlers = {};
  readonly #status: HTMLElement;

  constructor(status: HTMLElement) {
    this.#status = status;
  }

  /** Follows `events?window=…&service=…`, replacing any previous stream. */
  follow(params: { window: number; service?: string }, handlers: LiveHandlers): void {
    const q = new URLSearchParams({ window: String(params.window) });
    if (params.service) q.set("service", params.service);
    this.#handlers = handlers;
    this.#url = `events?${q}`;
    this.#open();
  }

  #open(): void {
    this.#source?.close();
    clearTimeout(this.#timer);
    const source = new EventSource(this.#url);
    this.#source = source;
    source.addEventListener("open", () => this.#show("live", "live"));
    source.addEventListener("topology", (e) => this.#handlers.topology?.(JSON.parse((e as MessageEvent<string>).data) as Topology));
    source.addEventListener("service", (e) => this.#handlers.service?.(JSON.parse((e as MessageEvent<string>).data) as ServiceView));
    source.addEventListener("problem", (e) => this.#show("problem", `control: ${(JSON.parse((e as MessageEvent<string>).data) as { message: string }).message}`));
    source.addEventListener("error", () => {
      if (this.#source !== source) return;
      source.close();
      this.#show("reconnecting", "reconnecting…");
      this.#timer = window.setTimeout(() => this.#open(), RECONNECT_MS);
    });
  }

  #show(state: string, text: string): void {
    this.#status.className = `status ${state}`;
    this.#status.dataset.state = state;
    this.#status.textContent = text;
  }
}
