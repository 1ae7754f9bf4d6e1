/**
 * Frame codec for protocol v1 (hardware/PROTOCOL.md): the single source of truth used by
 * the gateway and the device simulator. Integers and floats are little-endian.
 */
import { crc32 } from "./crc32.ts";
import { FrameError } from "./errors.ts";

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

export const FrameType = { Hello: 1, Data: 2, Ack: 3, Nack: 4, Error: 5 } as const;
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

/** NACK reasons (PROTOCOL.md); `retryable` ones tell the device to keep the frame. */
export const NackReason = {
  NON_FINITE: 1,
  UNKNOWN_DEVICE: 2,
  REVOKED_DEVICE: 3,
  SCHEMA_MISMATCH: 4,
  ABSURD_TIMESTAMP: 5,
  STORE_UNAVAILABLE: 6,
  RATE_LIMITED: 7,
} as const;
export type NackReasonName = keyof typeof NackReason;
export type NackReasonCode = (typeof NackReason)[NackReasonName];
export const RETRYABLE_NACKS: ReadonlySet<number> = new Set([
  NackReason.SCHEMA_MISMATCH,
  NackReason.STORE_UNAVAILABLE,
  NackReason.RATE_LIMITED,
]);

export interface ChannelDescriptor {
  name: string;
  unit: number;
}

export interface HelloFrame {
  type: typeof FrameType.Hello;
  deviceId: number;
  bootId: number;
  firmware: { major: number; minor: number; patch: number };
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
  values: Float32Array;
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
  reason: number;
}

export interface ErrorFrame {
  type: typeof FrameType.Error;
  deviceId: number;
  code: number;
  message: string;
}

export type Frame = HelloFrame | DataFrame | AckFrame | NackFrame | ErrorFrame;

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
const utf8 = new TextDecoder("utf-8", { fatal: true });
const PROFILE_RE = /^[\x21-\x7e]*$/;

/**
 * Decodes one unencoded frame (header, payload, CRC). Throws {@link FrameError} with the
 * counter reason for anything that violates protocol v1. NaN/Inf values are rejected here
 * (`NON_FINITE`); semantic checks (known device, timestamp skew) belong to ingest.
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
    case FrameType.Nack:
      expectLen(len, 9, "NACK");
      return {
        type: FrameType.Nack,
        deviceId: readU32(buf, p),
        seq: readU32(buf, p + 4),
        reason: buf[p + 8]!,
      };
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
  for (let i = 0; i < count; i++, o += 4) {
    f32b[0] = buf[o]!;
    f32b[1] = buf[o + 1]!;
    f32b[2] = buf[o + 2]!;
    f32b[3] = buf[o + 3]!;
    const v = f32[0]!;
    // v - v is NaN exactly when v is NaN or ±Inf.
    if (v - v !== 0)
      throw new FrameError("NON_FINITE", `channel ${i} is ${v}`, {
        frameRef: { deviceId: readU32(buf, p), seq: readU32(buf, p + 4) },
      });
    values[i] = v;
  }
  return {
    type: FrameType.Data,
    deviceId: readU32(buf, p),
    seq: readU32(buf, p + 4),
    timestampUs: readU64(buf, p + 8),
    flags: buf[p + 17]!,
    values,
  };
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

/** Writes header + payload + CRC for a payload already placed at offset 4 of `out`. */
function seal(out: Buffer, type: number, len: number): Buffer {
  out[0] = PROTOCOL_VERSION;
  out[1] = type;
  out.writeUInt16LE(len, 2);
  out.writeUInt32LE(crc32(out.subarray(0, HEADER_BYTES + len)), HEADER_BYTES + len);
  return out;
}

function writeU64(out: Buffer, v: number, o: number): void {
  if (!Number.isSafeInteger(v) || v < 0)
    throw new RangeError(`u64 field must be a safe non-negative integer, got ${v}`);
  out.writeUInt32LE(v % TWO_32, o);
  out.writeUInt32LE(Math.floor(v / TWO_32), o + 4);
}

function checkAscii(s: string, max: number, re: RegExp, field: string): void {
  if (s.length > max || !re.test(s))
    throw new RangeError(`${field} must match ${re} and be at most ${max} characters`);
}

/**
 * Encodes a frame (unencoded form: header, payload, CRC). Throws `RangeError` naming the
 * field when a value cannot be represented (the encoder never emits an invalid frame, except
 * that DATA values are written as given so tests can produce NaN frames).
 */
export function encodeFrame(frame: Frame): Buffer {
  switch (frame.type) {
    case FrameType.Data: {
      const n = frame.values.length;
      if (n < 1 || n > MAX_CHANNELS)
        throw new RangeError(`values must have 1..${MAX_CHANNELS} channels, has ${n}`);
      const len = DATA_FIXED_BYTES + 4 * n;
      const out = Buffer.allocUnsafe(HEADER_BYTES + len + CRC_BYTES);
      const p = HEADER_BYTES;
      out.writeUInt32LE(frame.deviceId >>> 0, p);
      out.writeUInt32LE(frame.seq >>> 0, p + 4);
      writeU64(out, frame.timestampUs, p + 8);
      out[p + 16] = n;
      out[p + 17] = frame.flags & 0xff;
      for (let i = 0; i < n; i++) out.writeFloatLE(frame.values[i]!, p + DATA_FIXED_BYTES + 4 * i);
      return seal(out, FrameType.Data, len);
    }
    case FrameType.Hello: {
      checkAscii(frame.profile, MAX_PROFILE_LEN, PROFILE_RE, "profile");
      const n = frame.channels.length;
      if (n < 1 || n > MAX_CHANNELS)
        throw new RangeError(`channels must have 1..${MAX_CHANNELS} entries, has ${n}`);
      let len = 13 + frame.profile.length + 1;
      for (const c of frame.channels) {
        checkAscii(c.name, MAX_CHANNEL_NAME, NAME_RE, "channel name");
        if (c.name.length === 0) throw new RangeError("channel name must not be empty");
        if (!Number.isInteger(c.unit) || c.unit < 0 || c.unit > MAX_UNIT)
          throw new RangeError(`unit ${c.unit} is unknown`);
        len += 2 + c.name.length;
      }
      if (len > MAX_PAYLOAD) throw new RangeError(`HELLO payload of ${len} bytes exceeds ${MAX_PAYLOAD}`);
      const out = Buffer.allocUnsafe(HEADER_BYTES + len + CRC_BYTES);
      let o = HEADER_BYTES;
      out.writeUInt32LE(frame.deviceId >>> 0, o);
      out.writeUInt32LE(frame.bootId >>> 0, o + 4);
      out[o + 8] = frame.firmware.major & 0xff;
      out[o + 9] = frame.firmware.minor & 0xff;
      out.writeUInt16LE(frame.firmware.patch & 0xffff, o + 10);
      out[o + 12] = frame.profile.length;
      o += 13;
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
      if (frame.count < 1 || frame.count > 0xffff)
        throw new RangeError(`ACK count must be 1..65535, got ${frame.count}`);
      const out = Buffer.allocUnsafe(HEADER_BYTES + 18 + CRC_BYTES);
      out.writeUInt32LE(frame.deviceId >>> 0, 4);
      out.writeUInt32LE(frame.firstSeq >>> 0, 8);
      out.writeUInt16LE(frame.count, 12);
      writeU64(out, frame.gatewayTimeUs, 14);
      return seal(out, FrameType.Ack, 18);
    }
    case FrameType.Nack: {
      const out = Buffer.allocUnsafe(HEADER_BYTES + 9 + CRC_BYTES);
      out.writeUInt32LE(frame.deviceId >>> 0, 4);
      out.writeUInt32LE(frame.seq >>> 0, 8);
      out[12] = frame.reason & 0xff;
      return seal(out, FrameType.Nack, 9);
    }
    case FrameType.Error: {
      const msg = Buffer.from(frame.message, "utf8");
      if (msg.length > MAX_ERROR_MESSAGE)
        throw new RangeError(`ERROR message exceeds ${MAX_ERROR_MESSAGE} bytes`);
      const len = 6 + msg.length;
      const out = Buffer.allocUnsafe(HEADER_BYTES + len + CRC_BYTES);
      out.writeUInt32LE(frame.deviceId >>> 0, 4);
      out[8] = frame.code & 0xff;
      out[9] = msg.length;
      msg.copy(out, 10);
      return seal(out, FrameType.Error, len);
    }
  }
}

/** Text form of a device id: 8 lowercase hex digits. */
export function deviceIdHex(id: number): string {
  return (id >>> 0).toString(16).padStart(8, "0");
}

/** Parses the text form of a device id; returns undefined when it is not 8 hex digits. */
export function parseDeviceIdHex(s: string): number | undefined {
  return /^[0-9a-f]{8}$/.test(s) ? parseInt(s, 16) : undefined;
}
