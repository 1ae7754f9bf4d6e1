/**
 * The batch log, which is also the anchoring outbox: sealed batches with their packed leaves,
 * the index → batch map, and anchor records. Invariants (StoreOrderError otherwise): batches are
 * saved in seq order, each starting right after the previous one and linking to its head; they
 * are anchored in seq order.
 */
import type { StoreContext } from "./context.ts";
import { M_ANCHORED, M_BATCH, M_HEAD, M_SEALED } from "./context.ts";
import { P_ANCHOR, P_BATCH, P_INDEX, P_LEAVES, prefixEnd, readU64, u64Key, u64Value } from "./codec.ts";
import { StoreOrderError, type StoreUnavailableError } from "./errors.ts";
import type { LogReader } from "./reads.ts";
import type { AnchorRecord, SealedBatch } from "./types.ts";

export class Outbox {
  readonly #c: StoreContext;
  readonly #reads: LogReader;
  readonly #failed: (err: StoreUnavailableError) => void;

  constructor(c: StoreContext, reads: LogReader, failed: (err: StoreUnavailableError) => void) {
    this.#c = c;
    this.#reads = reads;
    this.#failed = failed;
  }

  saveBatch(batch: SealedBatch, leaves: Uint8Array): Promise<void> {
    const c = this.#c;
    return c.metaLock.run(async () => {
      const seq = batch.header.seq;
      if (seq !== c.batchSeq + 1)
        throw new StoreOrderError(`batch ${seq} is not the next batch (last sealed is ${c.batchSeq})`);
      if (batch.firstIndex !== c.sealed + 1)
        throw new StoreOrderError(
          `batch ${seq} starts at frame ${batch.firstIndex}, expected ${c.sealed + 1}`,
        );
      const n = batch.lastIndex - batch.firstIndex + 1;
      if (n !== batch.header.leafCount || leaves.length !== 32 * n)
        throw new StoreOrderError(
          `batch ${seq} has ${batch.header.leafCount} leaves, frames ${batch.firstIndex}..${batch.lastIndex}`,
        );
      if (batch.lastIndex > c.lastIndex)
        throw new StoreOrderError(`batch ${seq} covers frames not yet durable`);
      if (batch.header.prevHead !== c.head)
        throw new StoreOrderError(`batch ${seq} does not link to the current head`);
      await c.metaWrite(
        [
          { type: "put", key: u64Key(P_BATCH, seq), value: Buffer.from(JSON.stringify(batch)) },
          {
            type: "put",
            key: u64Key(P_LEAVES, seq),
            value: Buffer.from(leaves.buffer, leaves.byteOffset, leaves.length),
          },
          { type: "put", key: u64Key(P_INDEX, batch.lastIndex), value: u64Value(seq) },
          { type: "put", key: M_SEALED, value: u64Value(batch.lastIndex) },
          { type: "put", key: M_BATCH, value: u64Value(seq) },
          { type: "put", key: M_HEAD, value: Buffer.from(batch.head.slice(2), "hex") },
        ],
        "saving a batch",
        this.#failed,
      );
      c.batchSeq = seq;
      c.sealed = batch.lastIndex;
      c.tail.trimThrough(batch.lastIndex);
      c.head = batch.head;
    });
  }

  async getBatch(seq: number): Promise<SealedBatch | undefined> {
    const v = await this.#c.read(u64Key(P_BATCH, seq));
    return v ? (JSON.parse(v.toString("utf8")) as SealedBatch) : undefined;
  }

  async getBatchLeaves(seq: number): Promise<Uint8Array | undefined> {
    const v = await this.#c.read(u64Key(P_LEAVES, seq));
    return v ? new Uint8Array(v) : undefined;
  }

  async batchForIndex(index: number): Promise<SealedBatch | undefined> {
    if (index < 1 || index > this.#c.sealed) return undefined;
    for await (const [, v] of this.#reads.range({
      gte: u64Key(P_INDEX, index),
      lt: prefixEnd(P_INDEX),
      limit: 1,
    }))
      return this.getBatch(readU64(v, 0));
    return undefined;
  }

  async pendingAnchors(limit = 100): Promise<SealedBatch[]> {
    const c = this.#c;
    const out: SealedBatch[] = [];
    for (let s = c.anchored + 1; s <= c.batchSeq && out.length < limit; s++) {
      const b = await this.getBatch(s);
      if (!b) throw new StoreOrderError(`batch ${s} is missing from the batch log`);
      out.push(b);
    }
    return out;
  }

  /**
   * Records where batch `seq` was anchored; requires seq = anchoredThrough()+1. The store stamps
   * the record with its retention clock (`anchoredAgeUs`): retention counts from here.
   */
  markAnchored(seq: number, anchor: AnchorRecord): Promise<void> {
    const c = this.#c;
    return c.metaLock.run(async () => {
      if (seq !== c.anchored + 1)
        throw new StoreOrderError(`batch ${seq} is not the next to anchor (anchored through ${c.anchored})`);
      if (seq > c.batchSeq) throw new StoreOrderError(`batch ${seq} is not sealed`);
      const rec: AnchorRecord = { ...anchor, anchoredAgeUs: c.ageUs };
      await c.metaWrite(
        [
          { type: "put", key: u64Key(P_ANCHOR, seq), value: Buffer.from(JSON.stringify(rec)) },
          { type: "put", key: M_ANCHORED, value: u64Value(seq) },
        ],
        "recording an anchor",
        this.#failed,
      );
      c.anchored = seq;
    });
  }

  /** Replaces the record of an anchored batch (see FrameStore.updateAnchor). */
  updateAnchor(seq: number, anchor: AnchorRecord): Promise<void> {
    const c = this.#c;
    return c.metaLock.run(async () => {
      if (!Number.isInteger(seq) || seq < 1 || seq > c.anchored)
        throw new StoreOrderError(`batch ${seq} is not anchored (anchored through ${c.anchored})`);
      const old = await this.getAnchor(seq);
      if (!old) throw new StoreOrderError(`batch ${seq} has no anchor record`);
      if (old.chainId !== anchor.chainId || old.contract.toLowerCase() !== anchor.contract.toLowerCase())
        throw new StoreOrderError(`batch ${seq} was anchored on another chain or registry`);
      const rec: AnchorRecord = { ...anchor };
      if (old.anchoredAgeUs !== undefined) rec.anchoredAgeUs = old.anchoredAgeUs;
      else delete rec.anchoredAgeUs;
      await c.metaWrite(
        [{ type: "put", key: u64Key(P_ANCHOR, seq), value: Buffer.from(JSON.stringify(rec)) }],
        "updating an anchor",
        this.#failed,
      );
    });
  }

  /**
   * Un-anchors the batches above `toSeq` (see FrameStore.rewindAnchors). `beforeWrite` runs inside
   * the lock before the database changes: the store lowers its watermark there first, so a crash in
   * between never looks like lost data at the next open.
   */
  rewindAnchors(toSeq: number, beforeWrite: () => Promise<void>): Promise<number> {
    const c = this.#c;
    return c.metaLock.run(async () => {
      if (!Number.isInteger(toSeq) || toSeq < 0)
        throw new StoreOrderError(`cannot rewind anchors to ${toSeq}`);
      if (toSeq >= c.anchored) return 0;
      if (toSeq < c.pruned.batchSeq)
        throw new StoreOrderError(
          `batch ${toSeq + 1} cannot be un-anchored: retention already pruned the frames of batches through ${c.pruned.batchSeq}`,
        );
      const n = c.anchored - toSeq;
      await beforeWrite();
      const ops: { type: "del"; key: Buffer }[] = [];
      for (let s = toSeq + 1; s <= c.anchored; s++) ops.push({ type: "del", key: u64Key(P_ANCHOR, s) });
      await c.metaWrite(
        [...ops, { type: "put", key: M_ANCHORED, value: u64Value(toSeq) }],
        "rewinding anchors",
        this.#failed,
      );
      c.anchored = toSeq;
      return n;
    });
  }

  async getAnchor(seq: number): Promise<AnchorRecord | undefined> {
    const v = await this.#c.read(u64Key(P_ANCHOR, seq));
    return v ? (JSON.parse(v.toString("utf8")) as AnchorRecord) : undefined;
  }
}
