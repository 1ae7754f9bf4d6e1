/**
 * Known-answer receipt vectors (test/vectors/receipts.json) for implementations of RECEIPTS.md:
 * frame, inference and alert receipts signed with secp256k1 and with P-256 (plus −0 and
 * sensor-fault edge cases), every intermediate value (leaf preimage, leaf, root, hashStruct,
 * domain separator, digest, head), and invalid receipts with the failure reason a verifier must
 * report.
 *
 * Everything is deterministic: fixed keys, frames and clocks; both signature schemes sign with RFC
 * 6979 nonces (noble-curves). Regenerate only when the receipt format changes on purpose:
 *   npx tsx test/vectors/receipts.ts
 * test/vectors/receipts.test.ts checks that the code still produces these bytes and recomputes
 * every vector independently from RECEIPTS.md.
 */
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { keccak256, toUtf8Bytes } from "ethers";
import { importKey, type KeyType } from "../../gateway/src/chain/keys.ts";
import { domainSeparator, hashBatchHeader, vigilDomain } from "../../gateway/src/chain/eip712.ts";
import { bytesToHex, type Hex } from "../../gateway/src/core/hex.ts";
import {
  alertLeafPreimage,
  frameLeaf,
  frameLeafPreimage,
  inferenceLeafPreimage,
  sensorFaultLeafPreimage,
} from "../../gateway/src/core/leaf.ts";
import { encodeFrame, FrameType } from "../../gateway/src/protocol/frame.ts";
import { GatewaySigner } from "../../gateway/src/attest/signer.ts";
import { BatchSealer } from "../../gateway/src/attest/sealer.ts";
import {
  ReceiptBuilder,
  type AnyReceipt,
  type LeafReceipt,
  type ReceiptAlert,
  type ReceiptInference,
} from "../../gateway/src/attest/receipt.ts";
import { toEip712Header } from "../../gateway/src/attest/header.ts";
import { proofLength, type VerifyFailure } from "../../gateway/src/attest/verify.ts";
import { MemoryFrameStore } from "../../gateway/src/store/memory.ts";

export const VECTORS_FILE = fileURLToPath(new URL("./receipts.json", import.meta.url));

/** Test keys — published here, never use them for anything real. */
export const VECTOR_KEYS: Record<KeyType, Hex> = {
  secp256k1: "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318",
  p256: "0xc9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721",
};
const CHAIN_ID = 10;
const REGISTRY = "0x5fbdb2315678afecb367f032d93f642f64180aa3";
const GATEWAY = keccak256(toUtf8Bytes("vigil-gateway:gw-1")) as Hex;
const DEVICE = 0x0000002a;
const T0 = 1_764_000_000_000_000;
const MODEL = new Uint8Array(32).map((_, i) => (0xa0 + i) & 0xff);
const WINDOW = new Uint8Array(32).map((_, i) => (0x10 + 3 * i) & 0xff);

export interface ReceiptVector {
  name: string;
  keyType: KeyType;
  kind: AnyReceipt["kind"];
  receipt: AnyReceipt;
  expect: {
    leafPreimage: string;
    leaf: string;
    proofLength: number;
    root: string;
    structHash: string;
    domainSeparator: string;
    digest: string;
    head: string;
  };
}

export interface InvalidVector {
  name: string;
  /** What was changed, in words. */
  change: string;
  receipt: AnyReceipt;
  reason: VerifyFailure;
}

export interface VectorFile {
  format: "vigil-receipt-vectors/1";
  note: string;
  keys: Record<KeyType, { privateKey: string; publicKey: string }>;
  trust: { chainId: number; registry: string; gatewayId: string };
  vectors: ReceiptVector[];
  invalid: InvalidVector[];
}

/** Seals the store's `leaves` entries as one batch signed with the vector key; its receipt builder. */
async function sealOne(store: MemoryFrameStore, keyType: KeyType, leaves: number): Promise<ReceiptBuilder> {
  const sealer = new BatchSealer({
    store,
    signer: new GatewaySigner(importKey(keyType, VECTOR_KEYS[keyType])),
    gatewayId: GATEWAY,
    domain: vigilDomain(CHAIN_ID, REGISTRY),
    maxLeaves: leaves,
    nowUs: () => T0 + 60_000_000,
  });
  await sealer.sealNow();
  return new ReceiptBuilder(store);
}

/** One 7-leaf batch per key type: five DATA frames, an INFERENCE and an ALERT leaf. */
async function batchReceipts(
  keyType: KeyType,
): Promise<{ frame: AnyReceipt; odd: AnyReceipt; inference: AnyReceipt; alert: AnyReceipt }> {
  const store = new MemoryFrameStore({ groupCommit: { flushIntervalMs: 0 } });
  await store.open();
  const frames: { seq: number; values: number[] }[] = [
    { seq: 1, values: [1.5, -2.25] },
    { seq: 2, values: [0.125] },
    { seq: 3, values: [3.5, 41.5, 12.75] },
    { seq: 4, values: [1480, 0.5] },
    { seq: 5, values: [0.25] },
  ];
  for (const f of frames) {
    const ts = T0 + f.seq * 10_000;
    const raw = encodeFrame({
      type: FrameType.Data,
      deviceId: DEVICE,
      seq: f.seq,
      timestampUs: ts,
      flags: 0,
      values: Float32Array.from(f.values),
    });
    await store.append({ deviceId: DEVICE, seq: f.seq, receivedUs: ts + 1234, timestampUs: ts, raw });
  }
  const common = { modelHash: MODEL, inputWindowHash: WINDOW, deviceId: DEVICE, timestampUs: T0 + 50_000 };
  const inf = inferenceLeafPreimage({ ...common, outputs: [87.40625, 0.03125] });
  const alert = alertLeafPreimage({ ...common, severity: 3, rule: "failure", score: 12.5 });
  const { leafFromPreimage } = await import("../../gateway/src/core/leaf.ts");
  await store.appendLeaf({
    kind: "inference",
    preimage: inf,
    deviceId: DEVICE,
    timestampUs: common.timestampUs,
    hash: leafFromPreimage(inf),
  });
  await store.appendLeaf({
    kind: "alert",
    preimage: alert,
    deviceId: DEVICE,
    timestampUs: common.timestampUs,
    hash: leafFromPreimage(alert),
  });
  const rb = await sealOne(store, keyType, 7);
  const out = {
    frame: await rb.forSeq(DEVICE, 1),
    odd: await rb.forSeq(DEVICE, 3),
    inference: await rb.forLeafHash(leafFromPreimage(inf)),
    alert: await rb.forLeafHash(leafFromPreimage(alert)),
  };
  await store.close();
  return out;
}

/**
 * A 3-leaf secp256k1 batch of the edge cases a verifier gets wrong: a DATA frame and an
 * inference output holding −0 (JSON says `0`; the preimage keeps the sign bit), and a
 * SENSOR_FAULT leaf (tag 0x04, the ALERT layout).
 */
async function edgeReceipts(): Promise<{
  negZeroFrame: AnyReceipt;
  negZeroInference: AnyReceipt;
  sensorFault: AnyReceipt;
}> {
  const store = new MemoryFrameStore({ groupCommit: { flushIntervalMs: 0 } });
  await store.open();
  const ts = T0 + 100_000;
  const raw = encodeFrame({
    type: FrameType.Data,
    deviceId: DEVICE,
    seq: 7,
    timestampUs: ts,
    flags: 0,
    values: Float32Array.from([-0, 2.5]),
  });
  await store.append({ deviceId: DEVICE, seq: 7, receivedUs: ts + 1234, timestampUs: ts, raw });
  const common = { modelHash: MODEL, inputWindowHash: WINDOW, deviceId: DEVICE, timestampUs: ts + 5_000 };
  const inf = inferenceLeafPreimage({ ...common, outputs: [-0, 0.5] });
  // A sensor fault names its frame (RECEIPTS.md): the FRAME leaf as inputWindowHash, the frame's
  // timestamp, and the rule `{channel}:{reason}`.
  const faultLeaf = {
    ...common,
    inputWindowHash: frameLeaf({ seq: 7, receivedUs: ts + 1234, raw }),
    timestampUs: ts,
  };
  const fault = sensorFaultLeafPreimage({ ...faultLeaf, severity: 2, rule: "s3:stuck", score: 1 });
  const { leafFromPreimage } = await import("../../gateway/src/core/leaf.ts");
  for (const [kind, preimage, timestampUs] of [
    ["inference", inf, common.timestampUs],
    ["sensor-fault", fault, faultLeaf.timestampUs],
  ] as const)
    await store.appendLeaf({
      kind,
      preimage,
      deviceId: DEVICE,
      timestampUs,
      hash: leafFromPreimage(preimage),
    });
  const rb = await sealOne(store, "secp256k1", 3);
  const out = {
    negZeroFrame: await rb.forSeq(DEVICE, 7),
    negZeroInference: await rb.forLeafHash(leafFromPreimage(inf)),
    sensorFault: await rb.forLeafHash(leafFromPreimage(fault)),
  };
  await store.close();
  return out;
}

/** The decoded-fields object of a leaf receipt (`inference`, `alert` or `sensorFault`). */
export function leafFieldsOf(r: LeafReceipt): ReceiptInference | ReceiptAlert {
  return r.kind === "inference" ? r.inference : r.kind === "alert" ? r.alert : r.sensorFault;
}

function expected(r: AnyReceipt): ReceiptVector["expect"] {
  let pre: Uint8Array;
  if (r.kind === "frame")
    pre = frameLeafPreimage({
      seq: r.frame.seq,
      receivedUs: r.frame.receivedUs,
      raw: Buffer.from(r.frame.raw.slice(2), "hex"),
    });
  else pre = Buffer.from(leafFieldsOf(r).preimage.slice(2), "hex");
  const d = vigilDomain(r.batch.domain.chainId, r.batch.domain.verifyingContract);
  return {
    leafPreimage: bytesToHex(pre),
    leaf: r.leaf,
    proofLength: proofLength(r.leafIndex, r.batch.header.leafCount),
    root: r.batch.header.root,
    structHash: hashBatchHeader(toEip712Header(r.batch.header)),
    domainSeparator: domainSeparator(d),
    digest: r.batch.digest,
    head: r.batch.head,
  };
}

export async function buildVectors(): Promise<VectorFile> {
  const vectors: ReceiptVector[] = [];
  const keys = {} as VectorFile["keys"];
  const byKey: Record<string, Awaited<ReturnType<typeof batchReceipts>>> = {};
  for (const keyType of ["secp256k1", "p256"] as const) {
    const b = await batchReceipts(keyType);
    byKey[keyType] = b;
    keys[keyType] = { privateKey: VECTOR_KEYS[keyType], publicKey: b.frame.batch.signer.publicKey };
    for (const [name, r] of [
      ["frame", b.frame],
      ["frame-3ch", b.odd],
      ["inference", b.inference],
      ["alert", b.alert],
    ] as const)
      vectors.push({ name: `${name}-${keyType}`, keyType, kind: r.kind, receipt: r, expect: expected(r) });
  }
  const edge = await edgeReceipts();
  for (const [name, r] of [
    ["frame-negative-zero", edge.negZeroFrame],
    ["inference-negative-zero", edge.negZeroInference],
    ["sensor-fault", edge.sensorFault],
  ] as const)
    vectors.push({
      name: `${name}-secp256k1`,
      keyType: "secp256k1",
      kind: r.kind,
      receipt: r,
      expect: expected(r),
    });
  // One anchored variant (an anchor is checked on chain; offline only for consistency).
  const anchored = structuredClone(byKey.secp256k1!.alert);
  anchored.anchor = {
    chainId: CHAIN_ID,
    contract: REGISTRY,
    txHash: `0x${"ab".repeat(32)}`,
    blockNumber: 123456,
    blockHash: `0x${"cd".repeat(32)}`,
    final: true,
    confirmations: 12,
    anchoredAtUs: T0 + 65_000_000,
  };
  vectors.push({
    name: "alert-secp256k1-anchored",
    keyType: "secp256k1",
    kind: "alert",
    receipt: anchored,
    expect: expected(anchored),
  });

  const bad = (
    name: string,
    change: string,
    base: AnyReceipt,
    edit: (r: AnyReceipt) => void,
    reason: VerifyFailure,
  ): InvalidVector => {
    const r = structuredClone(base);
    edit(r);
    return { name, change, receipt: r, reason };
  };
  const s = byKey.secp256k1!;
  const p = byKey.p256!;
  const invalid: InvalidVector[] = [
    bad(
      "frame-byte",
      "last byte of frame.raw (CRC) changed",
      s.frame,
      (r) => {
        if (r.kind === "frame")
          r.frame.raw = r.frame.raw.slice(0, -2) + (r.frame.raw.endsWith("00") ? "01" : "00");
      },
      "TAMPERED_FRAME",
    ),
    bad(
      "alert-severity",
      "alert.severity 3 → 2 (the preimage says 3)",
      s.alert,
      (r) => {
        if (r.kind === "alert") r.alert.severity = 2;
      },
      "TAMPERED_LEAF",
    ),
    bad(
      "leaf-index",
      "leafIndex 0 → 6: the proof has 3 elements, leaf 6 of 7 has 2",
      s.frame,
      (r) => (r.leafIndex = 6),
      "BAD_PROOF",
    ),
    bad("header-seq", "batch.header.seq 1 → 2", p.frame, (r) => (r.batch.header.seq = 2), "TAMPERED_HEADER"),
    bad(
      "signer-address",
      "signer.address is not the address of signer.publicKey",
      s.frame,
      (r) => (r.batch.signer.address = `0x${"12".repeat(20)}`),
      "BAD_SIGNATURE",
    ),
    bad(
      "p256-signature",
      "one byte of the P-256 signature changed",
      p.alert,
      (r) => {
        r.batch.signature =
          r.batch.signature.slice(0, 10) +
          (r.batch.signature[10] === "0" ? "1" : "0") +
          r.batch.signature.slice(11);
      },
      "BAD_SIGNATURE",
    ),
    bad(
      "anchor-contract",
      "anchor.contract is not the signed registry",
      anchored,
      (r) => (r.anchor!.contract = `0x${"99".repeat(20)}`),
      "ANCHOR_MISMATCH",
    ),
    bad(
      "anchor-block-without-tx",
      "anchor.txHash null with a blockNumber",
      anchored,
      (r) => (r.anchor!.txHash = null),
      "ANCHOR_MISMATCH",
    ),
  ];
  return {
    format: "vigil-receipt-vectors/1",
    note: "Known-answer vectors for gateway/src/attest/RECEIPTS.md. Test keys only. Verify against trust = { chainId, registry, gatewayId } below; anchors are made up (offline checks only).",
    keys,
    trust: { chainId: CHAIN_ID, registry: REGISTRY, gatewayId: GATEWAY },
    vectors,
    invalid,
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const v = await buildVectors();
  writeFileSync(VECTORS_FILE, JSON.stringify(v, null, 2) + "\n");
  console.log(
    `wrote ${v.vectors.length} vectors and ${v.invalid.length} invalid receipts to ${VECTORS_FILE}`,
  );
}
