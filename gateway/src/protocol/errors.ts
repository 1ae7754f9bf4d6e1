import { VigilError } from "../core/errors.ts";

/**
 * Why a frame was refused. Each reason is also the label of a rejection counter, so the
 * simulator's fault counts can be reconciled with the gateway's (see hardware/PROTOCOL.md).
 */
export type FrameRejectReason =
  | "BAD_COBS"
  | "OVERSIZED"
  | "TRUNCATED"
  | "LENGTH_MISMATCH"
  | "BAD_CRC"
  | "BAD_VERSION"
  | "BAD_TYPE"
  | "BAD_PAYLOAD"
  | "BAD_JSON"
  | "TOPIC_MISMATCH";

/** A frame that cannot be decoded or violates protocol v1. `reason` is the counter label. */
export class FrameError extends VigilError {
  override name = "FrameError";
  readonly reason: FrameRejectReason;
  /**
   * Set when the frame passed its CRC, so its device id and sequence can be trusted (no decode
   * error sets it since revision 1.2, where NaN/±Inf values are well-formed; kept for callers).
   */
  readonly frameRef: { deviceId: number; seq: number } | undefined;
  constructor(
    reason: FrameRejectReason,
    message: string,
    opts: { cause?: unknown; frameRef?: { deviceId: number; seq: number } } = {},
  ) {
    super(reason, message, opts);
    this.reason = reason;
    this.frameRef = opts.frameRef;
  }
}

/**
 * A value handed to the encoder cannot be represented in protocol v1 (a device id ≥ 2^32, a
 * negative sequence, flags > 255, a firmware part out of range, an unknown NACK reason, a
 * string that is too long …). The encoder never truncates: it throws this, naming the field.
 */
export class FrameEncodeError extends VigilError {
  override name = "FrameEncodeError";
  /** The offending field, e.g. `deviceId`, `firmware.patch`, `retryAfterMs`. */
  readonly field: string;
  constructor(field: string, message: string) {
    super("FRAME_FIELD_RANGE", `${field}: ${message}`);
    this.field = field;
  }
}

/**
 * A file is not a valid Vigil firmware image (hardware/PROTOCOL.md, "Firmware image"): wrong
 * magic, header size, flags or reserved bytes, or a size that disagrees with the file.
 */
export class FirmwareImageError extends VigilError {
  override name = "FirmwareImageError";
  constructor(message: string) {
    super("BAD_IMAGE", message);
  }
}
