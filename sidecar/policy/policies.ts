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
import { KvFollower, type AppliedValue, type KvFollowerOptions, type RejectedValue, type ValueCheck } from "./kv-follower.ts";
import { KvReader } from "./kv-reader.ts";
import { compileAuthz, denyAll, type AuthzDecider } from "./authz.ts";
import { InstanceView } from "./instances.ts";
import { choosesInstances, compileRoute, type CompiledRoute } from "./routing.ts";

/** services whose instances one sidecar follows at most (one per p2c-ewma Route); beyond it, the queue group balances */
const MAX_REGISTRY_FOLLOWS = 1_000;

/** A registry value is applied only if it is an entry, and the one of its key (control writes them so). */
const registryValue: ValueCheck<RegistryEntry> = (doc, key) => {
  const result = checkRegistryEntry(doc);
  if (!result.ok) return { ok: false, problems: result.problems.map((p) => `${p.path}: ${p.message}`) };
  const e = result.value;
  return key === registryKey(e.service, e.instance) ? { ok: true, value: e } : { ok: false, problems: [`entry for '${e.service}' under key '${key}'`] };
};

/**
 * A value in KV is applied only if it validates, is of the bucket's kind, and
 * names its key's service. The follower parsed it for this check alone: it is
 * checked in place.
 */
function checkFor<T extends PolicyDocument>(kind: PolicyKind): ValueCheck<T> {
  return (doc, key) => checkStoredPolicy(kind, key, doc, true) as ReturnType<ValueCheck<T>>;
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
  /** live instances of the services this sidecar balances itself (p2c-ewma) */
  readonly instances: InstanceView;
  readonly #followers: Array<KvFollower<any>> = [];
  readonly #authz: KvFollower<AuthzPolicy>;
  readonly #provider: boolean;
  /**
   * The registry changes with every heartbeat of every instance, so a sidecar
   * follows only the instances of services it calls whose Route asks for
   * p2c-ewma, one follower per such service (`<service>.>`), from the first
   * call on (until they are read, the queue group balances): what it
   * receives grows with what it calls, not with the mesh (docs/scale.md).
   */
  readonly #registry = new Map<string, KvFollower<RegistryEntry>>();
  readonly #registryOptions: Omit<KvFollowerOptions<RegistryEntry>, "key" | "bucket" | "check" | "onChange" | "quiet">;
  readonly #logger: Logger;
  #warnedFull = false;
  #loaded = false;

  constructor(opts: SidecarPoliciesOptions) {
    const rejected = new Counter({
      name: "mesh_policy_rejected_total",
      help: "Policy values in KV that failed validation on receipt and were not applied",
      labelNames: ["bucket"],
      registers: [opts.registry],
    });
    // Asked for only on the call path of a Route that chooses instances itself, and only when no fresh list is cached.
    this.instances = new InstanceView(Date.now, (service) => {
      const route = this.routes.get(service)?.source;
      if (route && choosesInstances(route)) this.#followRegistry(service);
    });
    const reader = new KvReader(opts.nc, { region: opts.region, service: opts.service });
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
          // p2c-ewma and localityFailover: false choose instances from the registry (docs/multi-region.md).
          // p2c-ewma follows from its first call (until then the queue group serves); a Route that must
          // not cross regions follows at once, since without a list it can send nowhere.
          if (!applied || !choosesInstances(applied.document as RoutePolicy)) this.#unfollowRegistry(key);
          else if ((applied.document as RoutePolicy).localityFailover === false) this.#followRegistry(key);
        },
      }),
    );
    this.#registryOptions = common;
    this.#logger = opts.logger;
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
    this.#loaded = true;
  }

  stop(): void {
    for (const w of this.#followers) w.stop();
    for (const f of this.#registry.values()) f.stop();
  }

  /** After a reconnect: changes republished while this sidecar was away were lost, so read everything again. */
  resync(): void {
    for (const w of this.#followers) w.resync();
    for (const f of this.#registry.values()) f.resync();
  }

  /** Follows the instances of `service` (registry keys `<service>.<instance>`), once. */
  #followRegistry(service: string): void {
    if (this.#registry.has(service)) return;
    if (this.#registry.size >= MAX_REGISTRY_FOLLOWS) {
      if (this.#warnedFull) return;
      this.#warnedFull = true;
      this.#logger.warn({ service, max: MAX_REGISTRY_FOLLOWS }, "too many p2c-ewma services to follow: the others are balanced by their queue groups");
      return;
    }
    const follower = new KvFollower<RegistryEntry>({
      ...this.#registryOptions,
      quiet: true,
      bucket: REGISTRY_BUCKET,
      key: `${service}.>`,
      check: registryValue,
      // A read still in flight when the service was unfollowed changes nothing.
      onChange: (key, applied) => {
        if (this.#registry.get(service) === follower) this.instances.update(key, applied?.document as RegistryEntry | undefined);
      },
    });
    this.#registry.set(service, follower);
    follower.start().catch(() => undefined);
  }

  /** The Route no longer asks for p2c-ewma: stop following its instances and forget them. */
  #unfollowRegistry(service: string): void {
    const followed = this.#registry.get(service);
    if (!followed) return;
    followed.stop();
    this.#registry.delete(service);
    for (const key of followed.applied.keys()) this.instances.update(key, undefined);
  }

  /** What `/config` shows: every applied document with its revision, and newer revisions that were rejected. */
  describe(): { applied: Array<AppliedValue<unknown>>; rejected: RejectedValue[] } {
    return {
      applied: this.#followers.flatMap((w) => [...w.applied.values()]),
      rejected: this.#followers.flatMap((w) => [...w.rejected.values()]),
    };
  }
}

