import { type NatsConnection } from "@nats-io/transport-node";
import { StreamProtocol, StreamWire, classify, isReplyOf, signedSubject, type Outcome, type StreamAbortReason } from "../../schemas/index.ts";
import type { Channel } from "../inbox.ts";
import { StreamSession, type StreamOutcome } from "./session.ts";
import { WireHeaders } from "../wire-headers.ts";

/** How this sidecar streams bodies (its config, docs/architecture.md §15). */
export interface StreamSettings {
  /** a body up to this many bytes crosses in one message; a larger or unknown-length one streams */
  fastPathMaxBytes: number;
  /** largest chunk of a streamed body */
  chunkBytes: number;
  /** bytes a receiver lets its peer send beyond what it has consumed */
  windowBytes: number;
  /** a stream that moves no data byte for this long ends */
  idleTimeoutMs: number;
}

/** Largest chunk of a streamed body: well under any cluster's max_payload, large enough to keep messages few. */
export const STREAM_CHUNK_BYTES = 64 * 1024;
/**
 * Bytes a receiver lets its peer send beyond what it has consumed: the bound
 * of what one stream holds in flight per direction (a chunk at a time is read
 * from the source only while credit allows).
 */
export const STREAM_WINDOW_BYTES = 1024 * 1024;

/** Room for a message's headers beside a whole body (bytes). */
const HEADERS_ROOM_BYTES = 64 * 1024;

/**
 * The largest body that crosses in one message (the fast path,
 * docs/architecture.md §15): `fastPathMaxBytes`, and never more than the
 * cluster's max_payload leaves beside the headers. Larger bodies stream.
 */
export function oneMessageLimit(settings: Pick<StreamSettings, "fastPathMaxBytes">, maxPayload: number | undefined): number {
  return Math.min(settings.fastPathMaxBytes, (maxPayload ?? 1024 * 1024) - HEADERS_ROOM_BYTES);
}

/** The stream settings of a sidecar config. */
export function streamSettingsOf(config: { fastPathMaxBytes: number; streamIdleTimeoutMs: number }): StreamSettings {
  return { fastPathMaxBytes: config.fastPathMaxBytes, chunkBytes: STREAM_CHUNK_BYTES, windowBytes: STREAM_WINDOW_BYTES, idleTimeoutMs: config.streamIdleTimeoutMs };
}

/**
 * Says no to a stream an answer opened (a mirrored copy's, an answer nobody
 * waits for any more): the channel closes and the peer hears `@abort` at once
 * instead of finding out when its keepalives go unanswered.
 */
export function refuseStream(nc: NatsConnection, channel: Channel | undefined, self: string, peer: string, peerInbox: string | undefined, reason: StreamAbortReason): void {
  channel?.close();
  if (!isReplyOf(peerInbox, peer)) return;
  const h = new WireHeaders();
  h.set(StreamWire.abort, reason);
  try {
    nc.publish(signedSubject(peerInbox, self), undefined, { headers: h });
  } catch {
    /* a closed connection: the peer gives up on its own */
  }
}

/**
 * A stream session between this sidecar (`self`) and the one at
 * `peerInbox`, carried by `channel` (this side's inbox for it). The peer's
 * inbox must be its own (`_INBOX.<peer>.<token>`): a peer cannot make this
 * sidecar send a body into a third party's inbox. Returns undefined when it
 * is not.
 */
export function joinStream(o: {
  nc: NatsConnection;
  channel: Channel;
  self: string;
  peer: string;
  peerInbox: string | undefined;
  settings: StreamSettings;
  maxReceiveBytes?: number;
  maxSendBytes?: number;
  onSent?: () => void;
  onClose: (outcome: StreamOutcome) => void;
}): StreamSession | undefined {
  if (!isReplyOf(o.peerInbox, o.peer)) {
    o.channel.close();
    return undefined;
  }
  const to = signedSubject(o.peerInbox, o.self);
  const session: StreamSession = new StreamSession({
    publish: (headers, data) => o.nc.publish(to, data, { headers }),
    chunkBytes: o.settings.chunkBytes,
    windowBytes: o.settings.windowBytes,
    idleTimeoutMs: o.settings.idleTimeoutMs,
    keepaliveMs: StreamProtocol.keepaliveMs,
    peerGoneMs: StreamProtocol.peerGoneMs,
    ...(o.maxReceiveBytes !== undefined ? { maxReceiveBytes: o.maxReceiveBytes } : {}),
    ...(o.maxSendBytes !== undefined ? { maxSendBytes: o.maxSendBytes } : {}),
    ...(o.onSent ? { onSent: o.onSent } : {}),
    onClose: (outcome) => {
      o.channel.close();
      o.onClose(outcome);
    },
  });
  return session;
}

/**
 * How a request whose stream broke ended: the client left (`client_closed`),
 * or the stream failed after its head (`stream_aborted`, a failure). A
 * request body the application no longer wanted (`answered`) is no failure.
 * `atProvider`: the caller leaving shows there as the peer's abort.
 */
export function brokenStream(o: StreamOutcome, head: Outcome, atProvider: boolean): Outcome {
  if (o.reason === "answered") return head;
  if (o.reason === "client_closed" && o.byPeer === atProvider) return classify({ clientClosed: true });
  return classify({ streamAborted: { status: head.status } });
}
