/**
 * Receipts: everything an auditor needs to check one stored frame, offline and on chain.
 * Format: attest/RECEIPTS.md (`vigil-receipt/1`, bundles `vigil-bundle/1`).
 */
import { VigilError } from "../errors/base.ts";
import { bytesToHex } from "../chain/eip712.ts";
import { deviceIdHex } from "../protocol/frame.ts";
import type {
  AnchorRecord,
  BatchHeaderJson,
  Eip712DomainJson,
  FrameStore,
  SealedBatch,
  SignerInfo,
  StoredFrame,
} from "../store/types.ts";
import { frameLeaf } from "./leaf.ts";
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
}

export interface Receipt {
  format: "vigil-receipt/1";
  kind: "frame";
  frame: ReceiptFrame;
  leaf: string;
  /** Position of the leaf in its batch (0-based). */
  leafIndex: number;
  proof: string[];
  batch: {
    header: BatchHeaderJson;
    head: string;
    digest: string;
    signature: string;
    signer: SignerInfo;
    domain: Eip712DomainJson;
    sealedAtUs: number;
  };
  /** null until the batch is anchored. */
  anchor: AnchorRecord | null;
}

export interface Bundle {
  format: "vigil-bundle/1";
  createdAt: string;
  query: { deviceId: string; fromUs: number | null; toUs: number | null };
  /** Frames that matched but are not sealed yet (no receipt possible yet). */
  unsealed: number;
  receipts: Receipt[];
}

export class ReceiptError extends VigilError {
  override name = "ReceiptError";
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

  async forFrame(f: StoredFrame): Promise<Receipt> {
    const batch = await this.store.batchForIndex(f.index);
    if (!batch)
      throw new ReceiptError("RECEIPT_NOT_SEALED", `frame ${f.index} is not sealed into a batch yet`);
    const tree = await this.tree(batch);
    const leafIndex = f.index - batch.firstIndex;
    const leaf = frameLeaf(f);
    if (bytesToHex(leaf) !== bytesToHex(tree.leaf(leafIndex)))
      throw new ReceiptError(
        "RECEIPT_INCONSISTENT",
        `frame ${f.index} does not hash to the leaf sealed in batch ${batch.header.seq}`,
      );
    const anchor = (await this.store.getAnchor(batch.header.seq)) ?? null;
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
      },
      leaf: bytesToHex(leaf),
      leafIndex,
      proof: tree.proof(leafIndex).map(bytesToHex),
      batch: {
        header: batch.header,
        head: batch.head,
        digest: batch.digest,
        signature: batch.signature,
        signer: batch.signer,
        domain: batch.domain,
        sealedAtUs: batch.sealedAtUs,
      },
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
