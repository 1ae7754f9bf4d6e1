import { VigilError } from "../core/errors.ts";
import type { FrameRejectReason } from "../protocol/errors.ts";

/** Semantic rejections decided by ingest (the frame itself decoded fine). */
export type IngestRejectReason =
  | "UNKNOWN_DEVICE"
  | "REVOKED_DEVICE"
  | "SCHEMA_MISMATCH"
  | "ABSURD_TIMESTAMP"
  | "STORE_UNAVAILABLE"
  | "SEQ_OUT_OF_RANGE"
  /**
   * A stored sequence number with other bytes, or one whose stored frame was pruned (until a HELLO
   * repeats the current boot): a new boot whose HELLO was lost (NACK SCHEMA_MISMATCH).
   */
  | "SEQ_REUSED"
  | "UNEXPECTED_TYPE";

export type RejectReason = FrameRejectReason | IngestRejectReason;

/** A decodable frame that ingest refused; `reason` labels the rejection counter. */
export class IngestRejectError extends VigilError {
  override name = "IngestRejectError";
  readonly reason: IngestRejectReason;
  constructor(reason: IngestRejectReason, message: string, opts: { cause?: unknown } = {}) {
    super(reason, message, opts);
    this.reason = reason;
  }
}

/** A serial port or broker connection failed; `endpoint` is already redacted. */
export class SourceError extends VigilError {
  override name = "SourceError";
  /** MQTT_REFUSED: a client's PUBLISH the broker refused (reserved topic); the connection is closed. */
  declare readonly code: "SERIAL_IO" | "MQTT_IO" | "MQTT_REFUSED";
  constructor(
    code: "SERIAL_IO" | "MQTT_IO" | "MQTT_REFUSED",
    readonly endpoint: string,
    message: string,
    opts: { cause?: unknown } = {},
  ) {
    super(code, `${endpoint}: ${message}`, opts);
  }
}
