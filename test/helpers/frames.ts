import fc from "fast-check";
import { createHash } from "node:crypto";
import {
  decodeFrame,
  encodeFrame,
  FrameType,
  FW_MAX_CHUNK,
  FW_MAX_WINDOW,
  FW_MIN_CHUNK,
  MAX_CHANNELS,
  MAX_RETRY_AFTER_MS,
  NackReason,
  type DataFrame,
  type Frame,
  type FwChunkAckFrame,
  type FwChunkFrame,
  type FwOfferFrame,
  type FwStatusFrame,
  type HelloFrame,
  type NackFrame,
} from "../../gateway/src/protocol/frame.ts";

export const f32 = fc.float({ noNaN: true, noDefaultInfinity: true });

export const dataFrameArb: fc.Arbitrary<DataFrame> = fc.record({
  type: fc.constant(FrameType.Data),
  deviceId: fc.nat({ max: 0xffffffff }),
  seq: fc.nat({ max: 0xffffffff }),
  timestampUs: fc.maxSafeNat(),
  flags: fc.nat({ max: 255 }),
  values: fc.array(f32, { minLength: 1, maxLength: MAX_CHANNELS }).map((a) => Float32Array.from(a)),
});

const name = fc.stringMatching(/^[a-z0-9_]{1,15}$/);
export const helloFrameArb: fc.Arbitrary<HelloFrame> = fc
  .record({
    type: fc.constant(FrameType.Hello),
    deviceId: fc.nat({ max: 0xffffffff }),
    bootId: fc.nat({ max: 0xffffffff }),
    firmware: fc.record({
      major: fc.nat({ max: 255 }),
      minor: fc.nat({ max: 255 }),
      patch: fc.nat({ max: 65535 }),
    }),
    profile: fc.stringMatching(/^[!-~]{0,31}$/),
    channels: fc.array(fc.record({ name, unit: fc.nat({ max: 12 }) }), { minLength: 1, maxLength: 12 }),
  })
  .filter((h) => 14 + h.profile.length + h.channels.reduce((a, c) => a + 2 + c.name.length, 0) <= 240);

export const errorFrameArb = fc.record({
  type: fc.constant(FrameType.Error),
  deviceId: fc.nat({ max: 0xffffffff }),
  code: fc.nat({ max: 255 }),
  message: fc.string({ maxLength: 60 }),
});

const u32 = fc.nat({ max: 0xffffffff });
const release = fc.integer({ min: 1, max: 0xffffffff });
const firmware = fc.record({
  major: fc.nat({ max: 255 }),
  minor: fc.nat({ max: 255 }),
  patch: fc.nat({ max: 65535 }),
});

export const nackFrameArb: fc.Arbitrary<NackFrame> = fc.oneof(
  fc.record({
    type: fc.constant(FrameType.Nack),
    deviceId: u32,
    seq: u32,
    reason: fc.nat({ max: 255 }).filter((r) => r !== NackReason.BUSY),
  }),
  fc.record({
    type: fc.constant(FrameType.Nack),
    deviceId: u32,
    seq: u32,
    reason: fc.constant(NackReason.BUSY),
    retryAfterMs: fc.integer({ min: 1, max: MAX_RETRY_AFTER_MS }),
  }),
);

export const fwOfferFrameArb: fc.Arbitrary<FwOfferFrame> = fc.record({
  type: fc.constant(FrameType.FwOffer),
  deviceId: u32,
  releaseId: release,
  firmware,
  securityCounter: u32,
  imageSize: fc.integer({ min: 1, max: 0xffffffff }),
  sha256: fc.uint8Array({ minLength: 32, maxLength: 32 }),
});

export const fwChunkFrameArb: fc.Arbitrary<FwChunkFrame> = fc.record({
  type: fc.constant(FrameType.FwChunk),
  deviceId: u32,
  releaseId: release,
  offset: fc.nat({ max: 0xffffffff - FW_MAX_CHUNK }),
  data: fc.uint8Array({ minLength: 1, maxLength: FW_MAX_CHUNK }),
});

export const fwStatusFrameArb: fc.Arbitrary<FwStatusFrame> = fc.record({
  type: fc.constant(FrameType.FwStatus),
  deviceId: u32,
  state: fc.constantFrom(0, 1, 2, 3 as const),
  result: fc.constantFrom(0, 1, 2, 3, 4 as const),
  reason: fc.nat({ max: 255 }),
  window: fc.integer({ min: 1, max: FW_MAX_WINDOW }),
  releaseId: u32,
  nextOffset: u32,
  slotSize: u32,
  securityCounter: u32,
  firmware,
  maxChunk: fc.integer({ min: FW_MIN_CHUNK, max: FW_MAX_CHUNK }),
});

export const fwChunkAckFrameArb: fc.Arbitrary<FwChunkAckFrame> = fc.record({
  type: fc.constant(FrameType.FwChunkAck),
  deviceId: u32,
  releaseId: release,
  nextOffset: u32,
  status: fc.constantFrom(0, 1, 2, 3 as const),
});

export const fwAbortFrameArb = fc.record({
  type: fc.constant(FrameType.FwAbort),
  deviceId: u32,
  releaseId: release,
  reason: fc.nat({ max: 255 }),
});

export const ackFrameArb = fc.record({
  type: fc.constant(FrameType.Ack),
  deviceId: u32,
  firstSeq: u32,
  count: fc.integer({ min: 1, max: 0xffff }),
  gatewayTimeUs: fc.maxSafeNat(),
});

/** Every frame type of protocol v1.1. */
export const anyFrameArb: fc.Arbitrary<Frame> = fc.oneof(
  dataFrameArb,
  ackFrameArb,
  helloFrameArb,
  errorFrameArb,
  nackFrameArb,
  fwOfferFrameArb,
  fwChunkFrameArb,
  fwStatusFrameArb,
  fwChunkAckFrameArb,
  fwAbortFrameArb,
);

/**
 * Plain JSON form of a Frame object as used by the known-answer vectors and the C tool
 * (hardware/vectors/frames.json): DATA values as an array, byte fields (`sha256`, `data`) as
 * lowercase hex.
 */
export function frameToJson(f: Frame): Record<string, unknown> {
  // NaN/±Inf (well-formed since revision 1.2) as the strings "NaN", "Infinity", "-Infinity":
  // JSON has no such numbers; Float32Array.from reads them back.
  if (f.type === FrameType.Data)
    return { ...f, values: Array.from(f.values, (v) => (Number.isFinite(v) ? v : String(v))) };
  if (f.type === FrameType.FwOffer) return { ...f, sha256: Buffer.from(f.sha256).toString("hex") };
  if (f.type === FrameType.FwChunk) return { ...f, data: Buffer.from(f.data).toString("hex") };
  return { ...f };
}

/** Inverse of {@link frameToJson}. */
export function frameFromJson(j: Record<string, unknown>): Frame {
  const hex = (v: unknown) => Uint8Array.from(Buffer.from(String(v), "hex"));
  if (j.type === FrameType.Data)
    return { ...j, values: Float32Array.from(j.values as number[]) } as unknown as Frame;
  if (j.type === FrameType.FwOffer) return { ...j, sha256: hex(j.sha256) } as unknown as Frame;
  if (j.type === FrameType.FwChunk) return { ...j, data: hex(j.data) } as unknown as Frame;
  return j as unknown as Frame;
}

/** SHA-256 of bytes (node:crypto). */
export function sha256(b: Uint8Array): Uint8Array {
  return Uint8Array.from(createHash("sha256").update(b).digest());
}

/** A frame as ingest receives it from a decoder: the decoded frame and its exact bytes. */
export function decoded(f: Frame): { frame: Frame; raw: Buffer } {
  const raw = Buffer.from(encodeFrame(f));
  return { frame: decodeFrame(raw), raw };
}
