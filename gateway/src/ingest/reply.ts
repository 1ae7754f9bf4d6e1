/** What ingest tells a source to send back for a frame (its own file: device state holds one too). */
import type { NackReasonCode } from "../protocol/frame.ts";

/** What the source should send back. */
export type IngestReply =
  | { kind: "ack"; deviceId: number; seq: number }
  | { kind: "nack"; deviceId: number; seq: number; reason: NackReasonCode; retryAfterMs?: number }
  | { kind: "none" };
