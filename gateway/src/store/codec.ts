/**
 * Key and value layout of the store. Keys are a one-byte prefix followed by big-endian
 * integers, so byte order = numeric order and range scans need no padding tricks:
 *
 * | key | value |
 * |---|---|
 * | `L` index u64 | frame record: deviceId u32 ‖ flags u8 ‖ seq u56 ‖ receivedUs u64 ‖ timestampUs u64 ‖ raw (flags: see encodeRecord) |
 * | `E` index u64 | leaf record: 0x01 ‖ receivedUs u64 ‖ leaf hash 32 ‖ INFERENCE/ALERT preimage (tag ‖ body ‖ pad); legacy (first byte 0x00): receivedUs u64 ‖ preimage |
 * | `H` leafHash 32 ‖ index u64 | empty (leaf hash → index; several indices if appended twice) |
 * | `D` deviceId u32 ‖ seq u64 | index u64 (the (device, seq) index and dedupe slow path) |
 * | `S` deviceId u32 | last stored seq u64 ‖ boot id u32 ‖ base of that boot's sequence space u64 (per-device start-up state; legacy: the seq alone) |
 * | `P` deviceId u32 | highest pruned seq u64 (below it, resends count as duplicates) |
 * | `B` batchSeq u64 | sealed batch (JSON) |
 * | `V` batchSeq u64 | packed leaves (32 B each) |
 * | `X` lastIndex u64 | batchSeq u64 (frame index → batch: first key ≥ index) |
 * | `A` batchSeq u64 | anchor record (JSON) |
 * | `U` name (UTF-8) | a record of the update agent (updates/): installed versions, refused releases, firmware transfer progress |
 * | `M` name | counters: `Mlast`, `Msealed`, `Mbatch`, `Mhead`, `Manchored`, `Mpruned`, `Mage`, `Mprobe` (recovery), `Mlost` (indexes a salvage found lost inside sealed batches), `Mformat` (the store's format, u32: format.ts) |
 * | `R` 0x00 | registry cache meta (JSON): last processed block and hash, unconfirmed events, last refresh (registry-cache.ts) |
 * | `R` kind ‖ id | registry cache entry (JSON), kind one ASCII letter, id UTF-8 (chain/registry-view.ts says which) |
 *
 * Frames (`L`) and leaf records (`E`) share one arrival index space: every index is used by
 * exactly one of them, so a batch's `firstIndex..lastIndex` is a contiguous run of entries.
 * Frame records are unchanged from the frame-only layout (stores written before leaf records
 * existed open as they are).
 */
import {
  decodeModelLeaf,
  LeafKind,
  leafFromPreimage,
  modelLeafDeviceId,
  modelLeafTimestampUs,
} from "../core/leaf.ts";
import { StoreRecordError } from "./errors.ts";
import type { FrameRecord, LeafRecord, StoredFrame, StoredLeaf } from "./types.ts";

const TWO_32 = 0x1_0000_0000;

export const P_LOG = 0x4c;
export const P_DEV = 0x44;
export const P_SEQ = 0x53;
export const P_PRUNED = 0x50;
export const P_BATCH = 0x42;
export const P_LEAVES = 0x56;
export const P_INDEX = 0x58;
export const P_ANCHOR = 0x41;
export const P_LEAF = 0x45;
export const P_LEAFHASH = 0x48;
export const P_REGISTRY = 0x52;
export const P_UPDATES = 0x55;

export function writeU64(b: Buffer, o: number, v: number): void {
  b.writeUInt32BE(Math.floor(v / TWO_32), o);
  b.writeUInt32BE(v % TWO_32, o + 4);
}

export function readU64(b: Uint8Array, o: number): number {
  const hi = ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
  const lo = ((b[o + 4]! << 24) | (b[o + 5]! << 16) | (b[o + 6]! << 8) | b[o + 7]!) >>> 0;
  return hi * TWO_32 + lo;
}

export function u64Key(prefix: number, v: number): Buffer {
  const b = Buffer.allocUnsafe(9);
  b[0] = prefix;
  writeU64(b, 1, v);
  return b;
}

export function devKey(prefix: number, deviceId: number): Buffer {
  const b = Buffer.allocUnsafe(5);
  b[0] = prefix;
  b.writeUInt32BE(deviceId >>> 0, 1);
  return b;
}

export function devSeqKey(deviceId: number, seq: number): Buffer {
  const b = Buffer.allocUnsafe(13);
  b[0] = P_DEV;
  b.writeUInt32BE(deviceId >>> 0, 1);
  writeU64(b, 5, seq);
  return b;
}

export function u64Value(v: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  writeU64(b, 0, v);
  return b;
}

export function metaKey(name: string): Buffer {
  return Buffer.from("M" + name, "latin1");
}

/** One past the largest key with `prefix` (for `lt` bounds). */
export function prefixEnd(prefix: number): Buffer {
  return Buffer.of(prefix + 1);
}

export const RECORD_FIXED = 28;

/** `L` flags bit 0: the gateway clock was not known good when the frame arrived (FrameRecord.clockUnverified). */
export const FLAG_CLOCK_UNVERIFIED = 0x01;

/**
 * Encodes an `L` value. Byte 4 is a flags byte: it is the top byte of what was a u64 seq field,
 * always 0 for a safe-integer seq (< 2^53), so records written before flags existed read as
 * unflagged. A store holding a flagged record must not be opened by a gateway older than the
 * flags byte (it would read the seq as ≥ 2^56).
 */
export function encodeRecord(r: FrameRecord): Buffer {
  const b = Buffer.allocUnsafe(RECORD_FIXED + r.raw.length);
  b.writeUInt32BE(r.deviceId >>> 0, 0);
  writeU64(b, 4, r.seq);
  b[4] = r.clockUnverified ? FLAG_CLOCK_UNVERIFIED : 0;
  writeU64(b, 12, r.receivedUs);
  writeU64(b, 20, r.timestampUs);
  b.set(r.raw, RECORD_FIXED);
  return b;
}

/** Decodes an `L` value; one shorter than its fixed part is a StoreRecordError naming the index. */
export function decodeRecord(index: number, b: Buffer): StoredFrame {
  if (b.length < RECORD_FIXED)
    throw new StoreRecordError(
      index,
      "frame record",
      `${b.length} bytes, fewer than its fixed ${RECORD_FIXED}`,
    );
  const flags = b[4]!;
  const f: StoredFrame = {
    index,
    deviceId: b.readUInt32BE(0),
    seq: (b.readUInt32BE(4) & 0x00ff_ffff) * TWO_32 + b.readUInt32BE(8),
    receivedUs: readU64(b, 12),
    timestampUs: readU64(b, 20),
    // A view: `b` is a fresh buffer per read (LevelDB and MemoryKv both return copies).
    raw: b.subarray(RECORD_FIXED),
  };
  if (flags & FLAG_CLOCK_UNVERIFIED) f.clockUnverified = true;
  return f;
}

export function leafHashKey(hash: Uint8Array, index: number): Buffer {
  const b = Buffer.allocUnsafe(41);
  b[0] = P_LEAFHASH;
  b.set(hash, 1);
  writeU64(b, 33, index);
  return b;
}

/** Fixed bytes before the preimage in an `E` value (version, receivedUs, hash). */
export const LEAF_FIXED = 41;
const LEAF_V2 = 0x01;

export function encodeLeaf(preimage: Uint8Array, hash: Uint8Array, receivedUs: number): Buffer {
  const b = Buffer.allocUnsafe(LEAF_FIXED + preimage.length);
  b[0] = LEAF_V2;
  writeU64(b, 1, receivedUs);
  b.set(hash, 9);
  b.set(preimage, LEAF_FIXED);
  return b;
}

/**
 * Decodes an `E` value. The hash is read, not recomputed (a leaf is hashed once, by its
 * producer); values written before the hash was stored (first byte 0x00, a receivedUs u64 below
 * 2^56) are hashed here.
 */
export function decodeLeaf(index: number, b: Buffer): StoredLeaf {
  const v2 = b[0] === LEAF_V2;
  const preimage = v2 ? b.subarray(LEAF_FIXED) : b.subarray(8);
  let d: ReturnType<typeof decodeModelLeaf>;
  try {
    if (b.length < (v2 ? LEAF_FIXED : 8)) throw new RangeError(`${b.length} bytes, shorter than its header`);
    d = decodeModelLeaf(preimage);
  } catch (e) {
    // decodeModelLeaf's RangeError: the bytes, not the caller, are wrong (StoreRecordError).
    throw new StoreRecordError(index, "leaf record", e);
  }
  return {
    index,
    kind: d.kind,
    deviceId: d.deviceId,
    timestampUs: d.timestampUs,
    receivedUs: v2 ? readU64(b, 1) : readU64(b, 0),
    preimage,
    hash: v2 ? b.subarray(9, 41) : leafFromPreimage(preimage),
  };
}

/**
 * Decodes an `E` value this process wrote (`appendLeaf` validated the preimage strictly): the
 * same result as {@link decodeLeaf} without re-validating it. For the sealer's reads of the
 * in-memory tail (tail.ts): the strict decode there was 6 % of the bytes the gateway allocated
 * (a sampling allocation profile of bench e2e at 8,000 frames/s, an INFERENCE leaf per frame).
 * Older value formats go through decodeLeaf.
 */
export function decodeOwnLeaf(index: number, b: Buffer): StoredLeaf {
  if (b[0] !== LEAF_V2) return decodeLeaf(index, b);
  const preimage = b.subarray(LEAF_FIXED);
  const tag = preimage[0];
  return {
    index,
    kind: tag === LeafKind.Inference ? "inference" : tag === LeafKind.Alert ? "alert" : "sensor-fault",
    deviceId: modelLeafDeviceId(preimage),
    timestampUs: modelLeafTimestampUs(preimage),
    receivedUs: readU64(b, 1),
    preimage,
    hash: b.subarray(9, 41),
  };
}

/** The leaf hash stored in an `E` value, without decoding the preimage. */
export function storedLeafHash(b: Buffer): Uint8Array {
  return b[0] === LEAF_V2 ? b.subarray(9, 41) : leafFromPreimage(b.subarray(8));
}

/**
 * Validates a leaf record's structure (RangeError when invalid): the preimage must decode and
 * match kind / device / timestamp, and the hash must be 32 bytes. The hash is the producer's;
 * `vigil store check` recomputes it.
 */
export function checkLeaf(l: LeafRecord): void {
  if (!(l.preimage instanceof Uint8Array)) throw new RangeError("leaf preimage must be a Uint8Array");
  if (!(l.hash instanceof Uint8Array) || l.hash.length !== 32)
    throw new RangeError("leaf hash must be 32 bytes");
  const d = decodeModelLeaf(l.preimage);
  if (d.kind !== l.kind)
    throw new RangeError(`leaf kind "${l.kind}" differs from its preimage tag (${d.kind})`);
  if (d.deviceId !== l.deviceId >>> 0) throw new RangeError("leaf deviceId differs from its preimage");
  if (d.timestampUs !== l.timestampUs) throw new RangeError("leaf timestampUs differs from its preimage");
}

/** `S` value for the newest record of a device in a batch (see decodeDeviceSeq). */
export function encodeDeviceSeq(r: FrameRecord): Buffer {
  if (r.boot === undefined) return u64Value(r.seq);
  const b = Buffer.allocUnsafe(20);
  writeU64(b, 0, r.seq);
  b.writeUInt32BE(r.boot.id >>> 0, 8);
  writeU64(b, 12, r.boot.base);
  return b;
}
