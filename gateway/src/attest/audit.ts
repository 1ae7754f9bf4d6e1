/**
 * The attestation half of `vigil store check`: every sealed batch must still be what was signed.
 * For each batch the stored packed leaves must rebuild the header's Merkle root, the head chain
 * must link from batch 1, and where the batch's entries are still stored (not pruned) their
 * leaves — frame leaves recomputed from the frames, leaf records' stored hashes — must equal the
 * packed ones. The store-level checks (entries, indexes, watermark) are in store/integrity.ts.
 */
import { nextHead, ZERO_HASH } from "../chain/eip712.ts";
import { bytesToHex, type Hex } from "../core/hex.ts";
import { frameLeafInto } from "../core/leaf.ts";
import { StoreRecordError } from "../store/errors.ts";
import { isStoredLeaf, type FrameStore } from "../store/types.ts";
import { toEip712Header } from "./header.ts";
import { MerkleBuilder } from "./merkle.ts";

function rootOf(packed: Uint8Array): Hex {
  const b = new MerkleBuilder(packed);
  while (!b.step(1 << 20));
  return bytesToHex(b.result().root);
}

export interface BatchAudit {
  batches: number;
  /** Batches whose entries were all still stored and were compared leaf by leaf. */
  comparedWithEntries: number;
  problems: string[];
}

export async function auditBatches(store: FrameStore): Promise<BatchAudit> {
  const problems: string[] = [];
  let head: Hex = ZERO_HASH;
  let compared = 0;
  const prunedThrough = store.stats().prunedThrough;
  const n = store.lastBatchSeq();
  for (let seq = 1; seq <= n; seq++) {
    const b = await store.getBatch(seq);
    const packed = await store.getBatchLeaves(seq);
    if (!b || !packed) {
      problems.push(`batch ${seq}: record or packed leaves missing`);
      continue;
    }
    const count = b.lastIndex - b.firstIndex + 1;
    if (packed.length !== 32 * count)
      problems.push(`batch ${seq}: ${packed.length / 32} packed leaves for ${count} entries`);
    const root = packed.length ? rootOf(packed) : ZERO_HASH;
    if (root !== b.header.root.toLowerCase())
      problems.push(`batch ${seq}: packed leaves give root ${root}, the signed header says ${b.header.root}`);
    if (b.header.prevHead.toLowerCase() !== head)
      problems.push(`batch ${seq}: does not link to batch ${seq - 1}'s head`);
    head = nextHead(head, toEip712Header(b.header));
    if (head !== b.head.toLowerCase())
      problems.push(`batch ${seq}: stored head differs from the recomputed one`);
    if (b.firstIndex <= prunedThrough) continue;
    const fresh = new Uint8Array(32 * count);
    let i = 0;
    try {
      for await (const chunk of store.entryChunks(b.firstIndex, b.lastIndex))
        for (const e of chunk) {
          const at = e.index - b.firstIndex;
          if (isStoredLeaf(e)) fresh.set(e.hash, 32 * at);
          else frameLeafInto(e, fresh, 32 * at);
          i++;
        }
    } catch (e) {
      // A value that does not decode: this batch cannot be compared; the others still are.
      if (!(e instanceof StoreRecordError)) throw e;
      problems.push(`batch ${seq}: cannot be compared with its entries: ${e.shortMessage}`);
      continue;
    }
    if (i !== count) {
      problems.push(`batch ${seq}: ${count - i} of its ${count} entries are missing`);
      continue;
    }
    compared++;
    for (let k = 0; k < count; k++)
      if (
        Buffer.compare(
          Buffer.from(fresh.subarray(32 * k, 32 * k + 32)),
          Buffer.from(packed.subarray(32 * k, 32 * k + 32)),
        ) !== 0
      ) {
        problems.push(
          `batch ${seq}: entry ${b.firstIndex + k} no longer hashes to its sealed leaf (modified after sealing)`,
        );
        if (problems.length > 1000) return { batches: n, comparedWithEntries: compared, problems };
      }
  }
  return { batches: n, comparedWithEntries: compared, problems };
}
