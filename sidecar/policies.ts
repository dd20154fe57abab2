import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { Counter, type Registry } from "prom-client";
import {
  POLICY_BUCKETS,
  REGISTRY_BUCKET,
  registryKey,
  type RegistryEntry,
  formatProblem,
  validatePolicy,
  type AuthzPolicy,
  type PolicyDocument,
  type PolicyKind,
  type QuotaPolicy,
  type RoutePolicy,
} from "../schemas/index.ts";
import { PolicyWatch, type AppliedPolicy, type PolicyCheck } from "./policy-watch.ts";
import { compileAuthz, type AuthzDecider } from "./authz.ts";
import { InstanceView } from "./instances.ts";
import { compileRoute, type CompiledRoute } from "./routing.ts";

/**
 * Registry values are written by sidecars, not people: a shape check, and the
 * entry must sit under its own service's key (a sidecar can write only there).
 */
const checkRegistryEntry: PolicyCheck<RegistryEntry> = (doc, key) => {
  const e = doc as RegistryEntry;
  const ok = typeof e?.service === "string" && typeof e.instance === "string" && typeof e.version === "string";
  if (!ok) return { ok: false, problems: ["not a registry entry"] };
  return key === registryKey(e.service, e.instance) ? { ok: true, value: e } : { ok: false, problems: [`entry for '${e.service}' under key '${key}'`] };
};

/** A value in KV is applied only if it validates, is of the bucket's kind, and names its key's service. */
function checkFor<T extends PolicyDocument>(kind: PolicyKind): PolicyCheck<T> {
  return (doc, key) => {
    const result = validatePolicy(doc);
    if (!result.ok) return { ok: false, problems: result.problems.map(formatProblem) };
    const policy = result.value;
    if (policy.kind !== kind) return { ok: false, problems: [`kind: expected ${kind}, got "${policy.kind}"`] };
    if (policy.service !== key) return { ok: false, problems: [`service: "${policy.service}" does not match key "${key}"`] };
    return { ok: true, value: policy as Readonly<T> };
  };
}

export interface SidecarPoliciesOptions {
  nc: NatsConnection;
  logger: Logger;
  registry: Registry;
  /** this sidecar's service */
  service: string;
  /** providers follow their own Quota document */
  provider: boolean;
  /** called with this service's Quota document whenever it changes (undefined = removed) */
  onQuota?: (policy: Readonly<QuotaPolicy> | undefined) => void;
}

/**
 * Every policy a sidecar follows: Route documents of every service (it may
 * call any of them), and, for a provider, its own Authz and Quota.
 */
export class SidecarPolicies {
  readonly routes = new Map<string, CompiledRoute<RoutePolicy>>();
  /**
   * Compiled Authz of every service: a provider enforces its own, a caller
   * checks the destination's to fail fast (the provider's check is the one that counts).
   */
  readonly authz = new Map<string, AuthzDecider>();
  /** live instances of every service, for latency-aware balancing */
  readonly instances = new InstanceView();
  readonly #watches: Array<PolicyWatch<any>> = [];
  /**
   * The registry changes with every heartbeat of every instance, so it is
   * followed only once some route asks for p2c-ewma, which needs it.
   */
  readonly #registry: PolicyWatch<RegistryEntry>;
  #registryStarted: Promise<void> | undefined;
  #loaded = false;

  constructor(opts: SidecarPoliciesOptions) {
    const rejected = new Counter({
      name: "mesh_policy_rejected_total",
      help: "Policy values in KV that failed validation on receipt and were not applied",
      labelNames: ["bucket"],
      registers: [opts.registry],
    });
    const common = { nc: opts.nc, logger: opts.logger, onRejected: (bucket: string) => rejected.inc({ bucket }) };
    this.#watches.push(
      new PolicyWatch<RoutePolicy>({
        ...common,
        bucket: POLICY_BUCKETS.Route,
        key: ">",
        check: checkFor<RoutePolicy>("Route"),
        onChange: (key, applied) => {
          if (applied) this.routes.set(key, compileRoute(applied.document as RoutePolicy));
          else this.routes.delete(key);
          if (applied?.document.loadBalancer === "p2c-ewma") this.#followRegistry();
        },
      }),
    );
    this.#registry = new PolicyWatch<RegistryEntry>({
      ...common,
      quiet: true,
      bucket: REGISTRY_BUCKET,
      key: ">",
      check: checkRegistryEntry,
      onChange: (key, applied) => this.instances.update(key, applied?.document as RegistryEntry | undefined),
    });
    this.#watches.push(
      new PolicyWatch<AuthzPolicy>({
        ...common,
        bucket: POLICY_BUCKETS.Authz,
        key: ">",
        check: checkFor("Authz"),
        onChange: (key, applied) => {
          if (applied) this.authz.set(key, compileAuthz(applied.document));
          else this.authz.delete(key);
        },
      }),
    );
    if (opts.provider) {
      this.#watches.push(
        new PolicyWatch<QuotaPolicy>({
          ...common,
          bucket: POLICY_BUCKETS.Quota,
          key: opts.service,
          check: checkFor("Quota"),
          onChange: (_k, applied) => opts.onQuota?.(applied?.document),
        }),
      );
    }
  }

  /** true once the current policy has been read */
  get loaded(): boolean {
    return this.#loaded;
  }

  async start(): Promise<void> {
    await Promise.all(this.#watches.map((w) => w.start()));
    // A p2c-ewma route read just now started the registry watch: have its instances before serving.
    await this.#registryStarted;
    this.#loaded = true;
  }

  stop(): void {
    for (const w of this.#watches) w.stop();
    this.#registry.stop();
  }

  #followRegistry(): void {
    this.#registryStarted ??= this.#registry.start().catch(() => undefined);
  }

  /** What `/config` shows: every applied document with its revision. */
  describe(): Array<AppliedPolicy<unknown>> {
    return this.#watches.flatMap((w) => [...w.applied.values()]);
  }
}
