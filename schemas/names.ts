/** Service names: DNS-label-like, so they fit in a NATS subject token and a Host header. */
export const SERVICE_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
/** Version names, e.g. `v1`, `2024-06`, `canary_b`. */
export const VERSION_NAME = /^[A-Za-z0-9_-]{1,32}$/;
/** The subject token that means "any version". */
export const ANY_VERSION = "_";

export function isServiceName(name: string): boolean {
  return SERVICE_NAME.test(name);
}

export function isVersionName(name: string): boolean {
  return VERSION_NAME.test(name);
}
