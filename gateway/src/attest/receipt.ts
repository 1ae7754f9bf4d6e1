/**
 * Receipts: everything an auditor needs to check one stored frame, INFERENCE result or ALERT,
 * offline and on chain. Format: attest/RECEIPTS.md (`vigil-receipt/1`, bundles `vigil-bundle/1`).
 */
import { VigilError } from "../core/errors.ts";
import { bytesToHex } from "../core/hex.ts";
import { deviceIdHex } from "../protocol/frame.ts";
import type {
  AnchorRecord,
  BatchHeaderJson,
  Eip712DomainJson,
  FrameStore,
  SealedBatch,
  SignerInfo,
  StoredFrame,
  StoredLeaf,
} from "../store/types.ts";
import { decodeModelLeaf, frameLeaf } from "../core/leaf.ts";
import { MerkleTree } from "./merkle.ts";

export interface ReceiptFrame {
  /** Arrival index in the gateway's log (informational). */
  index: number;
  /** 8 lowercase hex digits. */
  deviceId: string;
  /** Extended sequence number. */
  seq: number;
  receivedUs: number;
  timestampUs: number;
  /** The frame exactly as received: header, payload, CRC (hardware/PROTOCOL.md). */
  raw: string;
  /**
   * True when the gateway stored the frame before its clock was known good (RECEIPTS.md):
   * `receivedUs` and the timestamp's plausibility rest on an unverified clock. Informational (not
   * in the leaf); receipts exported before the field existed lack it.
   */
  clockUnverified?: boolean;
}

/** Fields shared by INFERENCE and ALERT receipts, decoded from `preimage`. */
interface ReceiptModelLeafBase {
  /** Arrival index in the gateway's log (informational). */
  index: number;
  /** The canonical leaf preimage (tag ‖ body ‖ pad), 0x-hex: what `leaf` is the keccak256 of. */
  preimage: string;
  /** 8 lowercase hex digits. */
  deviceId: string;
  /** Device timestamp of the last frame of the input window, µs. */
  timestampUs: number;
  /** The model's hash (sha256 of the ONNX file), 0x-hex. */
  modelHash: string;
  /** sha256 of the exact float32 input window, 0x-hex. */
  inputWindowHash: string;
}

export interface ReceiptInference extends ReceiptModelLeafBase {
  /** Every output value of the result (f32, manifest order). */
  outputs: number[];
}

export interface ReceiptAlert extends ReceiptModelLeafBase {
  /** The rule's severity as committed in the leaf: 1 info, 2 warning, 3 critical (alerts/rules.ts SEVERITY_CODE). */
  severity: number;
  /**
   * Rule id; `{rule}:clear` for the transition that cleared the alert. A sensor fault:
   * `{channel}:{reason}`, `{channel}:{reason}:clear`.
   */
  rule: string;
  /** The output value that caused the transition (f32); a sensor fault: the channel's raw value. */
  score: number;
}

interface ReceiptProofPart {
  format: "vigil-receipt/1";
  leaf: string;
  /** Position of the leaf in its batch (0-based). */
  leafIndex: number;
  proof: string[];
  batch: ReceiptBatch;
  /** null until the batch is anchored. */
  anchor: ReceiptAnchor | null;
}

/**
 * Where the batch was anchored, as the gateway knew it when it exported the receipt. The verifier
 * checks every field against the pinned registry and the chain (RECEIPTS.md); `final` and
 * `confirmations` say how settled it was then.
 */
export interface ReceiptAnchor {
  chainId: number;
  /** Registry address (lowercase). */
  contract: string;
  /** Transaction and block of the BatchAnchored event (null only in records of old gateways). */
  txHash: string | null;
  blockNumber: number | null;
  /** Hash of that block; null in records of old gateways. */
  blockHash: string | null;
  /**
   * Whether the anchor was final at export: `confirmations` deep, or at or below the chain's
   * `finalized` block (then `confirmations` is 0). A receipt with `final: false` may still be
   * reorganised away; the gateway then anchors the same batch again and later exports name the
   * new transaction.
   */
  final: boolean;
  /** The gateway's finality depth (0: the chain's `finalized` tag). */
  confirmations: number;
  /** Gateway clock when the anchor was recorded, µs (informational). */
  anchoredAtUs: number;
}

/** The receipt's view of a stored anchor record (internal fields such as costs left out). */
export function receiptAnchor(a: AnchorRecord | undefined): ReceiptAnchor | null {
  if (!a) return null;
  return {
    chainId: a.chainId,
    contract: a.contract.toLowerCase(),
    txHash: a.txHash,
    blockNumber: a.blockNumber,
    blockHash: a.blockHash ?? null,
    final: a.final ?? true,
    confirmations: a.confirmations,
    anchoredAtUs: a.anchoredAtUs,
  };
}

/** Receipt of an INFERENCE leaf (kind 0x02). */
export interface InferenceReceipt extends ReceiptProofPart {
  kind: "inference";
  inference: ReceiptInference;
}

/** Receipt of an ALERT leaf (kind 0x03): fetched by the alert payload's `receipt.leaf`. */
export interface AlertReceipt extends ReceiptProofPart {
  kind: "alert";
  alert: ReceiptAlert;
}

/**
 * Receipt of a SENSOR_FAULT leaf (kind 0x04, ALERT layout): fetched by the sensor-fault payload's
 * `receipt.leaf`. `inputWindowHash` holds the FRAME leaf of the frame that raised or cleared it.
 */
export interface SensorFaultReceipt extends ReceiptProofPart {
  kind: "sensor-fault";
  sensorFault: ReceiptAlert;
}

export type LeafReceipt = InferenceReceipt | AlertReceipt | SensorFaultReceipt;

/** Any receipt `vigil verify` accepts. `Receipt` is the frame receipt (its name predates the others). */
export type AnyReceipt = Receipt | LeafReceipt;

export interface ReceiptBatch {
  header: BatchHeaderJson;
  head: string;
  digest: string;
  signature: string;
  signer: SignerInfo;
  domain: Eip712DomainJson;
  sealedAtUs: number;
}

/** Receipt of a FRAME leaf (kind 0x01). */
export interface Receipt {
  format: "vigil-receipt/1";
  kind: "frame";
  frame: ReceiptFrame;
  leaf: string;
  /** Position of the leaf in its batch (0-based). */
  leafIndex: number;
  proof: string[];
  batch: ReceiptBatch;
  /** null until the batch is anchored. */
  anchor: ReceiptAnchor | null;
}

export interface Bundle {
  format: "vigil-bundle/1";
  createdAt: string;
  query: { deviceId: string; fromUs: number | null; toUs: number | null };
  /** Frames that matched but are not sealed yet (no receipt possible yet). */
  unsealed: number;
  receipts: Receipt[];
}

function batchPart(batch: SealedBatch): ReceiptBatch {
  return {
    header: batch.header,
    head: batch.head,
    digest: batch.digest,
    signature: batch.signature,
    signer: batch.signer,
    domain: batch.domain,
    sealedAtUs: batch.sealedAtUs,
  };
}

export type ReceiptErrorCode =
  "RECEIPT_BAD_QUERY" | "RECEIPT_INCONSISTENT" | "RECEIPT_NOT_SEALED" | "RECEIPT_NOT_FOUND";

export class ReceiptError extends VigilError {
  override name = "ReceiptError";
  declare readonly code: ReceiptErrorCode;
  constructor(code: ReceiptErrorCode, message: string, opts: { details?: string; cause?: unknown } = {}) {
    super(code, message, opts);
  }
}

/**
 * Builds receipts from a store. Keeps the Merkle tree of the last batch it used, so
 * exporting many frames of one batch rebuilds each tree once (from the stored leaves).
 */
export class ReceiptBuilder {
  private cached: { seq: number; tree: MerkleTree } | undefined;
  constructor(private readonly store: FrameStore) {}

  async forIndex(index: number): Promise<Receipt> {
    const f = await this.store.getFrame(index);
    if (!f)
      throw new ReceiptError(
        "RECEIPT_NOT_FOUND",
        `no stored frame at index ${index} (never stored, or pruned after the retention window)`,
      );
    return this.forFrame(f);
  }

  async forSeq(deviceId: number, seq: number): Promise<Receipt> {
    const f = await this.store.getFrameBySeq(deviceId, seq);
    if (!f)
      throw new ReceiptError(
        "RECEIPT_NOT_FOUND",
        `no stored frame ${deviceIdHex(deviceId)}/${seq} (never stored, or pruned)`,
      );
    return this.forFrame(f);
  }

  /**
   * Receipt of the INFERENCE, ALERT or SENSOR_FAULT leaf with this hash (an alert or sensor-fault
   * payload's `receipt.leaf`, or an alert's `receipt.inferenceLeaf`).
   */
  async forLeafHash(hash: string | Uint8Array): Promise<LeafReceipt> {
    const hex = typeof hash === "string" ? hash : bytesToHex(hash);
    if (!/^(0x)?[0-9a-f]{64}$/i.test(hex))
      throw new ReceiptError("RECEIPT_BAD_QUERY", `a leaf hash is 32 bytes of hex, got "${hex}"`);
    const l = await this.store.getByLeafHash(hex);
    if (!l)
      throw new ReceiptError(
        "RECEIPT_NOT_FOUND",
        `no stored leaf ${hex} (not recorded yet, never recorded, or pruned after the retention window)`,
      );
    return this.forLeaf(l);
  }

  /** Receipt of whatever entry (frame or leaf record) is at arrival index `index`. */
  async forEntryIndex(index: number): Promise<AnyReceipt> {
    const e = await this.store.entryByIndex(index);
    if (!e)
      throw new ReceiptError(
        "RECEIPT_NOT_FOUND",
        `no stored entry at index ${index} (never stored, or pruned after the retention window)`,
      );
    return "preimage" in e ? this.forLeaf(e) : this.forFrame(e);
  }

  async forLeaf(l: StoredLeaf): Promise<LeafReceipt> {
    const { batch, tree, leafIndex, anchor } = await this.place(l.index, l.hash, `leaf ${l.index}`);
    const d = decodeModelLeaf(l.preimage);
    const base: ReceiptModelLeafBase = {
      index: l.index,
      preimage: bytesToHex(l.preimage),
      deviceId: deviceIdHex(d.deviceId),
      timestampUs: d.timestampUs,
      modelHash: bytesToHex(d.modelHash),
      inputWindowHash: bytesToHex(d.inputWindowHash),
    };
    const common = {
      format: "vigil-receipt/1" as const,
      leaf: bytesToHex(l.hash),
      leafIndex,
      proof: tree.proof(leafIndex).map(bytesToHex),
      batch: batchPart(batch),
      anchor,
    };
    if (d.kind === "inference")
      return { ...common, kind: "inference", inference: { ...base, outputs: d.outputs } };
    if (d.kind === "sensor-fault")
      return {
        ...common,
        kind: "sensor-fault",
        sensorFault: { ...base, severity: d.severity, rule: d.rule, score: d.score },
      };
    return {
      ...common,
      kind: "alert",
      alert: { ...base, severity: d.severity, rule: d.rule, score: d.score },
    };
  }

  /** The sealed batch, tree and position of the entry at `index`, checked against `leaf`. */
  private async place(
    index: number,
    leaf: Uint8Array,
    what: string,
  ): Promise<{ batch: SealedBatch; tree: MerkleTree; leafIndex: number; anchor: ReceiptAnchor | null }> {
    const batch = await this.store.batchForIndex(index);
    if (!batch) throw new ReceiptError("RECEIPT_NOT_SEALED", `${what} is not sealed into a batch yet`);
    const tree = await this.tree(batch);
    const leafIndex = index - batch.firstIndex;
    if (bytesToHex(leaf) !== bytesToHex(tree.leaf(leafIndex)))
      throw new ReceiptError(
        "RECEIPT_INCONSISTENT",
        `${what} does not hash to the leaf sealed in batch ${batch.header.seq}`,
      );
    const anchor = receiptAnchor(await this.store.getAnchor(batch.header.seq));
    return { batch, tree, leafIndex, anchor };
  }

  async forFrame(f: StoredFrame): Promise<Receipt> {
    const leaf = frameLeaf(f);
    const { batch, tree, leafIndex, anchor } = await this.place(f.index, leaf, `frame ${f.index}`);
    return {
      format: "vigil-receipt/1",
      kind: "frame",
      frame: {
        index: f.index,
        deviceId: deviceIdHex(f.deviceId),
        seq: f.seq,
        receivedUs: f.receivedUs,
        timestampUs: f.timestampUs,
        raw: bytesToHex(f.raw),
        clockUnverified: f.clockUnverified === true,
      },
      leaf: bytesToHex(leaf),
      leafIndex,
      proof: tree.proof(leafIndex).map(bytesToHex),
      batch: batchPart(batch),
      anchor,
    };
  }

  private async tree(batch: SealedBatch): Promise<MerkleTree> {
    if (this.cached?.seq === batch.header.seq) return this.cached.tree;
    const leaves = await this.store.getBatchLeaves(batch.header.seq);
    if (!leaves)
      throw new ReceiptError("RECEIPT_INCONSISTENT", `leaves of batch ${batch.header.seq} are missing`);
    const tree = MerkleTree.fromPacked(leaves);
    this.cached = { seq: batch.header.seq, tree };
    return tree;
  }

  /** Receipts of one device's frames whose device timestamp is within [fromUs, toUs]. */
  async bundle(deviceId: number, fromUs?: number, toUs?: number): Promise<Bundle> {
    const receipts: Receipt[] = [];
    let unsealed = 0;
    for await (const f of this.store.framesByDevice(deviceId)) {
      if (fromUs !== undefined && f.timestampUs < fromUs) continue;
      if (toUs !== undefined && f.timestampUs > toUs) continue;
      if (f.index > this.store.sealedThrough()) {
        unsealed++;
        continue;
      }
      receipts.push(await this.forFrame(f));
    }
    return {
      format: "vigil-bundle/1",
      createdAt: new Date().toISOString(),
      query: { deviceId: deviceIdHex(deviceId), fromUs: fromUs ?? null, toUs: toUs ?? null },
      unsealed,
      receipts,
    };
  }
}
