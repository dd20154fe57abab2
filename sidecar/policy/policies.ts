import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { Counter, type Registry } from "prom-client";
import {
  POLICY_BUCKETS,
  REGISTRY_BUCKET,
  checkRegistryEntry,
  registryKey,
  type RegistryEntry,
  checkStoredPolicy,
  type AuthzPolicy,
  type PolicyDocument,
  type PolicyKind,
  type QuotaPolicy,
  type RoutePolicy,
} from "../../schemas/index.ts";
import { KvFollower, type AppliedValue, type RejectedValue, type ValueCheck } from "./kv-follower.ts";
import { KvReader } from "./kv-reader.ts";
import { compileAuthz, denyAll, type AuthzDecider } from "./authz.ts";
import { InstanceView } from "./instances.ts";
import { compileRoute, type CompiledRoute } from "./routing.ts";

/** A registry value is applied only if it is an entry, and the one of its key (control writes them so). */
const registryValue: ValueCheck<RegistryEntry> = (doc, key) => {
  const result = checkRegistryEntry(doc);
  if (!result.ok) return { ok: false, problems: result.problems.map((p) => `${p.path}: ${p.message}`) };
  const e = result.value;
  return key === registryKey(e.service, e.instance) ? { ok: true, value: e } : { ok: false, problems: [`entry for '${e.service}' under key '${key}'`] };
};

/** A value in KV is applied only if it validates, is of the bucket's kind, and names its key's service. */
function checkFor<T extends PolicyDocument>(kind: PolicyKind): ValueCheck<T> {
  return (doc, key) => checkStoredPolicy(kind, key, doc) as ReturnType<ValueCheck<T>>;
}

export interface SidecarPoliciesOptions {
  nc: NatsConnection;
  logger: Logger;
  registry: Registry;
  /** this sidecar's service */
  service: string;
  /** this sidecar's region: its mirrors of the policy buckets answer when their home cannot (docs/multi-region.md) */
  region?: () => string | undefined;
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
  readonly #followers: Array<KvFollower<any>> = [];
  readonly #authz: KvFollower<AuthzPolicy>;
  readonly #provider: boolean;
  /**
   * The registry changes with every heartbeat of every instance, so it is
   * followed only once some route asks for p2c-ewma, which needs it.
   */
  readonly #registry: KvFollower<RegistryEntry>;
  #registryStarted: Promise<void> | undefined;
  #loaded = false;

  constructor(opts: SidecarPoliciesOptions) {
    const rejected = new Counter({
      name: "mesh_policy_rejected_total",
      help: "Policy values in KV that failed validation on receipt and were not applied",
      labelNames: ["bucket"],
      registers: [opts.registry],
    });
    const reader = new KvReader(opts.nc, undefined, opts.region);
    const common = { nc: opts.nc, reader, logger: opts.logger, onRejected: (bucket: string) => rejected.inc({ bucket }) };
    this.#followers.push(
      new KvFollower<RoutePolicy>({
        ...common,
        bucket: POLICY_BUCKETS.Route,
        key: ">",
        check: checkFor<RoutePolicy>("Route"),
        onChange: (key, applied) => {
          if (applied) this.routes.set(key, compileRoute(applied.document as RoutePolicy));
          else this.routes.delete(key);
          // Both choose instances from the registry (docs/multi-region.md for localityFailover).
          if (applied?.document.loadBalancer === "p2c-ewma" || applied?.document.localityFailover === false) this.#followRegistry();
        },
      }),
    );
    this.#registry = new KvFollower<RegistryEntry>({
      ...common,
      quiet: true,
      valuesInChanges: true,
      bucket: REGISTRY_BUCKET,
      key: ">",
      check: registryValue,
      onChange: (key, applied) => this.instances.update(key, applied?.document as RegistryEntry | undefined),
    });
    this.#provider = opts.provider;
    this.#authz = new KvFollower<AuthzPolicy>({
      ...common,
      bucket: POLICY_BUCKETS.Authz,
      key: ">",
      check: checkFor("Authz"),
      onChange: (key, applied) => {
        if (applied) this.authz.set(key, compileAuthz(applied.document));
        else this.authz.delete(key);
      },
      // Fail closed: an Authz document nobody can read correctly allows nobody.
      onInvalid: (key) => this.authz.set(key, denyAll),
    });
    this.#followers.push(this.#authz);
    if (opts.provider) {
      this.#followers.push(
        new KvFollower<QuotaPolicy>({
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
    // A caller reads other services' Authz only to fail fast: it need not wait for them. A provider's
    // own Authz is what it enforces, so until it is read the provider is not ready (fail closed).
    const waitFor = this.#provider ? this.#followers : this.#followers.filter((w) => w !== this.#authz);
    const authz = this.#provider ? undefined : this.#authz.start();
    authz?.catch(() => undefined);
    await Promise.all(waitFor.map((w) => w.start()));
    // A p2c-ewma route read just now started the registry watch: have its instances before serving.
    await this.#registryStarted;
    this.#loaded = true;
  }

  stop(): void {
    for (const w of this.#followers) w.stop();
    this.#registry.stop();
  }

  /** After a reconnect: changes republished while this sidecar was away were lost, so read everything again. */
  resync(): void {
    for (const w of this.#followers) w.resync();
    if (this.#registryStarted) this.#registry.resync();
  }

  #followRegistry(): void {
    this.#registryStarted ??= this.#registry.start().catch(() => undefined);
  }

  /** What `/config` shows: every applied document with its revision, and newer revisions that were rejected. */
  describe(): { applied: Array<AppliedValue<unknown>>; rejected: RejectedValue[] } {
    return {
      applied: this.#followers.flatMap((w) => [...w.applied.values()]),
      rejected: this.#followers.flatMap((w) => [...w.rejected.values()]),
    };
  }
}
