// Receipts that probe single statements of RECEIPTS.md, each with the verdict the document gives.
// Altered receipts are re-sealed as a one-leaf batch (root = leaf) and re-signed with the vectors'
// test keys, so that only the statement under test can fail. The EIP-712 digest here comes from
// ethers' TypedDataEncoder, not from receipt-verifier.ts: a second, independent computation.
import { readFileSync } from "node:fs";
import { crc32 } from "node:zlib";
import { p256 } from "@noble/curves/nist.js";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import {
  SigningKey,
  TypedDataEncoder,
  getAddress,
  getBytes,
  hexlify,
  keccak256,
  toBeHex,
  zeroPadValue,
} from "ethers";
import type { Reason, Trust } from "./receipt-verifier.ts";

/* eslint-disable @typescript-eslint/no-explicit-any -- receipts are edited as plain JSON here */
type J = any;

interface Vectors {
  keys: Record<"secp256k1" | "p256", { privateKey: string; publicKey: string }>;
  trust: { chainId: number; registry: string; gatewayId: string };
  vectors: { name: string; receipt: J }[];
}
export const V = JSON.parse(
  readFileSync(new URL("../vectors/receipts.json", import.meta.url), "utf8"),
) as Vectors;

export interface Case {
  name: string;
  /** a receipt, or a bundle (format vigil-bundle/1) */
  input: J;
  trust: Trust;
  /** "pass", or the reason of the (only, or listed) failing receipt; for bundles one per receipt */
  expect: "pass" | Reason | ("pass" | Reason)[];
  message?: string;
}

const clone = (x: J): J => structuredClone(x);
const base = (name: string): J => clone(V.vectors.find((v) => v.name === name)!.receipt);
const entryKey = (r: J): string =>
  ({ frame: "frame", inference: "inference", alert: "alert" })[r.kind as string] ?? "sensorFault";

const TYPES = {
  BatchHeader: [
    { name: "gatewayId", type: "bytes32" },
    { name: "seq", type: "uint64" },
    { name: "prevHead", type: "bytes32" },
    { name: "root", type: "bytes32" },
    { name: "leafCount", type: "uint32" },
    { name: "firstTimestamp", type: "uint64" },
    { name: "lastTimestamp", type: "uint64" },
    { name: "modelHash", type: "bytes32" },
  ],
};

function u64(n: number): string {
  return zeroPadValue(toBeHex(n), 8);
}
function framePreimage(f: J): Uint8Array {
  const body = getBytes("0x01" + u64(f.seq).slice(2) + u64(f.receivedUs).slice(2) + f.raw.slice(2));
  return body.length % 2 === 0 ? new Uint8Array([...body, 0]) : body;
}

/** Re-seal `r` as a batch of one leaf and sign it with the vectors' key of its key type. */
export function reseal(r: J): J {
  const leaf = keccak256(r.kind === "frame" ? framePreimage(r.frame) : r[entryKey(r)].preimage);
  r.leaf = leaf;
  r.leafIndex = 0;
  r.proof = [];
  Object.assign(r.batch.header, { root: leaf, leafCount: 1 });
  const d = r.batch.domain;
  const domain = {
    name: d.name,
    version: d.version,
    chainId: d.chainId,
    verifyingContract: d.verifyingContract,
  };
  const structHash = TypedDataEncoder.hashStruct("BatchHeader", TYPES, r.batch.header);
  r.batch.digest = TypedDataEncoder.hash(domain, TYPES, r.batch.header);
  r.batch.head = keccak256(r.batch.header.prevHead + structHash.slice(2));
  const type = r.batch.signer.keyType as "secp256k1" | "p256";
  const key = V.keys[type].privateKey;
  r.batch.signature =
    type === "secp256k1"
      ? new SigningKey(key).sign(r.batch.digest).serialized
      : hexlify(p256.sign(getBytes(r.batch.digest), getBytes(key), { prehash: false, lowS: true }));
  return r;
}

/** The alert vector with its preimage rebuilt from `f` (and its JSON fields set to match). */
function alertWith(f: { rule?: string; severity?: number; score?: Uint8Array; pad?: string }): J {
  const r = base("alert-secp256k1");
  const rule = f.rule ?? r.alert.rule;
  const p = getBytes(r.alert.preimage).subarray(0, 77);
  const score =
    f.score ?? getBytes(r.alert.preimage).subarray(79 + r.alert.rule.length, 83 + r.alert.rule.length);
  let pre =
    hexlify(p) + toBeHex(f.severity ?? r.alert.severity, 1).slice(2) + toBeHex(rule.length, 1).slice(2);
  pre += Buffer.from(rule, "latin1").toString("hex") + hexlify(score).slice(2);
  pre += f.pad ?? ((83 + rule.length) % 2 === 0 ? "00" : "");
  Object.assign(r.alert, { preimage: pre, rule, severity: f.severity ?? r.alert.severity });
  return r;
}
const f32be = (x: number): Uint8Array => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setFloat32(0, x);
  return b;
};

/** A DATA frame (hardware/PROTOCOL.md) of one channel. */
function dataFrame(deviceId: number, seq: number, timestampUs: number, value: number): string {
  const b = Buffer.alloc(4 + 22 + 4);
  b.writeUInt8(1, 0);
  b.writeUInt8(2, 1);
  b.writeUInt16LE(22, 2);
  b.writeUInt32LE(deviceId, 4);
  b.writeUInt32LE(seq >>> 0, 8);
  b.writeBigUInt64LE(BigInt(timestampUs), 12);
  b.writeUInt8(1, 20);
  b.writeFloatLE(value, 22);
  b.writeUInt32LE(crc32(b.subarray(0, 26)), 26);
  return "0x" + b.toString("hex");
}
function frameWith(f: {
  seq: number;
  rawSeq: number;
  timestampUs: number;
  deviceTs: number;
  receivedUs: number;
}): J {
  const r = base("frame-secp256k1");
  Object.assign(r.frame, {
    seq: f.seq,
    receivedUs: f.receivedUs,
    timestampUs: f.timestampUs,
    raw: dataFrame(0x2a, f.rawSeq, f.deviceTs, 1.5),
  });
  return r;
}

const T = V.trust;
const secp = V.keys.secp256k1.publicKey;
function highS(r: J): J {
  const N = (r.batch.signer.keyType === "p256" ? p256 : secp256k1).Point.CURVE().n;
  const sig = getBytes(r.batch.signature);
  const s = BigInt(hexlify(sig.subarray(32, 64)));
  const flipped = getBytes(toBeHex(N - s, 32));
  sig.set(flipped, 32);
  if (sig.length === 65) sig[64] = sig[64] === 27 ? 28 : 27; // the same key recovers from (r, n − s, v ^ 1)
  r.batch.signature = hexlify(sig);
  return r;
}

export function cases(): Case[] {
  const c: Case[] = [];
  const add = (name: string, input: J, expect: Case["expect"], trust: Trust = T, message?: string): void => {
    c.push({ name, input, trust, expect, ...(message ? { message } : {}) });
  };

  // --- hex and JSON shape
  let r = base("alert-secp256k1");
  r.leaf = r.leaf.toUpperCase().replace("0X", "0x");
  r.batch.header.root = r.batch.header.root.toUpperCase().replace("0X", "0x");
  add("hex digits of either case are accepted", r, "pass");
  r = base("alert-secp256k1");
  r.leaf = r.leaf.replace("0x", "0X");
  add("a 0X prefix is MALFORMED", r, "MALFORMED");
  r = base("frame-secp256k1");
  r.frame.deviceId = "0000002A";
  add("deviceId with an uppercase digit is MALFORMED", r, "MALFORMED");
  r = base("alert-secp256k1");
  r.batch.header.leafCount = 2 ** 32;
  add("header.leafCount 2^32 is MALFORMED", r, "MALFORMED");
  r = base("alert-secp256k1");
  r.batch.sealedAtUs = 2 ** 53;
  add("an integer 2^53 is MALFORMED", r, "MALFORMED");
  r = base("inference-secp256k1");
  r.inference.outputs[0] = "1";
  add("an output that is a string is MALFORMED", r, "MALFORMED");
  r = base("alert-secp256k1");
  r.format = "vigil-receipt/2";
  add("another format is MALFORMED", r, "MALFORMED");

  // --- informational and unknown fields
  r = base("frame-secp256k1");
  Object.assign(r.frame, { index: 99, clockUnverified: true });
  r.batch.sealedAtUs = 1;
  r.comment = "a field this document does not name";
  add("informational fields and unknown fields do not matter", r, "pass");
  r = base("alert-secp256k1");
  r.batch.domain.salt = "0x" + "11".repeat(32);
  add("a domain.salt is ignored, not hashed", r, "pass");
  r = base("alert-secp256k1-anchored");
  delete r.anchor.final;
  delete r.anchor.blockHash;
  add("an old anchor without final and blockHash passes", r, "pass");
  r = base("alert-secp256k1-anchored");
  r.anchor.final = false;
  r.anchor.confirmations = 0;
  add("anchor.final and confirmations are informational", r, "pass");
  r = base("alert-secp256k1-anchored");
  r.anchor.txHash = null;
  r.anchor.blockNumber = null;
  add("an anchor with a null blockNumber and a blockHash but no txHash", r, "ANCHOR_MISMATCH");

  // --- frames
  add(
    "a device timestamp 0: frame.timestampUs = receivedUs",
    reseal(
      frameWith({
        seq: 7,
        rawSeq: 7,
        deviceTs: 0,
        receivedUs: 1764000000020000,
        timestampUs: 1764000000020000,
      }),
    ),
    "pass",
  );
  add(
    "a device timestamp 0 with frame.timestampUs ≠ receivedUs",
    reseal(
      frameWith({
        seq: 7,
        rawSeq: 7,
        deviceTs: 0,
        receivedUs: 1764000000020000,
        timestampUs: 1764000000020001,
      }),
    ),
    "TAMPERED_FRAME",
  );
  add(
    "an extended seq: u32 seq + 2^32 × boots",
    reseal(
      frameWith({
        seq: 2 ** 33 + 5,
        rawSeq: 5,
        deviceTs: 1764000000020000,
        receivedUs: 1764000000020001,
        timestampUs: 1764000000020000,
      }),
    ),
    "pass",
  );
  add(
    "an extended seq that is not the u32 seq mod 2^32",
    reseal(
      frameWith({
        seq: 2 ** 33 + 6,
        rawSeq: 5,
        deviceTs: 1764000000020000,
        receivedUs: 1764000000020001,
        timestampUs: 1764000000020000,
      }),
    ),
    "TAMPERED_FRAME",
  );

  // --- leaf preimages
  add("an alert rule of odd length: pad byte present", reseal(alertWith({ rule: "rul" })), "pass");
  add("a pad byte that is not 0x00", reseal(alertWith({ rule: "rul", pad: "01" })), "TAMPERED_LEAF");
  add("a missing pad byte", reseal(alertWith({ rule: "rul", pad: "" })), "TAMPERED_LEAF");
  add("a pad byte where none belongs", reseal(alertWith({ rule: "rule", pad: "00" })), "TAMPERED_LEAF");
  add("a rule with a space", reseal(alertWith({ rule: "a b" })), "TAMPERED_LEAF");
  add("a rule of 64 bytes", reseal(alertWith({ rule: "r".repeat(64) })), "pass");
  add("a rule of 65 bytes", reseal(alertWith({ rule: "r".repeat(65) })), "TAMPERED_LEAF");
  r = reseal(alertWith({ score: f32be(NaN) }));
  r.alert.score = null;
  add("score NaN is null", r, "pass");
  r = reseal(alertWith({ score: f32be(-Infinity) }));
  r.alert.score = null;
  add("score −Inf is null", r, "pass");
  r = reseal(alertWith({ score: f32be(NaN) }));
  r.alert.score = 0;
  add("score NaN written as 0", r, "TAMPERED_LEAF");
  r = reseal(alertWith({ score: f32be(-0) }));
  r.alert.score = 0;
  add("score −0 is written 0", r, "pass");
  r = base("alert-secp256k1");
  r.alert.score = 12.500001;
  add("a score that differs from the preimage's f32", r, "TAMPERED_LEAF");
  r = base("inference-secp256k1");
  r.inference.outputs.push(1);
  add("one output more than the preimage's count", r, "TAMPERED_LEAF");
  r = base("alert-secp256k1");
  r.alert.rule = "failure:clear";
  add("a rule that differs from the preimage's", r, "TAMPERED_LEAF");

  r = base("alert-secp256k1");
  r.leafIndex = 7; // leaf 6 of 7 and a leaf 7 would both have 2 proof elements
  add("leafIndex = leafCount with a proof of the right length", r, "BAD_PROOF");

  // --- header
  r = base("alert-secp256k1");
  r.batch.domain.name = "VigilRegistryX";
  add("domain.name other than VigilRegistry (re-signed)", reseal(r), "TAMPERED_HEADER");
  r = base("alert-secp256k1");
  r.batch.header.lastTimestamp = r.alert.timestampUs - 1;
  r.batch.header.firstTimestamp = r.alert.timestampUs - 2;
  add("an entry timestamp after lastTimestamp (re-signed)", reseal(r), "TAMPERED_HEADER");
  r = base("alert-secp256k1");
  r.batch.header.modelHash = "0x" + "ee".repeat(32);
  add("a non-zero header.modelHash that is not the alert's (re-signed)", reseal(r), "TAMPERED_HEADER");
  r = base("alert-secp256k1");
  r.batch.header.modelHash = "0x" + "00".repeat(32);
  add("a zero header.modelHash (re-signed)", reseal(r), "pass");
  r = base("alert-secp256k1");
  r.batch.head = "0x" + "00".repeat(32);
  add("a head that is not keccak256(prevHead ‖ hashStruct)", r, "TAMPERED_HEADER");

  // --- signatures
  r = base("alert-secp256k1");
  r.batch.signer.address = getAddress(secp);
  add("signer.address in its EIP-55 checksum", r, "pass");
  r = base("alert-secp256k1");
  r.batch.signer.address = "0x" + secp.slice(2).toUpperCase();
  add("signer.address all uppercase (not the checksum)", r, "BAD_SIGNATURE");
  r = base("alert-secp256k1");
  delete r.batch.signer.address;
  add("signer.address absent for secp256k1", r, "pass");
  r = base("alert-p256");
  r.batch.signer.address = secp;
  add("signer.address present for P-256", r, "BAD_SIGNATURE");
  add("a high-s secp256k1 signature", highS(base("alert-secp256k1")), "BAD_SIGNATURE");
  add("a high-s P-256 signature", highS(base("alert-p256")), "BAD_SIGNATURE");
  r = base("alert-secp256k1");
  r.batch.signature = r.batch.signature.slice(0, -2) + "00";
  add("v = 0", r, "BAD_SIGNATURE");
  r = base("alert-secp256k1");
  r.batch.signature = r.batch.signature.slice(0, -2);
  add("a 64-byte secp256k1 signature", r, "BAD_SIGNATURE");
  r = base("alert-p256");
  r.batch.signer.publicKey = "0x" + "01".repeat(64);
  add("a P-256 publicKey that is not a curve point", r, "BAD_SIGNATURE");

  // --- trust
  add("pinned signer", base("alert-secp256k1"), "pass", { ...T, signer: secp });
  add("pinned signer in another case", base("alert-secp256k1"), "pass", { ...T, signer: getAddress(secp) });
  add("another pinned signer", base("alert-secp256k1"), "WRONG_SIGNER", {
    ...T,
    signer: V.keys.p256.publicKey,
  });
  add("another chain", base("alert-secp256k1"), "WRONG_CHAIN", { ...T, chainId: 1 });
  add("the registry in EIP-55 case", base("alert-secp256k1"), "pass", {
    ...T,
    registry: getAddress(T.registry),
  });
  add("another registry", base("alert-secp256k1"), "WRONG_REGISTRY", {
    ...T,
    registry: "0x" + "22".repeat(20),
  });
  add("another gateway", base("alert-secp256k1"), "WRONG_GATEWAY", {
    ...T,
    gatewayId: "0x" + "33".repeat(32),
  });

  // --- where the document leaves the verdict to be inferred (see the report of this check)
  r = base("alert-secp256k1");
  r.batch.signer.keyType = "ed25519";
  add("an unknown signer.keyType is MALFORMED", r, "MALFORMED");
  r = base("alert-secp256k1");
  delete r.kind;
  add("a receipt without kind is MALFORMED", r, "MALFORMED");
  r = base("alert-secp256k1");
  r.leafIndex = -1;
  add("a negative integer is MALFORMED", r, "MALFORMED");
  r = base("frame-secp256k1");
  r.frame.raw = r.frame.raw + "0";
  add("hex with an odd number of digits is MALFORMED", r, "MALFORMED");
  r = base("alert-secp256k1");
  r.batch.signer.address = null;
  add("signer.address null is MALFORMED", r, "MALFORMED");
  r = base("alert-secp256k1");
  r.batch.signer.address = r.batch.signer.address + "00";
  add("signer.address of 21 bytes is MALFORMED", r, "MALFORMED");
  r = base("alert-secp256k1");
  r.batch.signer.publicKey = r.batch.signer.publicKey + "00";
  delete r.batch.signer.address;
  add("a secp256k1 publicKey of 21 bytes is BAD_SIGNATURE", r, "BAD_SIGNATURE");
  r = base("frame-secp256k1");
  r.frame.index = "1";
  add("an informational field of the wrong type is MALFORMED", r, "MALFORMED");
  r = base("frame-secp256k1");
  r.frame.clockUnverified = "no";
  add("clockUnverified that is not a boolean is MALFORMED", r, "MALFORMED");
  r = base("alert-secp256k1-anchored");
  delete r.anchor.confirmations;
  add("an anchor without confirmations is MALFORMED", r, "MALFORMED");
  r = base("alert-secp256k1");
  delete r.batch.sealedAtUs;
  add("a batch without sealedAtUs is MALFORMED", r, "MALFORMED");
  add("alert severity 0 (re-signed)", reseal(alertWith({ severity: 0 })), "pass");
  add("alert severity 7 (re-signed)", reseal(alertWith({ severity: 7 })), "pass");
  r = base("sensor-fault-secp256k1");
  r.sensorFault.preimage = r.sensorFault.preimage.replace(/020873333a737475636b/, "030873333a737475636b");
  r.sensorFault.severity = 3;
  add("a sensor fault of severity 3 (re-signed)", reseal(r), "pass");
  r = base("sensor-fault-secp256k1");
  r.sensorFault.preimage = r.sensorFault.preimage.replace(/73333a737475636b/, "73333a7374756e67");
  r.sensorFault.rule = "s3:stung";
  add("a sensor fault with an unknown reason (re-signed)", reseal(r), "pass");
  r = base("inference-secp256k1");
  r.inference.preimage = r.inference.preimage.slice(0, 2 + 2 * 77) + "0000";
  r.inference.outputs = [];
  add("an inference with no outputs (re-signed)", reseal(r), "pass");
  r = base("inference-secp256k1");
  r.inference.outputs[0] = null;
  add("an output null where the preimage holds a finite value", r, "TAMPERED_LEAF");
  r = base("frame-secp256k1");
  const flagged = getBytes(r.frame.raw);
  flagged[21] = 0xfe; // DATA flags: reserved bits set
  const crc = crc32(flagged.subarray(0, flagged.length - 4));
  new DataView(flagged.buffer).setUint32(flagged.length - 4, crc, true);
  r.frame.raw = hexlify(flagged);
  add("a frame with reserved flags bits set (re-signed)", reseal(r), "pass");
  r = base("frame-secp256k1");
  r.leafIndex = 1;
  add("another leafIndex at the same depth", r, "pass");
  add("order: BAD_SIGNATURE before WRONG_CHAIN", highS(base("alert-secp256k1")), "BAD_SIGNATURE", {
    ...T,
    chainId: 1,
  });
  add("order: WRONG_SIGNER before WRONG_CHAIN", base("alert-secp256k1"), "WRONG_SIGNER", {
    ...T,
    chainId: 1,
    signer: V.keys.p256.publicKey,
  });
  add("order: WRONG_CHAIN before WRONG_REGISTRY", base("alert-secp256k1"), "WRONG_CHAIN", {
    ...T,
    chainId: 1,
    registry: "0x" + "22".repeat(20),
  });
  r = base("alert-secp256k1-anchored");
  r.anchor.chainId = 1;
  add("ANCHOR_MISMATCH without a trust anchor", r, "ANCHOR_MISMATCH", {});

  r = base("frame-secp256k1");
  delete r.anchor;
  add("a receipt without anchor is MALFORMED", r, "MALFORMED");
  r = base("alert-secp256k1-anchored");
  r.anchor.blockNumber = null;
  r.anchor.blockHash = null;
  add("an anchor with a txHash and no block", r, "pass");
  r = base("alert-secp256k1-anchored");
  r.anchor.contract = "0x" + [...r.anchor.contract.slice(2)].map((x: string) => x.toUpperCase()).join("");
  r.batch.domain.verifyingContract = getAddress(r.batch.domain.verifyingContract).replace("F", "f");
  add("addresses other than signer.address in any case", r, "pass");
  r = base("alert-secp256k1");
  r.proof[0] = r.proof[0] + "00";
  add("a proof element of 33 bytes is MALFORMED", r, "MALFORMED");
  r = base("alert-secp256k1");
  r.batch.domain.chainId = "10";
  add("a chainId string is MALFORMED", r, "MALFORMED");
  for (const [what, at, value] of [
    ["version 2", 0, 2],
    ["a HELLO type", 1, 1],
    ["channel count 0", 20, 0],
    ["channel count 33", 20, 33],
    ["a timestamp of 2^56", 19, 1],
  ] as const) {
    r = base("frame-secp256k1");
    const raw = getBytes(r.frame.raw);
    raw[at] = value;
    new DataView(raw.buffer).setUint32(raw.length - 4, crc32(raw.subarray(0, raw.length - 4)), true);
    r.frame.raw = hexlify(raw);
    add(`a frame with ${what} (CRC fixed, re-signed)`, reseal(r), "TAMPERED_FRAME");
  }
  r = base("alert-secp256k1");
  r.batch.header.firstTimestamp = r.batch.header.lastTimestamp + 1;
  add("firstTimestamp after lastTimestamp (re-signed)", reseal(r), "TAMPERED_HEADER");
  add("pinned P-256 signer", base("alert-p256"), "pass", { ...T, signer: V.keys.p256.publicKey });
  add("a P-256 receipt with a pinned secp256k1 signer", base("alert-p256"), "WRONG_SIGNER", {
    ...T,
    signer: secp,
  });

  // --- found by comparing with the gateway: statements RECEIPTS.md did not make
  r = base("alert-secp256k1");
  r.alert.severity = 259; // 3 + 256: not a u8, so never the preimage's byte
  add("a JSON severity above 255 is TAMPERED_LEAF", r, "TAMPERED_LEAF");
  r = base("alert-secp256k1");
  r.batch.signature = "0x";
  add("an empty signature is MALFORMED", r, "MALFORMED");
  r = base("frame-secp256k1");
  r.frame.raw = "0x";
  add("empty frame bytes are MALFORMED", r, "MALFORMED");
  r = base("alert-secp256k1");
  r.leafIndex = -0;
  add("an integer written −0 is MALFORMED", r, "MALFORMED");

  // --- bundles
  const a = base("alert-secp256k1");
  const again = clone(a);
  again.leaf = again.leaf.toUpperCase().replace("0X", "0x");
  again.anchor = { ...base("alert-secp256k1-anchored").anchor };
  const bundle = (receipts: J[]): J => ({ format: "vigil-bundle/1", receipts });
  add(
    "a repeated receipt (other hex case and anchor) is DUPLICATE",
    bundle([a, base("frame-secp256k1"), again]),
    ["pass", "pass", "DUPLICATE"],
    T,
    "receipts[2] repeats receipts[0]",
  );
  const broken = base("alert-secp256k1");
  broken.alert.severity = 1;
  add("a repeat of a receipt that failed is not DUPLICATE", bundle([broken, base("alert-secp256k1")]), [
    "TAMPERED_LEAF",
    "pass",
  ]);
  return c;
}
