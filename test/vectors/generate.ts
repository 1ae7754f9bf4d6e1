/**
 * Writes hardware/vectors/frames.json: the known-answer vectors shared by the TypeScript
 * codec and the C reference. Run once when the protocol changes:
 *   npx tsx test/vectors/generate.ts
 * The test suite checks both implementations against the committed file, so a codec change
 * that alters bytes fails until the vectors (and the firmware) are deliberately updated.
 */
import { writeFileSync } from "node:fs";
import { cobsEncode } from "../../gateway/src/protocol/cobs.ts";
import { crc32 } from "../../gateway/src/protocol/crc32.ts";
import {
  decodeFrame,
  encodeFrame,
  FrameType,
  FwAbortReason,
  FwAckStatus,
  FwReason,
  FwResult,
  FwState,
  NackReason,
  Unit,
  type Frame,
} from "../../gateway/src/protocol/frame.ts";
import { frameToJson } from "../helpers/frames.ts";

interface ValidVector {
  name: string;
  frame: Record<string, unknown>;
  hex: string;
  wire: string;
}
interface InvalidVector {
  name: string;
  hex: string;
  reason: string;
}

const toJson = frameToJson;
/** Deterministic test bytes: 0x00, 0x01, … (zeros exercise COBS). */
const seqBytes = (n: number, start = 0) => Uint8Array.from({ length: n }, (_, i) => (start + i) & 0xff);
const imageSha = Uint8Array.from(
  Buffer.from("5d7a2c3b8f1e4a6d9b0c7e2f1a3b5c7d9e0f1a2b3c4d5e6f708192a3b4c5d6e7", "hex"),
);

const valid: Array<[string, Frame]> = [
  [
    "data-1ch",
    {
      type: FrameType.Data,
      deviceId: 0x2a,
      seq: 1,
      timestampUs: 1_732_476_000_000_000,
      flags: 0,
      values: new Float32Array([1.5]),
    },
  ],
  [
    "data-6ch-rotating",
    {
      type: FrameType.Data,
      deviceId: 0x0102_0304,
      seq: 4_294_967_295,
      timestampUs: 1_764_000_000_123_456,
      flags: 1,
      values: new Float32Array([0.125, 0.5, 3.25, 41.5, 12.75, 1480]),
    },
  ],
  [
    "data-24ch-cmapss",
    {
      type: FrameType.Data,
      deviceId: 0x00c0_ffee,
      seq: 192,
      timestampUs: 0,
      flags: 0,
      values: new Float32Array([
        -0.0007, -0.0004, 100, 518.67, 641.82, 1589.7, 1400.6, 14.62, 21.61, 554.36, 2388.06, 9046.19, 1.3,
        47.47, 521.66, 2388.02, 8138.62, 8.4195, 0.03, 392, 2388, 100, 39.06, 23.419,
      ]),
    },
  ],
  [
    "data-zero-bytes",
    { type: FrameType.Data, deviceId: 0, seq: 0, timestampUs: 0, flags: 0, values: new Float32Array([0, 0]) },
  ],
  [
    "data-32ch-max",
    {
      type: FrameType.Data,
      deviceId: 0xffff_ffff,
      seq: 65536,
      timestampUs: 2 ** 53 - 1,
      flags: 0,
      values: new Float32Array(Array.from({ length: 32 }, (_, i) => (i - 16) * 0.25)),
    },
  ],
  [
    "hello-rotating",
    {
      type: FrameType.Hello,
      deviceId: 0x0102_0304,
      bootId: 7,
      firmware: { major: 1, minor: 2, patch: 300 },
      profile: "rotating-v1",
      channels: [
        { name: "vib_rms", unit: Unit.g },
        { name: "vib_peak", unit: Unit.g },
        { name: "vib_kurt", unit: Unit.none },
        { name: "bearing_temp", unit: Unit.degC },
        { name: "current", unit: Unit.A },
        { name: "speed", unit: Unit.rpm },
      ],
    },
  ],
  [
    "ack",
    {
      type: FrameType.Ack,
      deviceId: 0x2a,
      firstSeq: 4_294_967_290,
      count: 12,
      gatewayTimeUs: 1_764_000_000_000_001,
    },
  ],
  ["nack", { type: FrameType.Nack, deviceId: 0x2a, seq: 99, reason: NackReason.STORE_UNAVAILABLE }],
  ["error", { type: FrameType.Error, deviceId: 0x2a, code: 1, message: "bearing thermocouple open" }],
  ["error-empty", { type: FrameType.Error, deviceId: 0, code: 3, message: "" }],
  // v1.1
  [
    "nack-busy",
    { type: FrameType.Nack, deviceId: 0x2a, seq: 100, reason: NackReason.BUSY, retryAfterMs: 250 },
  ],
  [
    "nack-seq-out-of-range",
    { type: FrameType.Nack, deviceId: 0x2a, seq: 0xffff_fff0, reason: NackReason.SEQ_OUT_OF_RANGE },
  ],
  [
    "fw-offer",
    {
      type: FrameType.FwOffer,
      deviceId: 0x0102_0304,
      releaseId: 7,
      firmware: { major: 1, minor: 3, patch: 0 },
      securityCounter: 12,
      imageSize: 65_568,
      sha256: imageSha,
    },
  ],
  [
    "fw-chunk",
    { type: FrameType.FwChunk, deviceId: 0x0102_0304, releaseId: 7, offset: 448, data: seqBytes(20) },
  ],
  [
    "fw-chunk-max",
    { type: FrameType.FwChunk, deviceId: 0x0102_0304, releaseId: 7, offset: 0, data: seqBytes(224, 1) },
  ],
  [
    "fw-abort",
    { type: FrameType.FwAbort, deviceId: 0x0102_0304, releaseId: 7, reason: FwAbortReason.OPERATOR },
  ],
  [
    "fw-status-receiving",
    {
      type: FrameType.FwStatus,
      deviceId: 0x0102_0304,
      state: FwState.Receiving,
      result: FwResult.None,
      reason: FwReason.NONE,
      window: 4,
      releaseId: 7,
      nextOffset: 8192,
      slotSize: 131_072,
      securityCounter: 11,
      firmware: { major: 1, minor: 2, patch: 7 },
      maxChunk: 224,
    },
  ],
  [
    "fw-status-refused",
    {
      type: FrameType.FwStatus,
      deviceId: 0x0102_0304,
      state: FwState.Idle,
      result: FwResult.Refused,
      reason: FwReason.OLDER_VERSION,
      window: 1,
      releaseId: 6,
      nextOffset: 0,
      slotSize: 131_072,
      securityCounter: 12,
      firmware: { major: 1, minor: 3, patch: 0 },
      maxChunk: 64,
    },
  ],
  [
    "fw-chunk-ack",
    {
      type: FrameType.FwChunkAck,
      deviceId: 0x0102_0304,
      releaseId: 7,
      nextOffset: 672,
      status: FwAckStatus.Ok,
    },
  ],
];

const vectors: ValidVector[] = valid.map(([name, frame]) => {
  const bytes = encodeFrame(frame);
  return { name, frame: toJson(frame), hex: bytes.toString("hex"), wire: cobsEncode(bytes).toString("hex") };
});

function reseal(b: Buffer): Buffer {
  const crcAt = b.length - 4;
  b.writeUInt32LE(crc32(b.subarray(0, crcAt)), crcAt);
  return b;
}
const base = encodeFrame(valid[1]![1]);
const invalid: InvalidVector[] = [];
const add = (name: string, b: Buffer, reason: string) =>
  invalid.push({ name, hex: b.toString("hex"), reason });
const addValidBytes = (name: string, b: Buffer) =>
  vectors.push({
    name,
    frame: toJson(decodeFrame(b)),
    hex: b.toString("hex"),
    wire: cobsEncode(b).toString("hex"),
  });
{
  const b = Buffer.from(base);
  b[10] = b[10]! ^ 0x01;
  add("bit-flip", b, "BAD_CRC");
}
add("truncated", base.subarray(0, base.length - 3), "TRUNCATED");
add("too-short", base.subarray(0, 5), "TRUNCATED");
add("trailing-byte", Buffer.concat([base, Buffer.from([0x55])]), "LENGTH_MISMATCH");
{
  const b = Buffer.from(base);
  b[0] = 2;
  add("version-2", reseal(b), "BAD_VERSION");
}
{
  const b = Buffer.from(base);
  b[1] = 0x09;
  add("type-9", reseal(b), "BAD_TYPE");
}
// NaN and ±Inf values are well-formed since revision 1.2 (a sensor that could not read): valid
// vectors whose decoded frame marks the channel in `nonFinite`.
{
  const b = Buffer.from(base);
  b.writeFloatLE(NaN, 4 + 18 + 8);
  addValidBytes("nan-value", reseal(b));
}
{
  const b = Buffer.from(base);
  b.writeFloatLE(-Infinity, 4 + 18);
  addValidBytes("inf-value", reseal(b));
}
{
  const b = Buffer.from(base);
  b[4 + 16] = 5; // claims 5 channels but carries 6
  add("channel-count-mismatch", reseal(b), "BAD_PAYLOAD");
}
{
  const b = Buffer.alloc(4 + 241 + 4);
  b[0] = 1;
  b[1] = FrameType.Data;
  b.writeUInt16LE(241, 2);
  add("oversized-length", reseal(b), "OVERSIZED");
}

{
  const b = Buffer.from(base);
  b.writeUInt32LE(0, 4 + 8);
  b.writeUInt32LE(0x20_0000, 4 + 12); // timestamp = 2^53 µs
  add("timestamp-2^53", reseal(b), "BAD_PAYLOAD");
}
{
  const b = encodeFrame({ type: FrameType.Error, deviceId: 1, code: 1, message: "ok?" });
  b[4 + 6 + 2] = 0xc0; // overlong lead byte: ill-formed UTF-8
  add("error-bad-utf8", reseal(b), "BAD_PAYLOAD");
}
{
  const b = encodeFrame({ type: FrameType.Error, deviceId: 1, code: 1, message: "ab\u00e9" });
  add("error-truncated-utf8", reseal(cutUtf8(b)), "BAD_PAYLOAD");
}

// v1.1 frames
/** Re-frames `payload` as a frame of `type` with a valid CRC. */
function frameOf(type: number, payload: Uint8Array): Buffer {
  const b = Buffer.alloc(4 + payload.length + 4);
  b[0] = 1;
  b[1] = type;
  b.writeUInt16LE(payload.length, 2);
  b.set(payload, 4);
  return reseal(b);
}
const payloadOf = (name: string) => {
  const v = vectors.find((x) => x.name === name)!;
  const b = Buffer.from(v.hex, "hex");
  return Buffer.from(b.subarray(4, b.length - 4));
};
{
  const busy = payloadOf("nack-busy");
  add("nack-busy-without-retry-after", frameOf(FrameType.Nack, busy.subarray(0, 9)), "BAD_PAYLOAD");
  const zero = Buffer.from(busy);
  zero.writeUInt16LE(0, 9);
  add("nack-busy-retry-after-0", frameOf(FrameType.Nack, zero), "BAD_PAYLOAD");
  const notBusy = Buffer.from(busy);
  notBusy[8] = NackReason.STORE_UNAVAILABLE;
  add("nack-11-bytes-not-busy", frameOf(FrameType.Nack, notBusy), "BAD_PAYLOAD");
}
{
  const chunk = payloadOf("fw-chunk");
  const badCrc = Buffer.from(chunk);
  badCrc[12] = badCrc[12]! ^ 0x01;
  add("fw-chunk-data-crc", frameOf(FrameType.FwChunk, badCrc), "BAD_PAYLOAD");
  add("fw-chunk-no-data", frameOf(FrameType.FwChunk, chunk.subarray(0, 16)), "BAD_PAYLOAD");
  const wraps = Buffer.from(chunk);
  wraps.writeUInt32LE(0xffff_fff0, 8); // 20 bytes from 2^32-16 run past 2^32
  add("fw-chunk-past-4gib", frameOf(FrameType.FwChunk, wraps), "BAD_PAYLOAD");
  const oversized = Buffer.concat([payloadOf("fw-chunk-max"), Buffer.from([1])]);
  oversized.writeUInt32LE(crc32(oversized.subarray(16)), 12);
  add("fw-chunk-225-bytes", frameOf(FrameType.FwChunk, oversized), "OVERSIZED");
}
{
  const offer = payloadOf("fw-offer");
  const r0 = Buffer.from(offer);
  r0.writeUInt32LE(0, 4);
  add("fw-offer-release-0", frameOf(FrameType.FwOffer, r0), "BAD_PAYLOAD");
  add("fw-offer-short-hash", frameOf(FrameType.FwOffer, offer.subarray(0, 51)), "BAD_PAYLOAD");
}
{
  const st = payloadOf("fw-status-receiving");
  const w0 = Buffer.from(st);
  w0[7] = 0;
  add("fw-status-window-0", frameOf(FrameType.FwStatus, w0), "BAD_PAYLOAD");
  const mc = Buffer.from(st);
  mc[28] = 225;
  add("fw-status-max-chunk-225", frameOf(FrameType.FwStatus, mc), "BAD_PAYLOAD");
  const state = Buffer.from(st);
  state[4] = 4;
  add("fw-status-state-4", frameOf(FrameType.FwStatus, state), "BAD_PAYLOAD");
  const ack = Buffer.from(payloadOf("fw-chunk-ack"));
  ack[12] = 4;
  add("fw-chunk-ack-status-4", frameOf(FrameType.FwChunkAck, ack), "BAD_PAYLOAD");
  add("type-0x15", frameOf(0x15, ack), "BAD_TYPE");
}

/** Drops the last byte of a 2-byte UTF-8 character while keeping the frame consistent. */
function cutUtf8(b: Buffer): Buffer {
  const m = b[4 + 5]! - 1;
  const out = Buffer.alloc(b.length - 1);
  b.copy(out, 0, 0, 4 + 6 + m);
  out[4 + 5] = m;
  out.writeUInt16LE(6 + m, 2);
  return out;
}

const crcCheck = { input: Buffer.from("123456789").toString("hex"), crc32: crc32(Buffer.from("123456789")) };
const out = {
  description:
    "Vigil frame protocol v1 (document revision 1.4) known-answer vectors (hardware/PROTOCOL.md). hex = unencoded frame; wire = COBS + 0x00. Byte fields (sha256, data) of frame objects are lowercase hex; non-finite DATA values are the strings NaN, Infinity, -Infinity, and nonFinite marks their channels (bit i = channel i).",
  crcCheck,
  valid: vectors,
  invalid,
};
writeFileSync(
  new URL("../../hardware/vectors/frames.json", import.meta.url),
  JSON.stringify(out, null, 2) + "\n",
);
console.log(`wrote ${vectors.length} valid and ${invalid.length} invalid vectors`);
