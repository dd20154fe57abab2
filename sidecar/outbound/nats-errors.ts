import {
  ClosedConnectionError,
  DrainingConnectionError,
  InvalidArgumentError,
  PermissionViolationError,
  RequestError,
  TimeoutError,
} from "@nats-io/transport-node";
import { MeshError, timeout, unavailable } from "../errors.ts";

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
