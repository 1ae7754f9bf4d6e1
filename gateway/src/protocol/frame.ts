/**
 * Frame codec for protocol v1, document revision 1.4 (hardware/PROTOCOL.md): the single source
 * of truth used by the gateway and the device simulator. Integers and floats are little-endian.
 * The decoder throws {@link FrameError} with the counter reason; the encoder throws
 * {@link FrameEncodeError} naming the field. Neither truncates nor accepts what the other refuses.
 */
import { crc32 } from "./crc32.ts";
import { FrameEncodeError, FrameError } from "./errors.ts";

export const PROTOCOL_VERSION = 1;
export const HEADER_BYTES = 4;
export const CRC_BYTES = 4;
/** Largest payload a frame may carry. */
export const MAX_PAYLOAD = 240;
/** Largest unencoded frame: header + payload + CRC. */
export const MAX_FRAME = HEADER_BYTES + MAX_PAYLOAD + CRC_BYTES;
/** Largest COBS-encoded frame on the wire without its delimiter (one overhead byte per 254). */
export const MAX_ENCODED = MAX_FRAME + 1;
export const MAX_CHANNELS = 32;
export const DATA_FIXED_BYTES = 18;
export const MAX_PROFILE_LEN = 31;
export const MAX_CHANNEL_NAME = 15;
export const MAX_ERROR_MESSAGE = 200;

/**
 * Frame type codes. 0x01–0x05 are protocol v1.0; 0x10–0x14 are the firmware update frames of
 * v1.1 (PROTOCOL.md, "Firmware update"), which a v1.0 receiver rejects as BAD_TYPE.
 */
export const FrameType = {
  Hello: 1,
  Data: 2,
  Ack: 3,
  Nack: 4,
  Error: 5,
  FwOffer: 0x10,
  FwChunk: 0x11,
  FwAbort: 0x12,
  FwStatus: 0x13,
  FwChunkAck: 0x14,
} as const;
export type FrameTypeCode = (typeof FrameType)[keyof typeof FrameType];

/** Unit codes of HELLO channel descriptors. */
export const Unit = {
  none: 0,
  g: 1,
  degC: 2,
  A: 3,
  rpm: 4,
  kPa: 5,
  percent: 6,
  V: 7,
  Hz: 8,
  degR: 9,
  psia: 10,
  pps: 11,
  ratio: 12,
} as const;
export type UnitCode = (typeof Unit)[keyof typeof Unit];
const MAX_UNIT = 12;

/** NACK reasons (PROTOCOL.md, "NACK"). What the device does with each is specified there. */
export const NackReason = {
  /** Sent by gateways before revision 1.2 for NaN/±Inf values; a 1.2 gateway stores and ACKs them. */
  NON_FINITE: 1,
  UNKNOWN_DEVICE: 2,
  REVOKED_DEVICE: 3,
  SCHEMA_MISMATCH: 4,
  ABSURD_TIMESTAMP: 5,
  STORE_UNAVAILABLE: 6,
  RATE_LIMITED: 7,
  /** v1.1: the gateway is overloaded; the NACK carries `retryAfterMs` (payload 11 bytes). */
  BUSY: 8,
  /** v1.1: the sequence is more than {@link SEQ_MAX_JUMP} away from the highest one of this boot. */
  SEQ_OUT_OF_RANGE: 9,
} as const;
export type NackReasonName = keyof typeof NackReason;
export type NackReasonCode = (typeof NackReason)[NackReasonName];

/**
 * NACK reasons after which the **device keeps the frame and resends it** (PROTOCOL.md, NACK
 * table): SCHEMA_MISMATCH (after sending HELLO), STORE_UNAVAILABLE, RATE_LIMITED and BUSY
 * (after `retryAfterMs`); SCHEMA_MISMATCH at most {@link SCHEMA_MISMATCH_MAX} times per frame.
 * Every other reason tells the device to drop the frame or to stop.
 * The C reference's `vigil_txq_nack()` and the simulator implement exactly this set.
 */
export const RETRYABLE_NACKS: ReadonlySet<number> = new Set<number>([
  NackReason.SCHEMA_MISMATCH,
  NackReason.STORE_UNAVAILABLE,
  NackReason.RATE_LIMITED,
  NackReason.BUSY,
]);

/**
 * PROTOCOL.md revision 1.3 (NACK reason 4, a device rule): a frame's SCHEMA_MISMATCH_MAX-th
 * SCHEMA_MISMATCH NACK drops it — a lost HELLO is fixed by the first resend, so a frame still
 * refused is one a HELLO cannot fix (a seq reused with other bytes in one boot). C reference:
 * `VIGIL_TXQ_SCHEMA_MISMATCH_MAX`.
 */
export const SCHEMA_MISMATCH_MAX = 3;

/**
 * NACK reasons for which an **MQTT receiver withholds the PUBACK** so the broker or the
 * device redelivers the PUBLISH (MQTT 3.1.1 §4.3.2, [MQTT-4.3.2-2]): the frame was not
 * stored for a passing reason (STORE_UNAVAILABLE, RATE_LIMITED, BUSY). SCHEMA_MISMATCH is
 * retryable for the device but PUBACKed: the redelivered PUBLISH would fail the same way
 * until the device sends HELLO, which it does when it sees the NACK on `…/nack`.
 */
export const WITHHOLD_PUBACK_NACKS: ReadonlySet<number> = new Set<number>([
  NackReason.STORE_UNAVAILABLE,
  NackReason.RATE_LIMITED,
  NackReason.BUSY,
]);

/**
 * Largest distance (RFC 1982 serial arithmetic, either direction) between a DATA frame's
 * sequence and the highest sequence the gateway accepted from the same device in the same
 * boot; frames further away are refused with NACK SEQ_OUT_OF_RANGE (PROTOCOL.md, DATA).
 */
export const SEQ_MAX_JUMP = 2 ** 24;

/** Largest `retryAfterMs` of a BUSY NACK (u16); the smallest is 1. */
export const MAX_RETRY_AFTER_MS = 0xffff;

/** Largest firmware chunk: a 240-byte payload minus the 16-byte chunk header. */
export const FW_MAX_CHUNK = MAX_PAYLOAD - 16;
/** Smallest `maxChunk` a device may announce in FW_STATUS. */
export const FW_MIN_CHUNK = 16;
/** Largest `window` (chunks in flight) a device may announce in FW_STATUS. */
export const FW_MAX_WINDOW = 16;
export const SHA256_BYTES = 32;

/** FW_STATUS `state`: where the device's update state machine is. */
export const FwState = { Idle: 0, Receiving: 1, Ready: 2, Testing: 3 } as const;
export type FwStateCode = (typeof FwState)[keyof typeof FwState];
/** FW_STATUS `result`: the outcome of the transfer named by `releaseId`. */
export const FwResult = { None: 0, Installed: 1, Reverted: 2, Refused: 3, Aborted: 4 } as const;
export type FwResultCode = (typeof FwResult)[keyof typeof FwResult];
/** FW_STATUS `reason`: why a transfer was refused or reverted (any u8 decodes; these are defined). */
export const FwReason = {
  NONE: 0,
  HASH_MISMATCH: 1,
  OLDER_VERSION: 2,
  TOO_LARGE: 3,
  BAD_IMAGE: 4,
  FLASH_ERROR: 5,
  BUSY: 6,
  NOT_CONFIRMED: 7,
  INTERRUPTED: 8,
} as const;
export type FwReasonName = keyof typeof FwReason;
/** FW_CHUNK_ACK `status`. */
export const FwAckStatus = { Ok: 0, OutOfOrder: 1, WriteFailed: 2, BadLength: 3 } as const;
export type FwAckStatusCode = (typeof FwAckStatus)[keyof typeof FwAckStatus];
/** FW_ABORT `reason` (any u8 decodes; these are defined). */
export const FwAbortReason = { OPERATOR: 1, TIMEOUT: 2, SUPERSEDED: 3 } as const;

export interface ChannelDescriptor {
  name: string;
  unit: number;
}

export interface FirmwareVersion {
  /** u8 */
  major: number;
  /** u8 */
  minor: number;
  /** u16 */
  patch: number;
}

export interface HelloFrame {
  type: typeof FrameType.Hello;
  deviceId: number;
  bootId: number;
  firmware: FirmwareVersion;
  profile: string;
  channels: ChannelDescriptor[];
}

export interface DataFrame {
  type: typeof FrameType.Data;
  deviceId: number;
  /** u32, wraps (RFC 1982 serial arithmetic). */
  seq: number;
  /** Microseconds since the Unix epoch; 0 = device has no clock. Exact below 2^53. */
  timestampUs: number;
  flags: number;
  /** The values as sent, in HELLO channel order: NaN and ±Inf included (a missing reading). */
  values: Float32Array;
  /**
   * Set by the decoder when some values are NaN or ±Inf (revision 1.2): bit i marks channel i.
   * Absent when every value is finite. The encoder ignores it (the values say it).
   */
  nonFinite?: number;
}

export interface AckFrame {
  type: typeof FrameType.Ack;
  deviceId: number;
  firstSeq: number;
  count: number;
  gatewayTimeUs: number;
}

export interface NackFrame {
  type: typeof FrameType.Nack;
  deviceId: number;
  seq: number;
  /** u8; see {@link NackReason}. */
  reason: number;
  /** Present exactly when `reason` is BUSY: how long the device waits before resending, 1..65535 ms. */
  retryAfterMs?: number;
}

export interface ErrorFrame {
  type: typeof FrameType.Error;
  deviceId: number;
  code: number;
  message: string;
}

/** Gateway → device: "install this image" (PROTOCOL.md, FW_OFFER). Also the resume query. */
export interface FwOfferFrame {
  type: typeof FrameType.FwOffer;
  deviceId: number;
  /** 1..2^32−1: the release (the registry's release id). */
  releaseId: number;
  firmware: FirmwareVersion;
  /** The image's monotonic security counter (u32). */
  securityCounter: number;
  /** Whole image in bytes, header included (≥ 1). */
  imageSize: number;
  /** SHA-256 of the whole image (32 bytes). */
  sha256: Uint8Array;
}

/** Gateway → device: `data` belongs at `offset` of the image. The chunk CRC is derived from `data`. */
export interface FwChunkFrame {
  type: typeof FrameType.FwChunk;
  deviceId: number;
  releaseId: number;
  offset: number;
  /** 1..224 bytes. */
  data: Uint8Array;
}

/** Gateway → device: abandon the transfer of `releaseId`. */
export interface FwAbortFrame {
  type: typeof FrameType.FwAbort;
  deviceId: number;
  releaseId: number;
  /** u8; see {@link FwAbortReason}. */
  reason: number;
}

/** Device → gateway: the update state machine's state, capabilities and last result. */
export interface FwStatusFrame {
  type: typeof FrameType.FwStatus;
  deviceId: number;
  state: FwStateCode;
  result: FwResultCode;
  /** u8; see {@link FwReason}. */
  reason: number;
  /** Chunks the device accepts in flight, 1..16. */
  window: number;
  /** Release of the transfer in progress or of the last result; 0 = none. */
  releaseId: number;
  /** RECEIVING: the offset of the next chunk the device wants. */
  nextOffset: number;
  /** Largest image the device accepts. */
  slotSize: number;
  /** The device's stored security counter (images below it are refused). */
  securityCounter: number;
  /** The running firmware. */
  firmware: FirmwareVersion;
  /** Data bytes per chunk, 16..224; every chunk but the last of an image carries exactly this. */
  maxChunk: number;
}

/** Device → gateway: progress of a transfer (cumulative, like a TCP ACK). */
export interface FwChunkAckFrame {
  type: typeof FrameType.FwChunkAck;
  deviceId: number;
  releaseId: number;
  nextOffset: number;
  status: FwAckStatusCode;
}

export type FirmwareFrame = FwOfferFrame | FwChunkFrame | FwAbortFrame | FwStatusFrame | FwChunkAckFrame;
export type Frame = HelloFrame | DataFrame | AckFrame | NackFrame | ErrorFrame | FirmwareFrame;

const TWO_32 = 0x1_0000_0000;

/** Reads a u64 time field; values ≥ 2^53 µs (year 2255) are not exact doubles and are refused. */
function readU64(b: Uint8Array, o: number): number {
  const lo = b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24);
  const hi = (b[o + 4]! | (b[o + 5]! << 8) | (b[o + 6]! << 16) | (b[o + 7]! << 24)) >>> 0;
  if (hi >= 0x20_0000) throw new FrameError("BAD_PAYLOAD", "time field is 2^53 µs or more");
  return hi * TWO_32 + (lo >>> 0);
}

function readU32(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}

function readU16(b: Uint8Array, o: number): number {
  return b[o]! | (b[o + 1]! << 8);
}

// Shared scratch for float decoding: avoids a DataView per frame on the hot path.
const f32 = new Float32Array(1);
const f32b = new Uint8Array(f32.buffer);

function ascii(b: Uint8Array, start: number, len: number): string {
  let s = "";
  for (let i = 0; i < len; i++) s += String.fromCharCode(b[start + i]!);
  return s;
}

const NAME_RE = /^[a-z0-9_]+$/;
// fatal: invalid UTF-8 is refused rather than replaced, so every accepted frame is canonical.
// ignoreBOM: a leading U+FEFF is part of the message (kept, so the frame re-encodes to its own bytes).
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const PROFILE_RE = /^[\x21-\x7e]*$/;

/**
 * Decodes one unencoded frame (header, payload, CRC). Throws {@link FrameError} with the
 * counter reason for anything that violates protocol v1. DATA values that are NaN or ±Inf are
 * well-formed since revision 1.2 (a sensor that could not read): they are kept as sent and
 * marked in `nonFinite`. Semantic checks (known device, timestamp skew) belong to ingest.
 */
export function decodeFrame(buf: Uint8Array): Frame {
  const n = buf.length;
  if (n > MAX_FRAME) throw new FrameError("OVERSIZED", `frame of ${n} bytes exceeds ${MAX_FRAME}`);
  if (n < HEADER_BYTES + CRC_BYTES)
    throw new FrameError("TRUNCATED", `frame of ${n} bytes is shorter than 8`);
  const len = readU16(buf, 2);
  if (len > MAX_PAYLOAD) throw new FrameError("OVERSIZED", `payload length ${len} exceeds ${MAX_PAYLOAD}`);
  const expected = HEADER_BYTES + len + CRC_BYTES;
  if (n < expected) throw new FrameError("TRUNCATED", `frame has ${n} bytes, header says ${expected}`);
  if (n > expected) throw new FrameError("LENGTH_MISMATCH", `frame has ${n} bytes, header says ${expected}`);
  const crcAt = HEADER_BYTES + len;
  const want = readU32(buf, crcAt);
  const got = crc32(buf.subarray(0, crcAt));
  if (want !== got)
    throw new FrameError("BAD_CRC", `CRC-32 mismatch: frame says ${hex32(want)}, computed ${hex32(got)}`);
  const version = buf[0]!;
  if (version !== PROTOCOL_VERSION)
    throw new FrameError("BAD_VERSION", `protocol version ${version} is not 1`);
  const p = HEADER_BYTES;
  switch (buf[1]) {
    case FrameType.Data:
      return decodeData(buf, p, len);
    case FrameType.Hello:
      return decodeHello(buf, p, len);
    case FrameType.Ack:
      expectLen(len, 18, "ACK");
      return {
        type: FrameType.Ack,
        deviceId: readU32(buf, p),
        firstSeq: readU32(buf, p + 4),
        count: nonZero(readU16(buf, p + 8), "ACK count"),
        gatewayTimeUs: readU64(buf, p + 10),
      };
    case FrameType.Nack: {
      // 9 bytes, or 11 for BUSY (+ retry_after_ms): a v1.0 receiver refuses the longer form
      // as BAD_PAYLOAD, which is why BUSY needs no new version byte (PROTOCOL.md, Versioning).
      if (len < 9) throw new FrameError("BAD_PAYLOAD", `NACK payload of ${len} bytes is shorter than 9`);
      const reason = buf[p + 8]!;
      const nack: NackFrame = {
        type: FrameType.Nack,
        deviceId: readU32(buf, p),
        seq: readU32(buf, p + 4),
        reason,
      };
      if (reason !== NackReason.BUSY) {
        expectLen(len, 9, "NACK");
        return nack;
      }
      expectLen(len, 11, "NACK BUSY");
      nack.retryAfterMs = nonZero(readU16(buf, p + 9), "NACK BUSY retry_after_ms");
      return nack;
    }
    case FrameType.FwOffer:
      return decodeFwOffer(buf, p, len);
    case FrameType.FwChunk:
      return decodeFwChunk(buf, p, len);
    case FrameType.FwAbort:
      expectLen(len, 9, "FW_ABORT");
      return {
        type: FrameType.FwAbort,
        deviceId: readU32(buf, p),
        releaseId: nonZero(readU32(buf, p + 4), "FW_ABORT release_id"),
        reason: buf[p + 8]!,
      };
    case FrameType.FwStatus:
      return decodeFwStatus(buf, p, len);
    case FrameType.FwChunkAck: {
      expectLen(len, 13, "FW_CHUNK_ACK");
      const status = buf[p + 12]!;
      if (status > FwAckStatus.BadLength)
        throw new FrameError("BAD_PAYLOAD", `FW_CHUNK_ACK status ${status} is unknown`);
      return {
        type: FrameType.FwChunkAck,
        deviceId: readU32(buf, p),
        releaseId: nonZero(readU32(buf, p + 4), "FW_CHUNK_ACK release_id"),
        nextOffset: readU32(buf, p + 8),
        status: status as FwAckStatusCode,
      };
    }
    case FrameType.Error: {
      if (len < 6) throw new FrameError("BAD_PAYLOAD", `ERROR payload of ${len} bytes is shorter than 6`);
      const m = buf[p + 5]!;
      if (m > MAX_ERROR_MESSAGE || len !== 6 + m)
        throw new FrameError("BAD_PAYLOAD", `ERROR message length ${m} does not match payload ${len}`);
      let message: string;
      try {
        message = utf8.decode(buf.subarray(p + 6, p + 6 + m));
      } catch (e) {
        throw new FrameError("BAD_PAYLOAD", "ERROR message is not valid UTF-8", { cause: e });
      }
      return { type: FrameType.Error, deviceId: readU32(buf, p), code: buf[p + 4]!, message };
    }
    default:
      throw new FrameError("BAD_TYPE", `unknown frame type 0x${buf[1]!.toString(16).padStart(2, "0")}`);
  }
}

function decodeData(buf: Uint8Array, p: number, len: number): DataFrame {
  if (len < DATA_FIXED_BYTES)
    throw new FrameError("BAD_PAYLOAD", `DATA payload of ${len} bytes is shorter than 18`);
  const count = buf[p + 16]!;
  if (count < 1 || count > MAX_CHANNELS)
    throw new FrameError("BAD_PAYLOAD", `DATA channel count ${count} is outside 1..${MAX_CHANNELS}`);
  if (len !== DATA_FIXED_BYTES + 4 * count)
    throw new FrameError(
      "BAD_PAYLOAD",
      `DATA with ${count} channels must be ${DATA_FIXED_BYTES + 4 * count} bytes, is ${len}`,
    );
  const values = new Float32Array(count);
  let o = p + DATA_FIXED_BYTES;
  let nonFinite = 0;
  for (let i = 0; i < count; i++, o += 4) {
    f32b[0] = buf[o]!;
    f32b[1] = buf[o + 1]!;
    f32b[2] = buf[o + 2]!;
    f32b[3] = buf[o + 3]!;
    const v = f32[0]!;
    // v - v is NaN exactly when v is NaN or ±Inf (PROTOCOL.md, DATA: kept and marked, rev 1.2).
    if (v - v !== 0) nonFinite |= 1 << i;
    values[i] = v;
  }
  const frame: DataFrame = {
    type: FrameType.Data,
    deviceId: readU32(buf, p),
    seq: readU32(buf, p + 4),
    timestampUs: readU64(buf, p + 8),
    flags: buf[p + 17]!,
    values,
  };
  if (nonFinite !== 0) frame.nonFinite = nonFinite >>> 0;
  return frame;
}

function decodeHello(buf: Uint8Array, p: number, len: number): HelloFrame {
  const end = p + len;
  if (len < 14) throw new FrameError("BAD_PAYLOAD", `HELLO payload of ${len} bytes is shorter than 14`);
  const profileLen = buf[p + 12]!;
  if (profileLen > MAX_PROFILE_LEN)
    throw new FrameError("BAD_PAYLOAD", `HELLO profile length ${profileLen} > ${MAX_PROFILE_LEN}`);
  let o = p + 13;
  if (o + profileLen + 1 > end) throw new FrameError("BAD_PAYLOAD", "HELLO profile runs past the payload");
  const profile = ascii(buf, o, profileLen);
  if (!PROFILE_RE.test(profile)) throw new FrameError("BAD_PAYLOAD", "HELLO profile is not printable ASCII");
  o += profileLen;
  const count = buf[o++]!;
  if (count < 1 || count > MAX_CHANNELS)
    throw new FrameError("BAD_PAYLOAD", `HELLO channel count ${count} is outside 1..${MAX_CHANNELS}`);
  const channels: ChannelDescriptor[] = [];
  for (let i = 0; i < count; i++) {
    if (o + 2 > end) throw new FrameError("BAD_PAYLOAD", `HELLO channel ${i} runs past the payload`);
    const unit = buf[o]!;
    const nameLen = buf[o + 1]!;
    o += 2;
    if (unit > MAX_UNIT) throw new FrameError("BAD_PAYLOAD", `HELLO channel ${i} has unknown unit ${unit}`);
    if (nameLen < 1 || nameLen > MAX_CHANNEL_NAME || o + nameLen > end)
      throw new FrameError("BAD_PAYLOAD", `HELLO channel ${i} name length ${nameLen} is invalid`);
    const name = ascii(buf, o, nameLen);
    if (!NAME_RE.test(name)) throw new FrameError("BAD_PAYLOAD", `HELLO channel ${i} name is not [a-z0-9_]+`);
    o += nameLen;
    channels.push({ name, unit });
  }
  if (o !== end) throw new FrameError("BAD_PAYLOAD", `HELLO has ${end - o} trailing bytes`);
  return {
    type: FrameType.Hello,
    deviceId: readU32(buf, p),
    bootId: readU32(buf, p + 4),
    firmware: { major: buf[p + 8]!, minor: buf[p + 9]!, patch: readU16(buf, p + 10) },
    profile,
    channels,
  };
}

function decodeFwOffer(buf: Uint8Array, p: number, len: number): FwOfferFrame {
  expectLen(len, FW_OFFER_BYTES, "FW_OFFER");
  return {
    type: FrameType.FwOffer,
    deviceId: readU32(buf, p),
    releaseId: nonZero(readU32(buf, p + 4), "FW_OFFER release_id"),
    firmware: { major: buf[p + 8]!, minor: buf[p + 9]!, patch: readU16(buf, p + 10) },
    securityCounter: readU32(buf, p + 12),
    imageSize: nonZero(readU32(buf, p + 16), "FW_OFFER image_size"),
    sha256: Uint8Array.from(buf.subarray(p + 20, p + 20 + SHA256_BYTES)),
  };
}

function decodeFwChunk(buf: Uint8Array, p: number, len: number): FwChunkFrame {
  if (len < FW_CHUNK_FIXED_BYTES + 1)
    throw new FrameError("BAD_PAYLOAD", `FW_CHUNK payload of ${len} bytes carries no data`);
  const offset = readU32(buf, p + 8);
  const n = len - FW_CHUNK_FIXED_BYTES;
  if (offset + n > TWO_32) throw new FrameError("BAD_PAYLOAD", "FW_CHUNK runs past offset 2^32");
  const data = Uint8Array.from(buf.subarray(p + FW_CHUNK_FIXED_BYTES, p + len));
  const want = readU32(buf, p + 12);
  const got = crc32(data);
  if (want !== got)
    throw new FrameError("BAD_PAYLOAD", `FW_CHUNK data CRC says ${hex32(want)}, computed ${hex32(got)}`);
  return {
    type: FrameType.FwChunk,
    deviceId: readU32(buf, p),
    releaseId: nonZero(readU32(buf, p + 4), "FW_CHUNK release_id"),
    offset,
    data,
  };
}

function decodeFwStatus(buf: Uint8Array, p: number, len: number): FwStatusFrame {
  expectLen(len, FW_STATUS_BYTES, "FW_STATUS");
  const state = buf[p + 4]!;
  const result = buf[p + 5]!;
  const window = buf[p + 7]!;
  const maxChunk = buf[p + 28]!;
  if (state > FwState.Testing) throw new FrameError("BAD_PAYLOAD", `FW_STATUS state ${state} is unknown`);
  if (result > FwResult.Aborted) throw new FrameError("BAD_PAYLOAD", `FW_STATUS result ${result} is unknown`);
  if (window < 1 || window > FW_MAX_WINDOW)
    throw new FrameError("BAD_PAYLOAD", `FW_STATUS window ${window} is outside 1..${FW_MAX_WINDOW}`);
  if (maxChunk < FW_MIN_CHUNK || maxChunk > FW_MAX_CHUNK)
    throw new FrameError(
      "BAD_PAYLOAD",
      `FW_STATUS max_chunk ${maxChunk} is outside ${FW_MIN_CHUNK}..${FW_MAX_CHUNK}`,
    );
  return {
    type: FrameType.FwStatus,
    deviceId: readU32(buf, p),
    state: state as FwStateCode,
    result: result as FwResultCode,
    reason: buf[p + 6]!,
    window,
    releaseId: readU32(buf, p + 8),
    nextOffset: readU32(buf, p + 12),
    slotSize: readU32(buf, p + 16),
    securityCounter: readU32(buf, p + 20),
    firmware: { major: buf[p + 24]!, minor: buf[p + 25]!, patch: readU16(buf, p + 26) },
    maxChunk,
  };
}

function expectLen(len: number, want: number, what: string): void {
  if (len !== want) throw new FrameError("BAD_PAYLOAD", `${what} payload must be ${want} bytes, is ${len}`);
}

function nonZero(v: number, what: string): number {
  if (v === 0) throw new FrameError("BAD_PAYLOAD", `${what} must be ≥ 1`);
  return v;
}

function hex32(v: number): string {
  return "0x" + v.toString(16).padStart(8, "0");
}

// ---------------------------------------------------------------------------------------
// Encoding

/** Payload sizes of the fixed-size frames. */
const ACK_BYTES = 18;
const FW_OFFER_BYTES = 52;
const FW_CHUNK_FIXED_BYTES = 16;
const FW_STATUS_BYTES = 29;

/** Checks an integer field in min..max and returns it; never truncates (issue: 2^32+5 → 5). */
function int(v: number, min: number, max: number, field: string): number {
  if (!Number.isInteger(v) || v < min || v > max)
    throw new FrameEncodeError(field, `must be an integer in ${min}..${max}, got ${v}`);
  return v;
}
const u8 = (v: number, field: string) => int(v, 0, 0xff, field);
const u16 = (v: number, field: string) => int(v, 0, 0xffff, field);
const u32 = (v: number, field: string) => int(v, 0, 0xffff_ffff, field);

/** Writes header + payload + CRC for a payload already placed at offset 4 of `out`. */
function seal(out: Buffer, type: number, len: number): Buffer {
  out[0] = PROTOCOL_VERSION;
  out[1] = type;
  out.writeUInt16LE(len, 2);
  out.writeUInt32LE(crc32(out.subarray(0, HEADER_BYTES + len)), HEADER_BYTES + len);
  return out;
}

/** A buffer for a frame with a `len`-byte payload. */
function frameBuffer(len: number): Buffer {
  return Buffer.allocUnsafe(HEADER_BYTES + len + CRC_BYTES);
}

/** Time fields: below 2^53 µs, like the decoder (PROTOCOL.md, Conventions). */
function writeU64(out: Buffer, v: number, o: number, field: string): void {
  if (!Number.isSafeInteger(v) || v < 0)
    throw new FrameEncodeError(field, `must be an integer in 0..2^53-1 (µs), got ${v}`);
  out.writeUInt32LE(v % TWO_32, o);
  out.writeUInt32LE(Math.floor(v / TWO_32), o + 4);
}

function writeFirmware(out: Buffer, fw: FirmwareVersion, o: number, field: string): void {
  out[o] = u8(fw.major, `${field}.major`);
  out[o + 1] = u8(fw.minor, `${field}.minor`);
  out.writeUInt16LE(u16(fw.patch, `${field}.patch`), o + 2);
}

function checkAscii(s: string, max: number, re: RegExp, field: string): void {
  if (s.length > max || !re.test(s))
    throw new FrameEncodeError(field, `must match ${re} and be at most ${max} characters`);
}

/**
 * Encodes a frame (unencoded form: header, payload, CRC). Throws {@link FrameEncodeError}
 * naming the field when a value cannot be represented: the encoder never truncates and never
 * emits a frame the decoder would refuse, except that DATA values are written as given so
 * tests can produce NaN frames.
 */
export function encodeFrame(frame: Frame): Buffer {
  const p = HEADER_BYTES;
  switch (frame.type) {
    case FrameType.Data: {
      const n = frame.values.length;
      if (n < 1 || n > MAX_CHANNELS)
        throw new FrameEncodeError("values", `must have 1..${MAX_CHANNELS} channels, has ${n}`);
      const len = DATA_FIXED_BYTES + 4 * n;
      const out = frameBuffer(len);
      out.writeUInt32LE(u32(frame.deviceId, "deviceId"), p);
      out.writeUInt32LE(u32(frame.seq, "seq"), p + 4);
      writeU64(out, frame.timestampUs, p + 8, "timestampUs");
      out[p + 16] = n;
      out[p + 17] = u8(frame.flags, "flags");
      for (let i = 0; i < n; i++) out.writeFloatLE(frame.values[i]!, p + DATA_FIXED_BYTES + 4 * i);
      return seal(out, FrameType.Data, len);
    }
    case FrameType.Hello: {
      checkAscii(frame.profile, MAX_PROFILE_LEN, PROFILE_RE, "profile");
      const n = frame.channels.length;
      if (n < 1 || n > MAX_CHANNELS)
        throw new FrameEncodeError("channels", `must have 1..${MAX_CHANNELS} entries, has ${n}`);
      let len = 13 + frame.profile.length + 1;
      frame.channels.forEach((c, i) => {
        checkAscii(c.name, MAX_CHANNEL_NAME, NAME_RE, `channels[${i}].name`);
        int(c.unit, 0, MAX_UNIT, `channels[${i}].unit`);
        len += 2 + c.name.length;
      });
      if (len > MAX_PAYLOAD)
        throw new FrameEncodeError("channels", `HELLO payload of ${len} bytes exceeds ${MAX_PAYLOAD}`);
      const out = frameBuffer(len);
      out.writeUInt32LE(u32(frame.deviceId, "deviceId"), p);
      out.writeUInt32LE(u32(frame.bootId, "bootId"), p + 4);
      writeFirmware(out, frame.firmware, p + 8, "firmware");
      out[p + 12] = frame.profile.length;
      let o = p + 13;
      o += out.write(frame.profile, o, "latin1");
      out[o++] = n;
      for (const c of frame.channels) {
        out[o++] = c.unit;
        out[o++] = c.name.length;
        o += out.write(c.name, o, "latin1");
      }
      return seal(out, FrameType.Hello, len);
    }
    case FrameType.Ack: {
      const out = frameBuffer(ACK_BYTES);
      out.writeUInt32LE(u32(frame.deviceId, "deviceId"), p);
      out.writeUInt32LE(u32(frame.firstSeq, "firstSeq"), p + 4);
      out.writeUInt16LE(int(frame.count, 1, 0xffff, "count"), p + 8);
      writeU64(out, frame.gatewayTimeUs, p + 10, "gatewayTimeUs");
      return seal(out, FrameType.Ack, ACK_BYTES);
    }
    case FrameType.Nack: {
      const reason = u8(frame.reason, "reason");
      const busy = reason === NackReason.BUSY;
      if (busy !== (frame.retryAfterMs !== undefined))
        throw new FrameEncodeError("retryAfterMs", "must be given exactly when the reason is BUSY (8)");
      const len = busy ? 11 : 9;
      const out = frameBuffer(len);
      out.writeUInt32LE(u32(frame.deviceId, "deviceId"), p);
      out.writeUInt32LE(u32(frame.seq, "seq"), p + 4);
      out[p + 8] = reason;
      if (busy) out.writeUInt16LE(int(frame.retryAfterMs ?? 0, 1, MAX_RETRY_AFTER_MS, "retryAfterMs"), p + 9);
      return seal(out, FrameType.Nack, len);
    }
    case FrameType.Error: {
      const msg = Buffer.from(frame.message, "utf8");
      if (msg.length > MAX_ERROR_MESSAGE)
        throw new FrameEncodeError("message", `is ${msg.length} UTF-8 bytes, at most ${MAX_ERROR_MESSAGE}`);
      const len = 6 + msg.length;
      const out = frameBuffer(len);
      out.writeUInt32LE(u32(frame.deviceId, "deviceId"), p);
      out[p + 4] = u8(frame.code, "code");
      out[p + 5] = msg.length;
      msg.copy(out, p + 6);
      return seal(out, FrameType.Error, len);
    }
    case FrameType.FwOffer: {
      if (frame.sha256.length !== SHA256_BYTES)
        throw new FrameEncodeError("sha256", `must be ${SHA256_BYTES} bytes, is ${frame.sha256.length}`);
      const out = frameBuffer(FW_OFFER_BYTES);
      out.writeUInt32LE(u32(frame.deviceId, "deviceId"), p);
      out.writeUInt32LE(int(frame.releaseId, 1, 0xffff_ffff, "releaseId"), p + 4);
      writeFirmware(out, frame.firmware, p + 8, "firmware");
      out.writeUInt32LE(u32(frame.securityCounter, "securityCounter"), p + 12);
      out.writeUInt32LE(int(frame.imageSize, 1, 0xffff_ffff, "imageSize"), p + 16);
      out.set(frame.sha256, p + 20);
      return seal(out, FrameType.FwOffer, FW_OFFER_BYTES);
    }
    case FrameType.FwChunk: {
      const n = frame.data.length;
      if (n < 1 || n > FW_MAX_CHUNK)
        throw new FrameEncodeError("data", `must be 1..${FW_MAX_CHUNK} bytes, is ${n}`);
      const offset = u32(frame.offset, "offset");
      if (offset + n > TWO_32) throw new FrameEncodeError("offset", "chunk runs past offset 2^32");
      const len = FW_CHUNK_FIXED_BYTES + n;
      const out = frameBuffer(len);
      out.writeUInt32LE(u32(frame.deviceId, "deviceId"), p);
      out.writeUInt32LE(int(frame.releaseId, 1, 0xffff_ffff, "releaseId"), p + 4);
      out.writeUInt32LE(offset, p + 8);
      out.writeUInt32LE(crc32(frame.data), p + 12);
      out.set(frame.data, p + FW_CHUNK_FIXED_BYTES);
      return seal(out, FrameType.FwChunk, len);
    }
    case FrameType.FwAbort: {
      const out = frameBuffer(9);
      out.writeUInt32LE(u32(frame.deviceId, "deviceId"), p);
      out.writeUInt32LE(int(frame.releaseId, 1, 0xffff_ffff, "releaseId"), p + 4);
      out[p + 8] = u8(frame.reason, "reason");
      return seal(out, FrameType.FwAbort, 9);
    }
    case FrameType.FwStatus: {
      const out = frameBuffer(FW_STATUS_BYTES);
      out.writeUInt32LE(u32(frame.deviceId, "deviceId"), p);
      out[p + 4] = int(frame.state, 0, FwState.Testing, "state");
      out[p + 5] = int(frame.result, 0, FwResult.Aborted, "result");
      out[p + 6] = u8(frame.reason, "reason");
      out[p + 7] = int(frame.window, 1, FW_MAX_WINDOW, "window");
      out.writeUInt32LE(u32(frame.releaseId, "releaseId"), p + 8);
      out.writeUInt32LE(u32(frame.nextOffset, "nextOffset"), p + 12);
      out.writeUInt32LE(u32(frame.slotSize, "slotSize"), p + 16);
      out.writeUInt32LE(u32(frame.securityCounter, "securityCounter"), p + 20);
      writeFirmware(out, frame.firmware, p + 24, "firmware");
      out[p + 28] = int(frame.maxChunk, FW_MIN_CHUNK, FW_MAX_CHUNK, "maxChunk");
      return seal(out, FrameType.FwStatus, FW_STATUS_BYTES);
    }
    case FrameType.FwChunkAck: {
      const out = frameBuffer(13);
      out.writeUInt32LE(u32(frame.deviceId, "deviceId"), p);
      out.writeUInt32LE(int(frame.releaseId, 1, 0xffff_ffff, "releaseId"), p + 4);
      out.writeUInt32LE(u32(frame.nextOffset, "nextOffset"), p + 8);
      out[p + 12] = int(frame.status, 0, FwAckStatus.BadLength, "status");
      return seal(out, FrameType.FwChunkAck, 13);
    }
    default:
      throw new FrameEncodeError("type", `unknown frame type ${String((frame as { type: unknown }).type)}`);
  }
}

/** Text form of a device id: 8 lowercase hex digits. */
export function deviceIdHex(id: number): string {
  return u32(id, "deviceId").toString(16).padStart(8, "0");
}

/** Parses the text form of a device id; returns undefined when it is not 8 hex digits. */
export function parseDeviceIdHex(s: string): number | undefined {
  return /^[0-9a-f]{8}$/.test(s) ? parseInt(s, 16) : undefined;
}
