// An independent offline verifier of `vigil-receipt/1` receipts and `vigil-bundle/1` bundles,
// written from gateway/src/attest/RECEIPTS.md (and hardware/PROTOCOL.md for the frame bytes)
// alone, without reading the gateway's code: a check that the document is exact. It imports only
// third-party libraries (lint:deps forbids anything of ours), hashes EIP-712 by hand from the
// document's type strings, and runs the checks of RECEIPTS.md "Checks, in order" 1–9 with the
// document's reason codes. The online checks (registry events, anchor) are not implemented.
// Where it first decided otherwise than the gateway (empty `0x`, integers written -0, a severity
// above 255) the document had been silent; it now says so ("The offline checks in detail").
import { keccak_256 } from "@noble/hashes/sha3.js";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { p256 } from "@noble/curves/nist.js";

export type Reason =
  | "MALFORMED"
  | "TAMPERED_FRAME"
  | "TAMPERED_LEAF"
  | "BAD_PROOF"
  | "TAMPERED_HEADER"
  | "BAD_SIGNATURE"
  | "WRONG_SIGNER"
  | "WRONG_CHAIN"
  | "WRONG_REGISTRY"
  | "WRONG_GATEWAY"
  | "ANCHOR_MISMATCH"
  | "DUPLICATE";

/** What the auditor trusts ("What a verifier trusts"); `signer` is `--signer KEY`. */
export interface Trust {
  chainId?: number;
  registry?: string;
  gatewayId?: string;
  signer?: string;
}

export type Result = { ok: true } | { ok: false; reason: Reason; message: string };

class Fail extends Error {
  constructor(
    readonly reason: Reason,
    message: string,
  ) {
    super(message);
  }
}
function fail(reason: Reason, message: string): never {
  throw new Fail(reason, message);
}

// ---------------------------------------------------------------- bytes

const enc = new TextEncoder();
const keccak = (...parts: Uint8Array[]): Uint8Array => keccak_256(concat(...parts));

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
const toHex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const equal = (a: Uint8Array, b: Uint8Array): boolean =>
  a.length === b.length && a.every((x, i) => x === b[i]);
/** An unsigned integer as `size` big-endian bytes (uint64 → 8, uint256 → 32 for ABI words). */
function be(value: number | bigint, size: number): Uint8Array {
  const out = new Uint8Array(size);
  let v = BigInt(value);
  for (let i = size - 1; i >= 0; i--, v >>= 8n) out[i] = Number(v & 0xffn);
  return out;
}
const word = (value: number | bigint): Uint8Array => be(value, 32);
const isZero = (b: Uint8Array): boolean => b.every((x) => x === 0);

/** CRC-32/ISO-HDLC (hardware/PROTOCOL.md "Frame layout"). */
function crc32(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const b of bytes) {
    crc ^= b;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

// ---------------------------------------------------------------- check 1: JSON shape

type Json = Record<string, unknown>;
const MAX_SAFE = Number.MAX_SAFE_INTEGER;

function obj(v: unknown, path: string): Json {
  if (typeof v !== "object" || v === null || Array.isArray(v)) fail("MALFORMED", `${path}: not an object`);
  return v as Json;
}
/** Hex bytes: lowercase `0x`, digits of either case, an even number of them, at least one byte. */
function hex(v: unknown, path: string, length?: number): Uint8Array {
  if (typeof v !== "string" || !/^0x(?:[0-9a-fA-F]{2})+$/.test(v))
    fail("MALFORMED", `${path}: not 0x-hex bytes`);
  const bytes = Uint8Array.from(Buffer.from(v.slice(2), "hex"));
  if (length !== undefined && bytes.length !== length) fail("MALFORMED", `${path}: not ${length} bytes`);
  return bytes;
}
/** A safe non-negative integer, not written −0. */
function uint(v: unknown, path: string, max = MAX_SAFE): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0 || v > max || Object.is(v, -0))
    fail("MALFORMED", `${path}: not an integer in [0, ${max}]`);
  return v;
}
function str(v: unknown, path: string): string {
  if (typeof v !== "string") fail("MALFORMED", `${path}: not a string`);
  return v;
}
function f32json(v: unknown, path: string): number | null {
  if (v !== null && typeof v !== "number") fail("MALFORMED", `${path}: not a number or null`);
  return v;
}
function deviceId(v: unknown, path: string): string {
  if (typeof v !== "string" || !/^[0-9a-f]{8}$/.test(v))
    fail("MALFORMED", `${path}: not 8 lowercase hex digits`);
  return v;
}
function optional<T>(
  o: Json,
  key: string,
  parse: (v: unknown, path: string) => T,
  path: string,
): T | undefined {
  return key in o ? parse(o[key], `${path}.${key}`) : undefined;
}
const nullable =
  <T>(parse: (v: unknown, path: string) => T) =>
  (v: unknown, path: string): T | null =>
    v === null ? null : parse(v, path);

interface Entry {
  kind: "inference" | "alert" | "sensor-fault";
  preimage: Uint8Array;
  deviceId: string;
  timestampUs: number;
  modelHash: Uint8Array;
  inputWindowHash: Uint8Array;
  outputs?: (number | null)[];
  severity?: number;
  rule?: string;
  score?: number | null;
}
interface Frame {
  deviceId: string;
  seq: number;
  receivedUs: number;
  timestampUs: number;
  raw: Uint8Array;
}
interface Receipt {
  frame?: Frame;
  entry?: Entry;
  leaf: Uint8Array;
  leafIndex: number;
  proof: Uint8Array[];
  header: {
    gatewayId: Uint8Array;
    seq: number;
    prevHead: Uint8Array;
    root: Uint8Array;
    leafCount: number;
    firstTimestamp: number;
    lastTimestamp: number;
    modelHash: Uint8Array;
  };
  head: Uint8Array;
  digest: Uint8Array;
  signature: Uint8Array;
  signer: { keyType: "secp256k1" | "p256"; publicKey: Uint8Array; address?: string };
  domain: { name: string; version: string; chainId: number; verifyingContract: Uint8Array };
  anchor: {
    chainId: number;
    contract: Uint8Array;
    txHash: Uint8Array | null;
    blockNumber: number | null;
    blockHash: Uint8Array | null | undefined;
  } | null;
}

const ENTRY_KEY = { inference: "inference", alert: "alert", "sensor-fault": "sensorFault" } as const;

function parseReceipt(v: unknown): Receipt {
  const r = obj(v, "receipt");
  if (r.format !== "vigil-receipt/1") fail("MALFORMED", `format: not "vigil-receipt/1"`);
  const kind = r.kind;
  if (kind !== "frame" && kind !== "inference" && kind !== "alert" && kind !== "sensor-fault")
    fail("MALFORMED", "kind: not frame, inference, alert or sensor-fault");

  let frame: Frame | undefined;
  let entry: Entry | undefined;
  if (kind === "frame") {
    const f = obj(r.frame, "frame");
    uint(f.index, "frame.index");
    optional(
      f,
      "clockUnverified",
      (x, p) => (typeof x === "boolean" ? x : fail("MALFORMED", `${p}: not a boolean`)),
      "frame",
    );
    frame = {
      deviceId: deviceId(f.deviceId, "frame.deviceId"),
      seq: uint(f.seq, "frame.seq"),
      receivedUs: uint(f.receivedUs, "frame.receivedUs"),
      timestampUs: uint(f.timestampUs, "frame.timestampUs"),
      raw: hex(f.raw, "frame.raw"),
    };
  } else {
    const key = ENTRY_KEY[kind];
    const e = obj(r[key], key);
    uint(e.index, `${key}.index`);
    entry = {
      kind,
      preimage: hex(e.preimage, `${key}.preimage`),
      deviceId: deviceId(e.deviceId, `${key}.deviceId`),
      timestampUs: uint(e.timestampUs, `${key}.timestampUs`),
      modelHash: hex(e.modelHash, `${key}.modelHash`, 32),
      inputWindowHash: hex(e.inputWindowHash, `${key}.inputWindowHash`, 32),
    };
    if (kind === "inference") {
      if (!Array.isArray(e.outputs)) fail("MALFORMED", `${key}.outputs: not an array`);
      entry.outputs = e.outputs.map((x, i) => f32json(x, `${key}.outputs[${i}]`));
    } else {
      entry.severity = uint(e.severity, `${key}.severity`); // a u8 in the preimage: compared there
      entry.rule = str(e.rule, `${key}.rule`);
      entry.score = f32json(e.score, `${key}.score`);
    }
  }

  if (!Array.isArray(r.proof)) fail("MALFORMED", "proof: not an array");
  const b = obj(r.batch, "batch");
  const h = obj(b.header, "batch.header");
  const s = obj(b.signer, "batch.signer");
  const d = obj(b.domain, "batch.domain");
  if (s.keyType !== "secp256k1" && s.keyType !== "p256")
    fail("MALFORMED", `batch.signer.keyType: not "secp256k1" or "p256"`);
  const address = optional(s, "address", (x, p) => (hex(x, p, 20), x as string), "batch.signer");
  uint(b.sealedAtUs, "batch.sealedAtUs");

  let anchor: Receipt["anchor"] = null;
  if (r.anchor !== null) {
    const a = obj(r.anchor, "anchor");
    optional(
      a,
      "final",
      (x, p) => (typeof x === "boolean" ? x : fail("MALFORMED", `${p}: not a boolean`)),
      "anchor",
    );
    uint(a.confirmations, "anchor.confirmations");
    uint(a.anchoredAtUs, "anchor.anchoredAtUs");
    anchor = {
      chainId: uint(a.chainId, "anchor.chainId"),
      contract: hex(a.contract, "anchor.contract", 20),
      txHash: nullable((x, p) => hex(x, p, 32))(a.txHash, "anchor.txHash"),
      blockNumber: nullable(uint)(a.blockNumber, "anchor.blockNumber"),
      blockHash: optional(
        a,
        "blockHash",
        nullable((x, p) => hex(x, p, 32)),
        "anchor",
      ),
    };
  }

  return {
    ...(frame ? { frame } : {}),
    ...(entry ? { entry } : {}),
    leaf: hex(r.leaf, "leaf", 32),
    leafIndex: uint(r.leafIndex, "leafIndex"),
    proof: r.proof.map((p, i) => hex(p, `proof[${i}]`, 32)),
    header: {
      gatewayId: hex(h.gatewayId, "header.gatewayId", 32),
      seq: uint(h.seq, "header.seq"),
      prevHead: hex(h.prevHead, "header.prevHead", 32),
      root: hex(h.root, "header.root", 32),
      leafCount: uint(h.leafCount, "header.leafCount", 2 ** 32 - 1),
      firstTimestamp: uint(h.firstTimestamp, "header.firstTimestamp"),
      lastTimestamp: uint(h.lastTimestamp, "header.lastTimestamp"),
      modelHash: hex(h.modelHash, "header.modelHash", 32),
    },
    head: hex(b.head, "batch.head", 32),
    digest: hex(b.digest, "batch.digest", 32),
    signature: hex(b.signature, "batch.signature"),
    signer: {
      keyType: s.keyType,
      publicKey: hex(s.publicKey, "batch.signer.publicKey"),
      ...(address !== undefined ? { address } : {}),
    },
    domain: {
      name: str(d.name, "domain.name"),
      version: str(d.version, "domain.version"),
      chainId: uint(d.chainId, "domain.chainId"),
      verifyingContract: hex(d.verifyingContract, "domain.verifyingContract", 20),
    },
    anchor,
  };
}

// ---------------------------------------------------------------- check 2: frame / leaf preimage

/** `preimage = tag ‖ body ‖ pad`: pad is one 0x00 when tag ‖ body has even length ("Leaf"). */
const pad = (tagAndBody: Uint8Array): Uint8Array =>
  tagAndBody.length % 2 === 0 ? concat(tagAndBody, new Uint8Array(1)) : tagAndBody;

/** FRAME: 0x01 ‖ seq u64 ‖ receivedUs u64 ‖ raw ‖ pad (big-endian). */
const framePreimage = (f: Frame): Uint8Array =>
  pad(concat(Uint8Array.of(0x01), be(f.seq, 8), be(f.receivedUs, 8), f.raw));

function checkFrame(f: Frame, leaf: Uint8Array): void {
  const raw = f.raw;
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const bad = (why: string): never => fail("TAMPERED_FRAME", `frame.raw: ${why}`);
  // hardware/PROTOCOL.md: version 1, type 2 (DATA), length N ≤ 240, CRC-32 LE over 0..4+N-1.
  if (raw.length < 8) bad("shorter than 8 bytes");
  if (raw[0] !== 0x01) bad("version is not 1");
  if (raw[1] !== 0x02) bad("not a DATA frame");
  const n = dv.getUint16(2, true);
  if (n > 240 || raw.length !== 8 + n) bad("length field disagrees with the bytes");
  if (dv.getUint32(4 + n, true) !== crc32(raw.subarray(0, 4 + n))) bad("CRC-32 mismatch");
  // DATA payload: device_id u32, seq u32, timestamp_us u64, channel_count n (1..32), flags, 4n.
  if (n < 18) bad("DATA payload shorter than 18 bytes");
  const channels = raw[4 + 16]!;
  if (channels < 1 || channels > 32 || n !== 18 + 4 * channels)
    bad("channel count disagrees with the length");
  const timestamp = dv.getBigUint64(12, true);
  if (timestamp > BigInt(MAX_SAFE)) bad("timestamp_us not below 2^53");
  if (dv.getUint32(4, true).toString(16).padStart(8, "0") !== f.deviceId)
    bad("device id is not frame.deviceId");
  if (dv.getUint32(8, true) !== f.seq % 2 ** 32) bad("seq is not frame.seq mod 2^32");
  // frame.timestampUs = receivedUs when the device sent 0.
  const expected = timestamp === 0n ? f.receivedUs : Number(timestamp);
  if (f.timestampUs !== expected) bad("timestamp_us is not frame.timestampUs");
  if (!equal(keccak(framePreimage(f)), leaf)) fail("TAMPERED_FRAME", "keccak256(FRAME preimage) is not leaf");
}

/** A decoded f32 equals its JSON number numerically; JSON `null` stands for NaN and ±Inf. */
const sameF32 = (decoded: number, json: number | null): boolean =>
  Number.isFinite(decoded) ? json === decoded : json === null;

function checkEntry(e: Entry, leaf: Uint8Array): void {
  const p = e.preimage;
  const dv = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const bad = (why: string): never => fail("TAMPERED_LEAF", `preimage: ${why}`);
  const tag = { inference: 0x02, alert: 0x03, "sensor-fault": 0x04 }[e.kind];
  // Common prefix: tag ‖ modelHash 32 ‖ inputWindowHash 32 ‖ deviceId u32 ‖ timestampUs u64 = 77 bytes.
  if (p.length < 79) bad("too short");
  if (p[0] !== tag) bad(`tag is not 0x0${tag}`);
  let end: number; // length of tag ‖ body
  if (e.kind === "inference") {
    const count = dv.getUint16(77);
    end = 79 + 4 * count;
    if (p.length !== end) bad("length is not 79 + 4 × count"); // always odd: never padded
    const outputs = e.outputs!;
    if (outputs.length !== count) bad("outputs has another count");
    outputs.forEach((o, i) => sameF32(dv.getFloat32(79 + 4 * i), o) || bad(`outputs[${i}] differs`));
  } else {
    const ruleLen = p[78]!;
    if (ruleLen < 1 || ruleLen > 64) bad("ruleLen not 1–64");
    end = 83 + ruleLen;
    const expectedLength = end % 2 === 0 ? end + 1 : end;
    if (p.length !== expectedLength) bad("length is not 83 + ruleLen (+ pad)");
    if (p.length > end && p[end] !== 0) bad("pad is not 0x00");
    const ruleBytes = p.subarray(79, 79 + ruleLen);
    if (!ruleBytes.every((c) => c >= 0x21 && c <= 0x7e)) bad("rule is not ASCII 0x21–0x7e");
    if (p[77] !== e.severity) bad("severity differs");
    if (Buffer.from(ruleBytes).toString("latin1") !== e.rule) bad("rule differs");
    if (!sameF32(dv.getFloat32(79 + ruleLen), e.score!)) bad("score differs");
  }
  if (!equal(p.subarray(1, 33), e.modelHash)) bad("modelHash differs");
  if (!equal(p.subarray(33, 65), e.inputWindowHash)) bad("inputWindowHash differs");
  if (dv.getUint32(65).toString(16).padStart(8, "0") !== e.deviceId) bad("deviceId differs");
  if (dv.getBigUint64(69) !== BigInt(e.timestampUs)) bad("timestampUs differs");
  if (!equal(keccak(p), leaf)) fail("TAMPERED_LEAF", "keccak256(preimage) is not leaf");
}

// ---------------------------------------------------------------- check 3: Merkle proof

/** ⌊log2(2n − 1 − i)⌋, exact with integers: the bit length of 2n − 1 − i, minus 1. */
const proofLength = (n: number, i: number): number => (2 * n - 1 - i).toString(2).length - 1;
/** Commutative pair hashing, keccak256(min(a,b) ‖ max(a,b)), as OpenZeppelin MerkleProof.processProof. */
const processProof = (leaf: Uint8Array, proof: Uint8Array[]): Uint8Array =>
  proof.reduce((a, b) => (Buffer.compare(a, b) <= 0 ? keccak(a, b) : keccak(b, a)), leaf);

function checkProof(r: Receipt): void {
  const n = r.header.leafCount;
  if (r.leafIndex >= n) fail("BAD_PROOF", "leafIndex not below leafCount");
  const expected = proofLength(n, r.leafIndex);
  if (r.proof.length !== expected) fail("BAD_PROOF", `proof has ${r.proof.length} elements, not ${expected}`);
  if (!equal(processProof(r.leaf, r.proof), r.header.root))
    fail("BAD_PROOF", "leaf + proof do not give header.root");
}

// ---------------------------------------------------------------- check 4: header, EIP-712

const DOMAIN_TYPE = keccak(
  enc.encode("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
);
const HEADER_TYPE = keccak(
  enc.encode(
    "BatchHeader(bytes32 gatewayId,uint64 seq,bytes32 prevHead,bytes32 root,uint32 leafCount," +
      "uint64 firstTimestamp,uint64 lastTimestamp,bytes32 modelHash)",
  ),
);

/** EIP-712 hashStruct(header): typeHash ‖ each field as one 32-byte ABI word. */
export function hashHeader(h: Receipt["header"]): Uint8Array {
  return keccak(
    HEADER_TYPE,
    h.gatewayId,
    word(h.seq),
    h.prevHead,
    h.root,
    word(h.leafCount),
    word(h.firstTimestamp),
    word(h.lastTimestamp),
    h.modelHash,
  );
}
/** EIP-712 domain separator: strings hashed, address left-padded to 32 bytes. */
export function domainSeparator(d: Receipt["domain"]): Uint8Array {
  return keccak(
    DOMAIN_TYPE,
    keccak(enc.encode(d.name)),
    keccak(enc.encode(d.version)),
    word(d.chainId),
    concat(new Uint8Array(12), d.verifyingContract),
  );
}

function checkHeader(r: Receipt): void {
  const bad = (why: string): never => fail("TAMPERED_HEADER", why);
  if (r.domain.name !== "VigilRegistry" || r.domain.version !== "1")
    bad("domain is not VigilRegistry version 1");
  const structHash = hashHeader(r.header);
  if (!equal(keccak(Uint8Array.of(0x19, 0x01), domainSeparator(r.domain), structHash), r.digest))
    bad("header + domain do not hash to digest");
  if (!equal(keccak(r.header.prevHead, structHash), r.head))
    bad("head is not keccak256(prevHead ‖ hashStruct)");
  const t = r.frame ? r.frame.timestampUs : r.entry!.timestampUs;
  if (t < r.header.firstTimestamp || t > r.header.lastTimestamp)
    bad("entry timestamp outside [firstTimestamp, lastTimestamp]");
  if (r.entry && !isZero(r.header.modelHash) && !equal(r.header.modelHash, r.entry.modelHash))
    bad("header.modelHash is not the entry's modelHash");
}

// ---------------------------------------------------------------- check 5: signature

/** EIP-55 mixed-case checksum of a 20-byte address. */
function checksum(address: Uint8Array): string {
  const lower = toHex(address);
  const hash = toHex(keccak(enc.encode(lower)));
  return "0x" + [...lower].map((c, i) => (parseInt(hash[i]!, 16) >= 8 ? c.toUpperCase() : c)).join("");
}

function checkSignature(r: Receipt): void {
  const bad = (why: string): never => fail("BAD_SIGNATURE", why);
  const { keyType, publicKey, address } = r.signer;
  const sig = r.signature;
  if (keyType === "secp256k1") {
    if (publicKey.length !== 20) bad("secp256k1 publicKey is not a 20-byte address");
    if (address !== undefined) {
      if (!equal(hex(address, "signer.address", 20), publicKey))
        bad("signer.address is not signer.publicKey");
      if (address !== "0x" + toHex(publicKey) && address !== checksum(publicKey))
        bad("signer.address is neither lowercase nor its EIP-55 checksum");
    }
    if (sig.length !== 65) bad("secp256k1 signature is not 65 bytes");
    const v = sig[64]!;
    if (v !== 27 && v !== 28) bad("v is not 27 or 28");
    let recovered: Uint8Array;
    try {
      const s = secp256k1.Signature.fromBytes(sig.subarray(0, 64), "compact");
      if (s.hasHighS()) bad("s is not low");
      const point = s.addRecoveryBit(v - 27).recoverPublicKey(r.digest);
      recovered = keccak(point.toBytes(false).subarray(1)).subarray(12);
    } catch (e) {
      if (e instanceof Fail) throw e;
      return bad(`no key recovers: ${(e as Error).message}`);
    }
    if (!equal(recovered, publicKey)) bad("signature does not recover to signer.publicKey");
  } else {
    if (publicKey.length !== 64) bad("P-256 publicKey is not x‖y, 64 bytes");
    if (address !== undefined) bad("signer.address present for a P-256 key");
    if (sig.length !== 64) bad("P-256 signature is not 64 bytes");
    let ok: boolean;
    try {
      p256.Point.fromBytes(concat(Uint8Array.of(0x04), publicKey)).assertValidity();
      ok = p256.verify(sig, r.digest, concat(Uint8Array.of(0x04), publicKey), { prehash: false, lowS: true });
    } catch (e) {
      return bad(`P-256: ${(e as Error).message}`);
    }
    if (!ok) bad("P-256 signature does not verify (or s is not low)");
  }
}

// ---------------------------------------------------------------- checks 6–8: trust, anchor

function checkTrust(r: Receipt, t: Trust): void {
  if (t.signer !== undefined) {
    const key = hex(t.signer, "--signer"); // 20 bytes: secp256k1 address; 64 bytes: P-256 x‖y
    const keyType = key.length === 20 ? "secp256k1" : key.length === 64 ? "p256" : undefined;
    if (keyType !== r.signer.keyType || !equal(key, r.signer.publicKey))
      fail("WRONG_SIGNER", "signer is not the pinned key");
  }
  if (t.chainId !== undefined && r.domain.chainId !== t.chainId)
    fail("WRONG_CHAIN", "domain.chainId is not trusted");
  if (t.registry !== undefined && !equal(r.domain.verifyingContract, hex(t.registry, "registry", 20)))
    fail("WRONG_REGISTRY", "domain.verifyingContract is not the trusted registry");
  if (t.gatewayId !== undefined && !equal(r.header.gatewayId, hex(t.gatewayId, "gateway", 32)))
    fail("WRONG_GATEWAY", "header.gatewayId is not the trusted gateway");
  const a = r.anchor;
  if (a) {
    if (a.chainId !== r.domain.chainId || !equal(a.contract, r.domain.verifyingContract))
      fail("ANCHOR_MISMATCH", "anchor is not the signed domain's chain and registry");
    if (a.txHash === null && (a.blockNumber !== null || (a.blockHash ?? null) !== null))
      fail("ANCHOR_MISMATCH", "anchor names a block without a txHash");
  }
}

// ---------------------------------------------------------------- receipts and bundles

/** Checks 1–8 of one receipt, in order; the first failure decides the reason. */
export function verifyReceipt(receipt: unknown, trust: Trust = {}): Result {
  try {
    const r = parseReceipt(receipt);
    if (r.frame) checkFrame(r.frame, r.leaf);
    else checkEntry(r.entry!, r.leaf);
    checkProof(r);
    checkHeader(r);
    checkSignature(r);
    checkTrust(r, trust);
    return { ok: true };
  } catch (e) {
    if (e instanceof Fail) return { ok: false, reason: e.reason, message: e.message };
    throw e;
  }
}

/** The intermediate values of a well-formed receipt, as this verifier computes them (for vectors). */
export function intermediates(receipt: unknown): Record<string, string | number> {
  const r = parseReceipt(receipt);
  const preimage = r.frame ? framePreimage(r.frame) : r.entry!.preimage;
  const structHash = hashHeader(r.header);
  const separator = domainSeparator(r.domain);
  const h = (b: Uint8Array): string => "0x" + toHex(b);
  return {
    leafPreimage: h(preimage),
    leaf: h(keccak(preimage)),
    proofLength: proofLength(r.header.leafCount, r.leafIndex),
    root: h(processProof(keccak(preimage), r.proof)),
    structHash: h(structHash),
    domainSeparator: h(separator),
    digest: h(keccak(Uint8Array.of(0x19, 0x01), separator, structHash)),
    head: h(keccak(r.header.prevHead, structHash)),
  };
}

/** A bundle passes when it holds receipts and each passes; check 9 flags repeats of a passing one. */
export function verifyBundle(bundle: unknown, trust: Trust = {}): { ok: boolean; results: Result[] } {
  const b = bundle as Json | null;
  if (b?.format !== "vigil-bundle/1" || !Array.isArray(b.receipts)) return { ok: false, results: [] };
  const seen = new Map<string, number>(); // leaf ‖ digest (lowercase) → first passing position
  const results = b.receipts.map((receipt, i): Result => {
    const result = verifyReceipt(receipt, trust);
    if (!result.ok) return result;
    const r = receipt as { leaf: string; batch: { digest: string } };
    const key = `${r.leaf}${r.batch.digest}`.toLowerCase();
    const first = seen.get(key);
    if (first !== undefined)
      return { ok: false, reason: "DUPLICATE", message: `receipts[${i}] repeats receipts[${first}]` };
    seen.set(key, i);
    return result;
  });
  return { ok: results.length > 0 && results.every((r) => r.ok), results };
}
