import { isServiceName } from "../../schemas/index.ts";
import { badTarget, type MeshError } from "../errors.ts";

export interface Target {
  service: string;
  /** raw path and query, as the application wrote them */
  path: string;
}

/** Host suffixes that name a mesh service: `orders`, `orders.mesh`, `orders.localhost`. */
const SUFFIXES = [".mesh", ".localhost"];

function serviceFromHost(host: string): string | undefined {
  let name = host.toLowerCase();
  const colon = name.lastIndexOf(":");
  if (colon !== -1 && !name.endsWith("]")) name = name.slice(0, colon);
  for (const suffix of SUFFIXES) {
    if (name.endsWith(suffix)) {
      name = name.slice(0, -suffix.length);
      break;
    }
  }
  return isServiceName(name) ? name : undefined;
}

/**
 * Which service an outbound request names: the authority of an absolute-form
 * request target (the application uses the sidecar as its HTTP proxy), else
 * the Host header. Pure, so it is unit-tested without sockets.
 */
export function resolveTarget(url: string, host: string | undefined): Target | MeshError {
  if (url.startsWith("/")) {
    const service = host ? serviceFromHost(host) : undefined;
    if (!service) return badTarget(`host '${host ?? ""}' names no mesh service`);
    return { service, path: url };
  }
  const match = /^http:\/\/([^/?#]*)(.*)$/i.exec(url);
  if (!match) return badTarget(`request target '${url}' is not a path or an http:// url`);
  const service = serviceFromHost(match[1]!);
  if (!service) return badTarget(`host '${match[1]}' names no mesh service`);
  const rest = match[2]!;
  return { service, path: rest.startsWith("/") ? rest : `/${rest}` };
}
