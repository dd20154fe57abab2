import {
  ClosedConnectionError,
  DrainingConnectionError,
  InvalidArgumentError,
  PermissionViolationError,
  RequestError,
  TimeoutError,
} from "@nats-io/transport-node";
import { MeshError, timeout, unavailable } from "../errors.ts";
import type { StreamOutcome } from "../streaming/session.ts";

/** Turns a failed NATS request into the mesh error the caller's application sees. */
export function meshErrorFromNats(err: unknown, service: string, version: string, deadlineMs: number): MeshError {
  if (err instanceof MeshError) return err;
  if (err instanceof TimeoutError || (err instanceof Error && err.cause instanceof TimeoutError)) {
    return timeout(service, deadlineMs, err);
  }
  if (err instanceof RequestError && err.isNoResponders()) return unavailable(service, version, err);
  if (err instanceof InvalidArgumentError && /max_payload/.test(err.message)) {
    return new MeshError("payload_too_large", "request exceeds the cluster's max_payload", { cause: err });
  }
  if (err instanceof PermissionViolationError) {
    return new MeshError("forbidden", `this sidecar may not call '${service}'`, { cause: err });
  }
  if (err instanceof ClosedConnectionError || err instanceof DrainingConnectionError || err instanceof RequestError) {
    return new MeshError("unavailable", `mesh connection unavailable: ${(err as Error).message}`, { cause: err });
  }
  return new MeshError("unavailable", `request to '${service}' failed: ${String((err as Error)?.message ?? err)}`, {
    cause: err,
  });
}

/** Turns a request body's stream that ended before the provider answered into the mesh error the caller's application sees. */
export function meshErrorFromStream(o: StreamOutcome, service: string, perTryMs: number): MeshError {
  switch (o.reason) {
    case "too_large":
      return new MeshError("payload_too_large", `request body to '${service}' exceeds the mesh limit`);
    case "timeout":
      return timeout(service, perTryMs);
    case "idle_timeout":
      return new MeshError("timeout", `the body stream to '${service}' moved no data for too long`);
    case "app_failed":
      return new MeshError("app_unreachable", `the application of '${service}' failed while reading the body`);
    case "client_closed":
      return new MeshError("request_timeout", "the client went away while sending its body");
    default:
      return new MeshError("unavailable", `the body stream to '${service}' failed: ${o.reason ?? "unknown"}`);
  }
}
