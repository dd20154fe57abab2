import { Counter, type Registry } from "prom-client";
import { isOutcomeCode } from "../../schemas/index.ts";
import type { RequestRecord } from "./request-record.ts";

/**
 * Label values of a sidecar's metrics and telemetry come from input: Host
 * names the application sends, caller tokens of request subjects, versions
 * providers answer with. Each kind gets a cap; past it a value counts as
 * `_other` and `mesh_label_overflow_total{label}` counts how often. Access
 * logs and spans keep the real values (they are bounded in memory another
 * way). Values once admitted stay admitted, so a series never changes name.
 */
export const LABEL_LIMITS = {
  /** destinations that answered (a provider replied), per caller sidecar */
  answeredDestinations: 1_000,
  /** destinations that never answered (no such service, a typo, a flood of Host names) */
  unansweredDestinations: 100,
  /** versions per destination */
  versionsPerDestination: 20,
  /** callers per provider sidecar */
  callers: 1_000,
} as const;

/** What a value past its cap is counted as. */
export const OVERFLOW_LABEL = "_other";

type LabelName = "destination" | "version" | "source" | "code";

class Admitted {
  readonly #values = new Set<string>();
  constructor(readonly max: number) {}
  has(value: string): boolean {
    return this.#values.has(value);
  }
  /** true when `value` is (now) admitted */
  admit(value: string): boolean {
    if (this.#values.has(value)) return true;
    if (this.#values.size >= this.max) return false;
    this.#values.add(value);
    return true;
  }
}

export class RecordLabels {
  readonly #answered = new Admitted(LABEL_LIMITS.answeredDestinations);
  readonly #unanswered = new Admitted(LABEL_LIMITS.unansweredDestinations);
  readonly #versions = new Map<string, Admitted>();
  readonly #callers = new Admitted(LABEL_LIMITS.callers);
  readonly #overflow: Counter<"label"> | undefined;
  readonly #counts: Record<LabelName, number> = { destination: 0, version: 0, source: 0, code: 0 };

  constructor(registry?: Registry) {
    this.#overflow = registry
      ? new Counter({ name: "mesh_label_overflow_total", help: "Request records whose label value was past its cap and counted as _other, by label", labelNames: ["label"], registers: [registry] })
      : undefined;
  }

  /** Overflows so far, by label (tests). */
  overflows(): Readonly<Record<LabelName, number>> {
    return { ...this.#counts };
  }

  /** The record with every label value within its cap; the same object when nothing changed. */
  bound(r: RequestRecord): RequestRecord {
    const outbound = r.direction === "outbound";
    const destination = outbound ? this.#destination(r.destination, r.instance !== undefined) : r.destination;
    const source = outbound ? r.source : this.#callers.admit(r.source) ? r.source : this.#over("source");
    const version = this.#version(destination, r.version);
    const code = isOutcomeCode(r.code) ? r.code : this.#over("code");
    if (destination === r.destination && source === r.source && version === r.version && code === r.code) return r;
    return { ...r, destination, source, version, code };
  }

  /** A destination that answered takes an answered slot; one that never did, an unanswered slot. */
  #destination(name: string, answered: boolean): string {
    if (this.#answered.has(name)) return name;
    if (answered && this.#answered.admit(name)) return name;
    if (this.#unanswered.admit(name)) return name;
    return this.#over("destination");
  }

  #version(destination: string, version: string): string {
    if (destination === OVERFLOW_LABEL) return OVERFLOW_LABEL;
    let versions = this.#versions.get(destination);
    if (!versions) this.#versions.set(destination, (versions = new Admitted(LABEL_LIMITS.versionsPerDestination)));
    return versions.admit(version) ? version : this.#over("version");
  }

  #over(label: LabelName): string {
    this.#counts[label]++;
    this.#overflow?.inc({ label });
    return OVERFLOW_LABEL;
  }
}
