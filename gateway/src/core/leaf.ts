/**
 * Merkle leaves: domain-separated hashes of canonical bytes.
 *
 * leaf = keccak256(kind ‖ body ‖ pad), where `kind` is a one-byte domain tag and `pad` is one
 * 0x00 byte when `body` has odd length. Every leaf preimage therefore has **odd** length and
 * can never be the 64-byte preimage `a ‖ b` of an internal node: this is the second-preimage
 * protection OpenZeppelin's MerkleProof asks for ("never a raw 64-byte leaf") at the cost of a
 * single keccak permutation, where the double hash of StandardMerkleTree costs two (one more
 * permutation per frame). Every body is self-delimiting, so the padding is unambiguous.
 *
 * Kinds:
 * - FRAME (0x01): extSeq u64 BE ‖ receivedUs u64 BE ‖ raw frame (header, payload, CRC). The
 *   frame carries device id, u32 seq, device timestamp and values; extSeq disambiguates a
 *   wrapped seq and receivedUs is the gateway's arrival stamp (the time for devices without
 *   a clock).
 * - INFERENCE (0x02): modelHash 32 ‖ inputWindowHash 32 ‖ deviceId u32 BE ‖ timestampUs u64 BE
 *   ‖ count u16 BE ‖ count × f32 BE outputs.
 * - ALERT (0x03): modelHash 32 ‖ inputWindowHash 32 ‖ deviceId u32 BE ‖ timestampUs u64 BE
 *   ‖ severity u8 ‖ ruleLen u8 ‖ rule (ASCII) ‖ score f32 BE.
 * - SENSOR_FAULT (0x04): the ALERT layout under its own tag, so a broken sensor can never be read
 *   as a machine-health alert: modelHash 32 (the model whose data-quality rules flagged it) ‖
 *   frameLeaf 32 (the FRAME leaf of the frame that raised or cleared the fault; in the
 *   `inputWindowHash` slot) ‖ deviceId ‖ timestampUs (the frame's) ‖ severity u8 ‖ ruleLen u8 ‖
 *   rule = `{channel}:{reason}` raised, `{channel}:{reason}:clear` cleared ‖ value f32 BE (the
 *   channel's raw value in that frame, NaN when missing).
 */
import type { FrameRecord } from "./records.ts";
import { keccak256, keccak256Into } from "./keccak.ts";

export const LeafKind = { Frame: 0x01, Inference: 0x02, Alert: 0x03, SensorFault: 0x04 } as const;
export type LeafKindCode = (typeof LeafKind)[keyof typeof LeafKind];

const TWO_32 = 0x1_0000_0000;

function putU64(b: Uint8Array, o: number, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0)
    throw new RangeError(`u64 field must be a safe non-negative integer, got ${v}`);
  const hi = Math.floor(v / TWO_32);
  const lo = v % TWO_32;
  b[o] = hi >>> 24;
  b[o + 1] = (hi >>> 16) & 0xff;
  b[o + 2] = (hi >>> 8) & 0xff;
  b[o + 3] = hi & 0xff;
  b[o + 4] = lo >>> 24;
  b[o + 5] = (lo >>> 16) & 0xff;
  b[o + 6] = (lo >>> 8) & 0xff;
  b[o + 7] = lo & 0xff;
}

function putU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}

/** Frame fields that a FRAME leaf commits to. */
export type FrameLeafInput = Pick<FrameRecord, "seq" | "receivedUs" | "raw">;

const FRAME_FIXED = 1 + 8 + 8;
// Scratch for the hot path: the largest frame is 248 bytes.
const scratch = new Uint8Array(FRAME_FIXED + 256 + 1);

/** Canonical preimage of a FRAME leaf (a fresh copy; for receipts and tests). */
export function frameLeafPreimage(r: FrameLeafInput): Uint8Array {
  const n = FRAME_FIXED + r.raw.length;
  const out = new Uint8Array(n + (n % 2 === 0 ? 1 : 0));
  out[0] = LeafKind.Frame;
  putU64(out, 1, r.seq);
  putU64(out, 9, r.receivedUs);
  out.set(r.raw, FRAME_FIXED);
  return out;
}

/** FRAME leaf hash as a new 32-byte array. */
export function frameLeaf(r: FrameLeafInput): Uint8Array {
  const out = new Uint8Array(32);
  frameLeafInto(r, out, 0);
  return out;
}

/** FRAME leaf hash written into `out` at `at` (hot path: no allocation for frames ≤ 256 B). */
export function frameLeafInto(r: FrameLeafInput, out: Uint8Array, at: number): void {
  const len = r.raw.length;
  if (len > 256) {
    keccak256Into(frameLeafPreimage(r), out, at);
    return;
  }
  scratch[0] = LeafKind.Frame;
  putU64(scratch, 1, r.seq);
  putU64(scratch, 9, r.receivedUs);
  scratch.set(r.raw, FRAME_FIXED);
  let n = FRAME_FIXED + len;
  if (n % 2 === 0) scratch[n++] = 0;
  keccak256Into(scratch.subarray(0, n), out, at);
}

function fixed32(name: string, v: Uint8Array): Uint8Array {
  if (v.length !== 32) throw new RangeError(`${name} must be 32 bytes, is ${v.length}`);
  return v;
}

// Preimages are carved out of 64 KiB zeroed slabs: a view over an existing ArrayBuffer costs
// about a third of allocating an 80-byte typed array of its own (off-heap above 64 bytes in V8;
// measured with bench infer's per-window overhead). Each byte is handed out once, so it is
// still zero; a slab lives while any of its preimages does.
const SLAB = 64 * 1024;
let slab = new ArrayBuffer(SLAB);
let slabAt = 0;

/** A zeroed preimage buffer for a body of `n` bytes: one more (the 0x00 pad) when `n` is even. */
function preimageFor(n: number): Uint8Array {
  const len = n % 2 === 1 ? n : n + 1;
  if (len > SLAB / 4) return new Uint8Array(len);
  if (slabAt + len > SLAB) {
    slab = new ArrayBuffer(SLAB);
    slabAt = 0;
  }
  const b = new Uint8Array(slab, slabAt, len);
  slabAt += len;
  return b;
}

function putF32(b: Uint8Array, o: number, v: number): void {
  f32[0] = v;
  putU32(b, o, u32[0]!);
}
// Scratch for big-endian float32 bytes without a DataView per preimage.
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export interface InferenceLeafInput {
  modelHash: Uint8Array;
  inputWindowHash: Uint8Array;
  deviceId: number;
  timestampUs: number;
  outputs: ArrayLike<number>;
}

/** Canonical preimage of an INFERENCE leaf. */
export function inferenceLeafPreimage(x: InferenceLeafInput): Uint8Array {
  if (x.outputs.length > 0xffff) throw new RangeError("outputs must have at most 65535 values");
  const b = preimageFor(1 + 32 + 32 + 4 + 8 + 2 + 4 * x.outputs.length);
  b[0] = LeafKind.Inference;
  b.set(fixed32("modelHash", x.modelHash), 1);
  b.set(fixed32("inputWindowHash", x.inputWindowHash), 33);
  putU32(b, 65, x.deviceId >>> 0);
  putU64(b, 69, x.timestampUs);
  b[77] = x.outputs.length >>> 8;
  b[78] = x.outputs.length & 0xff;
  for (let i = 0; i < x.outputs.length; i++) putF32(b, 79 + 4 * i, x.outputs[i]!);
  return b;
}

export interface AlertLeafInput {
  modelHash: Uint8Array;
  inputWindowHash: Uint8Array;
  deviceId: number;
  timestampUs: number;
  severity: number;
  rule: string;
  score: number;
}

/** Canonical preimage of a SENSOR_FAULT leaf (the ALERT layout under tag 0x04; see the header). */
export function sensorFaultLeafPreimage(x: AlertLeafInput): Uint8Array {
  const b = alertLeafPreimage(x);
  b[0] = LeafKind.SensorFault;
  return b;
}

/** Canonical preimage of an ALERT leaf. */
export function alertLeafPreimage(x: AlertLeafInput): Uint8Array {
  if (!/^[\x21-\x7e]{1,64}$/.test(x.rule))
    throw new RangeError("rule must be 1..64 printable ASCII characters");
  const b = preimageFor(1 + 32 + 32 + 4 + 8 + 1 + 1 + x.rule.length + 4);
  b[0] = LeafKind.Alert;
  b.set(fixed32("modelHash", x.modelHash), 1);
  b.set(fixed32("inputWindowHash", x.inputWindowHash), 33);
  putU32(b, 65, x.deviceId >>> 0);
  putU64(b, 69, x.timestampUs);
  b[77] = x.severity & 0xff;
  b[78] = x.rule.length;
  for (let i = 0; i < x.rule.length; i++) b[79 + i] = x.rule.charCodeAt(i);
  putF32(b, 79 + x.rule.length, x.score);
  return b;
}

/** keccak256 of a leaf preimage; refuses even-length (hence possibly 64-byte) preimages. */
export function leafFromPreimage(preimage: Uint8Array): Uint8Array {
  if (preimage.length % 2 === 0)
    throw new RangeError("leaf preimages have odd length (domain tag + padded body)");
  return keccak256(preimage);
}

/** The fields of an INFERENCE leaf preimage, decoded. */
export interface DecodedInferenceLeaf {
  kind: "inference";
  modelHash: Uint8Array;
  inputWindowHash: Uint8Array;
  deviceId: number;
  timestampUs: number;
  /** f32 values widened to JS numbers (exact). */
  outputs: number[];
}

/** The fields of an ALERT leaf preimage, decoded. */
export interface DecodedAlertLeaf {
  kind: "alert";
  modelHash: Uint8Array;
  inputWindowHash: Uint8Array;
  deviceId: number;
  timestampUs: number;
  severity: number;
  rule: string;
  /** f32 widened to a JS number (exact). */
  score: number;
}

/** The fields of a SENSOR_FAULT leaf preimage (ALERT layout; `inputWindowHash` holds the FRAME leaf). */
export interface DecodedSensorFaultLeaf extends Omit<DecodedAlertLeaf, "kind"> {
  kind: "sensor-fault";
}

export type DecodedModelLeaf = DecodedInferenceLeaf | DecodedAlertLeaf | DecodedSensorFaultLeaf;

/** Common prefix of INFERENCE, ALERT and SENSOR_FAULT preimages: tag, model hash, window hash, device, timestamp. */
const MODEL_LEAF_FIXED = 1 + 32 + 32 + 4 + 8;

/** Device id of an INFERENCE/ALERT preimage (no validation: use after decodeModelLeaf). */
export function modelLeafDeviceId(p: Uint8Array): number {
  return ((p[65]! << 24) | (p[66]! << 16) | (p[67]! << 8) | p[68]!) >>> 0;
}

/** Timestamp (µs) of an INFERENCE/ALERT preimage (no validation). */
export function modelLeafTimestampUs(p: Uint8Array): number {
  const hi = ((p[69]! << 24) | (p[70]! << 16) | (p[71]! << 8) | p[72]!) >>> 0;
  const lo = ((p[73]! << 24) | (p[74]! << 16) | (p[75]! << 8) | p[76]!) >>> 0;
  return hi * TWO_32 + lo;
}

/**
 * Strict decoder of an INFERENCE (0x02), ALERT (0x03) or SENSOR_FAULT (0x04) leaf preimage: the
 * exact inverse of {@link inferenceLeafPreimage} / {@link alertLeafPreimage} /
 * {@link sensorFaultLeafPreimage}. Throws RangeError on anything
 * those functions cannot have produced (wrong tag, length, padding, rule characters, a
 * timestamp above 2^53), so a decoded preimage re-encodes to the same bytes.
 */
export function decodeModelLeaf(p: Uint8Array): DecodedModelLeaf {
  const tag = p[0];
  if (tag !== LeafKind.Inference && tag !== LeafKind.Alert && tag !== LeafKind.SensorFault)
    throw new RangeError(
      `leaf tag 0x${(tag ?? 0).toString(16).padStart(2, "0")} is not INFERENCE, ALERT or SENSOR_FAULT`,
    );
  if (p.length < MODEL_LEAF_FIXED + 2) throw new RangeError("leaf preimage is too short");
  const dv = new DataView(p.buffer, p.byteOffset, p.length);
  const hi = dv.getUint32(69);
  if (hi >= 0x20_0000) throw new RangeError("timestampUs is above 2^53");
  const common = {
    modelHash: p.slice(1, 33),
    inputWindowHash: p.slice(33, 65),
    deviceId: modelLeafDeviceId(p),
    timestampUs: modelLeafTimestampUs(p),
  };
  let body: number;
  let out: DecodedModelLeaf;
  if (tag === LeafKind.Inference) {
    const count = dv.getUint16(77);
    body = 79 + 4 * count;
    if (p.length < body) throw new RangeError(`preimage too short for ${count} outputs`);
    const outputs: number[] = [];
    for (let i = 0; i < count; i++) outputs.push(dv.getFloat32(79 + 4 * i));
    out = { kind: "inference", ...common, outputs };
  } else {
    const ruleLen = p[78]!;
    body = 79 + ruleLen + 4;
    if (ruleLen < 1 || ruleLen > 64 || p.length < body)
      throw new RangeError(`rule length ${ruleLen} does not fit the preimage`);
    let rule = "";
    for (let i = 0; i < ruleLen; i++) {
      const c = p[79 + i]!;
      if (c < 0x21 || c > 0x7e) throw new RangeError("rule must be printable ASCII");
      rule += String.fromCharCode(c);
    }
    out = {
      kind: tag === LeafKind.Alert ? "alert" : "sensor-fault",
      ...common,
      severity: p[77]!,
      rule,
      score: dv.getFloat32(79 + ruleLen),
    };
  }
  // Exactly the body plus the one pad byte (0x00) that makes the length odd, if any.
  const expect = body % 2 === 1 ? body : body + 1;
  if (p.length !== expect) throw new RangeError(`preimage is ${p.length} bytes, expected ${expect}`);
  if (expect !== body && p[body] !== 0) throw new RangeError("padding byte is not 0x00");
  return out;
}
