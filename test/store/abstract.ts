/**
 * The shared behaviour suite of `FrameStore` (like aedes-persistence's abstract.js): every
 * implementation runs it unchanged through a factory.
 */
import { describe, expect, it, afterEach } from "vitest";
import fc from "fast-check";
import { encodeFrame, FrameType } from "../../gateway/src/protocol/frame.ts";
import type { CoreStoreOptions, KvFrameStore } from "../../gateway/src/store/core.ts";
import { checkEntries } from "../../gateway/src/store/integrity.ts";
import { StoreFullError, StoreOrderError, StoreUnavailableError } from "../../gateway/src/store/errors.ts";
import {
  isStoredLeaf,
  type AnchorRecord,
  type FrameRecord,
  type FrameStore,
  type LeafRecord,
  type SealedBatch,
} from "../../gateway/src/store/types.ts";
import {
  alertLeafPreimage,
  inferenceLeafPreimage,
  leafFromPreimage,
  sensorFaultLeafPreimage,
} from "../../gateway/src/core/leaf.ts";

export interface StoreHandle {
  store: FrameStore;
  /** Closes the store and opens a new instance on the same data. */
  reopen(): Promise<FrameStore>;
  cleanup(): Promise<void>;
}

export type StoreFactory = (opts: CoreStoreOptions) => Promise<StoreHandle>;

const BASE_US = 1_764_000_000_000_000;

export function record(deviceId: number, seq: number, value = seq): FrameRecord {
  const ts = BASE_US + seq * 1000;
  const raw = encodeFrame({
    type: FrameType.Data,
    deviceId,
    seq: seq >>> 0,
    timestampUs: ts,
    flags: 0,
    values: Float32Array.of(value, 1.5),
  });
  return { deviceId, seq, receivedUs: ts + 5, timestampUs: ts, raw };
}

/** An INFERENCE (or, with `alert`, ALERT) leaf record as the infer stage hands it over. */
export function leafRecord(deviceId: number, n: number, alert = false, model = 0x11): LeafRecord {
  const timestampUs = BASE_US + n * 1000;
  const common = {
    modelHash: new Uint8Array(32).fill(model),
    inputWindowHash: new Uint8Array(32).fill(n & 0xff),
    deviceId,
    timestampUs,
  };
  const preimage = alert
    ? alertLeafPreimage({
        ...common,
        severity: 2,
        rule: n % 2 ? "rul-low" : "rul-low:clear",
        score: n + 0.25,
      })
    : inferenceLeafPreimage({ ...common, outputs: [n, n / 3] });
  return {
    kind: alert ? "alert" : "inference",
    preimage,
    deviceId,
    timestampUs,
    hash: leafFromPreimage(preimage),
  };
}

/** A SENSOR_FAULT leaf record (the ALERT layout with tag 0x04). */
export function sensorFaultRecord(deviceId: number, n: number): LeafRecord {
  const timestampUs = BASE_US + n * 1000;
  const preimage = sensorFaultLeafPreimage({
    modelHash: new Uint8Array(32).fill(0x22),
    inputWindowHash: new Uint8Array(32).fill(n & 0xff),
    deviceId,
    timestampUs,
    severity: 1,
    rule: "stuck:s2",
    score: 1,
  });
  return { kind: "sensor-fault", preimage, deviceId, timestampUs, hash: leafFromPreimage(preimage) };
}

export function fakeBatch(
  seq: number,
  prevHead: string,
  firstIndex: number,
  lastIndex: number,
  sealedAtUs = BASE_US,
): SealedBatch {
  const h = (n: number): string => "0x" + n.toString(16).padStart(64, "0");
  return {
    header: {
      gatewayId: h(0xabc),
      seq,
      prevHead,
      root: h(seq * 7),
      leafCount: lastIndex - firstIndex + 1,
      firstTimestamp: BASE_US,
      lastTimestamp: BASE_US + 1,
      modelHash: h(0),
    },
    head: h(seq * 1000 + 1),
    digest: h(seq * 13),
    signature: "0x" + "11".repeat(65),
    signer: { keyType: "secp256k1", address: "0x" + "22".repeat(20), publicKey: "0x04" + "33".repeat(64) },
    domain: {
      name: "VigilRegistry",
      version: "1",
      chainId: 31337,
      verifyingContract: "0x" + "44".repeat(20),
    },
    firstIndex,
    lastIndex,
    sealedAtUs,
  };
}

const ZERO = "0x" + "00".repeat(32);

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

export function abstractFrameStoreSuite(name: string, factory: StoreFactory): void {
  describe(`FrameStore contract: ${name}`, () => {
    let handle: StoreHandle | undefined;
    /** The store's monotonic clock (ms): retention's uptime clock advances with it. */
    let mono = 0;
    const make = async (opts: CoreStoreOptions = {}): Promise<FrameStore> => {
      handle = await factory({ monotonicMs: () => mono, ...opts });
      return handle.store;
    };
    /** Moves the monotonic clock and lets retention see it (a prune that keeps everything). */
    const age = async (s: FrameStore, ms: number): Promise<void> => {
      mono += ms;
      expect(await s.prune({ retentionUs: Number.MAX_SAFE_INTEGER })).toBe(0);
    };
    afterEach(async () => {
      await handle?.cleanup();
      handle = undefined;
      mono = 0;
    });

    it("behavior: update-agent records (U prefix) survive a reopen and list by prefix", async () => {
      const s = await make();
      await s.append(record(7, 1));
      await s.putMeta("updates/fw/progress/7/2", Buffer.from("a"));
      await s.putMeta("updates/fw/progress/8/2", Buffer.from("b"));
      await s.putMeta("updates/model/p", Buffer.from("c"));
      const s2 = await handle!.reopen();
      expect((await s2.getMeta("updates/model/p"))?.toString()).toBe("c");
      expect(await s2.getMeta("updates/none")).toBeUndefined();
      expect((await s2.metaEntries("updates/fw/progress/")).map(([k, v]) => [k, v.toString()])).toEqual([
        ["updates/fw/progress/7/2", "a"],
        ["updates/fw/progress/8/2", "b"],
      ]);
      expect(await s2.getFrame(1)).toBeDefined();
    });

    it("behavior: append stores a frame readable by arrival index and by (device, seq)", async () => {
      const s = await make();
      const r = record(7, 1);
      expect(await s.append(r)).toBe("stored");
      const f = await s.getFrame(1);
      expect(f).toMatchObject({
        index: 1,
        deviceId: 7,
        seq: 1,
        receivedUs: r.receivedUs,
        timestampUs: r.timestampUs,
      });
      expect(Buffer.compare(f!.raw, r.raw)).toBe(0);
      expect((await s.getFrameBySeq(7, 1))?.index).toBe(1);
      expect(s.lastSeq(7)).toBe(1);
      expect(s.lastSeq(8)).toBeUndefined();
      expect(await s.has(7, 1)).toBe(true);
      expect(await s.has(7, 2)).toBe(false);
    });

    it("behavior: a duplicate is 'duplicate' and never written twice (concurrent and after commit)", async () => {
      const s = await make();
      const [a, b] = await Promise.all([s.append(record(1, 5)), s.append(record(1, 5))]);
      expect([a, b]).toEqual(["stored", "duplicate"]);
      expect(await s.append(record(1, 5))).toBe("duplicate");
      expect(await s.append(record(1, 6))).toBe("stored");
      expect(await s.append(record(1, 5))).toBe("duplicate");
      expect(s.stats().lastIndex).toBe(2);
    });

    it("behavior: a late frame below the device's last seq is stored once (slow path)", async () => {
      const s = await make();
      await s.append(record(2, 10));
      expect(await s.append(record(2, 8))).toBe("stored");
      const [x, y] = await Promise.all([s.append(record(2, 9)), s.append(record(2, 9))]);
      expect([x, y].sort()).toEqual(["duplicate", "stored"]);
      expect(s.lastSeq(2)).toBe(10);
      expect((await collect(s.framesByDevice(2))).map((f) => f.seq)).toEqual([8, 9, 10]);
      expect((await collect(s.framesByIndex(1, 99))).map((f) => f.seq)).toEqual([10, 8, 9]);
    });

    it("behavior: group commit puts many concurrent appends in few synced batches", async () => {
      const s = await make({ groupCommit: { flushIntervalMs: 5, maxBatchRecords: 100 } });
      const outs = await Promise.all(
        Array.from({ length: 1000 }, (_, i) => s.append(record(i % 10, Math.floor(i / 10)))),
      );
      expect(outs.every((o) => o === "stored")).toBe(true);
      expect(s.stats().lastIndex).toBe(1000);
      expect(s.stats().commits).toBeLessThanOrEqual(20);
      expect(s.stats().commits).toBeGreaterThanOrEqual(10);
      expect((await collect(s.framesByIndex(1, 1000))).map((f) => f.index)).toEqual(
        Array.from({ length: 1000 }, (_, i) => i + 1),
      );
    });

    it("behavior: maxBatchRecords 1 writes one batch per frame (the baseline)", async () => {
      const s = await make({ groupCommit: { flushIntervalMs: 0, maxBatchRecords: 1 } });
      await Promise.all(Array.from({ length: 20 }, (_, i) => s.append(record(1, i))));
      expect(s.stats().commits).toBe(20);
      // Every commit is timed, its write and its watermark sync.
      expect(s.commitTiming.write.count).toBe(20);
      expect(s.commitTiming.watermark.count).toBe(20);
      expect(s.commitTiming.write.maxUs).toBeGreaterThan(0);
    });

    it("behavior: per-device state, frames and the outbox survive a reopen", async () => {
      const s = await make();
      for (let i = 0; i < 5; i++) await s.append(record(3, 100 + i));
      await s.append(record(4, 1));
      await s.saveBatch(fakeBatch(1, ZERO, 1, 3), new Uint8Array(96));
      const s2 = await handle!.reopen();
      expect(s2.lastSeq(3)).toBe(104);
      expect(s2.lastSeq(4)).toBe(1);
      expect([...s2.devices().entries()].sort()).toEqual([
        [3, { lastSeq: 104, bootId: undefined, base: 0 }],
        [4, { lastSeq: 1, bootId: undefined, base: 0 }],
      ]);
      expect(await s2.append(record(3, 104))).toBe("duplicate");
      expect(await s2.append(record(3, 105))).toBe("stored");
      expect(s2.stats().lastIndex).toBe(7);
      expect(s2.lastBatchSeq()).toBe(1);
      expect(s2.sealedThrough()).toBe(3);
      expect(s2.lastHead()).toBe(fakeBatch(1, ZERO, 1, 3).head);
      expect((await s2.pendingAnchors()).map((b) => b.header.seq)).toEqual([1]);
    });

    it("error: maxFrames refuses new frames with StoreFullError; duplicates are still answered", async () => {
      const s = await make({ limits: { maxFrames: 3 } });
      for (let i = 1; i <= 3; i++) await s.append(record(1, i));
      const err = await s.append(record(1, 4)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StoreFullError);
      expect(err).toBeInstanceOf(StoreUnavailableError);
      expect((err as StoreFullError).code).toBe("STORE_FULL");
      expect(await s.append(record(1, 2))).toBe("duplicate");
      expect(s.lastSeq(1)).toBe(3);
      // After the refused frame, the same seq is accepted once there is room.
      await s.saveBatch(fakeBatch(1, ZERO, 1, 3, 0), new Uint8Array(96));
      await s.markAnchored(1, anchor(1));
      mono += 1;
      expect(await s.prune({ retentionUs: 5 })).toBe(3);
      expect(await s.append(record(1, 4))).toBe("stored");
    });

    it("error: maxBytes refuses new frames with StoreFullError", async () => {
      const s = await make({ limits: { maxBytes: 400 } });
      let stored = 0;
      let err: unknown;
      for (let i = 0; i < 20 && !err; i++) {
        await s.append(record(1, i)).then(
          () => stored++,
          (e: unknown) => (err = e),
        );
      }
      expect(err).toBeInstanceOf(StoreFullError);
      expect(stored).toBeGreaterThan(0);
      expect(s.stats().liveBytes).toBeLessThanOrEqual(400);
    });

    it("behavior: outbox: batches must be consecutive, linked, and anchored in order", async () => {
      const s = await make();
      for (let i = 1; i <= 6; i++) await s.append(record(1, i));
      await expect(s.saveBatch(fakeBatch(2, ZERO, 1, 2), new Uint8Array(64))).rejects.toBeInstanceOf(
        StoreOrderError,
      );
      await expect(s.saveBatch(fakeBatch(1, ZERO, 2, 3), new Uint8Array(64))).rejects.toBeInstanceOf(
        StoreOrderError,
      );
      await expect(s.saveBatch(fakeBatch(1, ZERO, 1, 9), new Uint8Array(9 * 32))).rejects.toBeInstanceOf(
        StoreOrderError,
      );
      const b1 = fakeBatch(1, ZERO, 1, 2);
      await s.saveBatch(b1, new Uint8Array(64).fill(1));
      await expect(s.saveBatch(fakeBatch(2, ZERO, 3, 4), new Uint8Array(64))).rejects.toBeInstanceOf(
        StoreOrderError,
      );
      const b2 = fakeBatch(2, b1.head, 3, 6);
      await s.saveBatch(b2, new Uint8Array(128).fill(2));
      expect(await s.getBatch(2)).toEqual(b2);
      expect((await s.getBatchLeaves(1))?.every((x) => x === 1)).toBe(true);
      expect((await s.batchForIndex(1))?.header.seq).toBe(1);
      expect((await s.batchForIndex(2))?.header.seq).toBe(1);
      expect((await s.batchForIndex(3))?.header.seq).toBe(2);
      expect(await s.batchForIndex(7)).toBeUndefined();
      expect((await s.pendingAnchors()).map((b) => b.header.seq)).toEqual([1, 2]);
      await expect(s.markAnchored(2, anchor(2))).rejects.toBeInstanceOf(StoreOrderError);
      await s.markAnchored(1, anchor(1));
      await expect(s.markAnchored(1, anchor(1))).rejects.toBeInstanceOf(StoreOrderError);
      expect((await s.pendingAnchors()).map((b) => b.header.seq)).toEqual([2]);
      await s.markAnchored(2, anchor(2));
      await expect(s.markAnchored(3, anchor(3))).rejects.toBeInstanceOf(StoreOrderError);
      expect(await s.getAnchor(2)).toMatchObject(anchor(2));
      expect(s.anchoredThrough()).toBe(2);
      expect(await s.pendingAnchors()).toEqual([]);
    });

    it("behavior: updateAnchor replaces an anchored batch's record (finality, a reorg's new block) and keeps its retention stamp", async () => {
      const s = await make();
      for (let i = 1; i <= 4; i++) await s.append(record(1, i));
      const b1 = fakeBatch(1, ZERO, 1, 2);
      await s.saveBatch(b1, new Uint8Array(64));
      await s.saveBatch(fakeBatch(2, b1.head, 3, 4), new Uint8Array(64));
      await expect(s.updateAnchor(1, anchor(1))).rejects.toBeInstanceOf(StoreOrderError); // not anchored
      await s.markAnchored(1, { ...anchor(1), final: false, blockHash: "0x" + "aa".repeat(32) });
      const stamp = (await s.getAnchor(1))!.anchoredAgeUs;
      const moved = {
        ...anchor(1),
        blockNumber: 99,
        blockHash: "0x" + "bb".repeat(32),
        final: true,
        anchoredAgeUs: 12345,
      };
      await s.updateAnchor(1, moved);
      expect(await s.getAnchor(1)).toEqual({ ...moved, anchoredAgeUs: stamp });
      await expect(s.updateAnchor(1, { ...moved, chainId: 10 })).rejects.toBeInstanceOf(StoreOrderError);
      await expect(s.updateAnchor(1, { ...moved, contract: "0x" + "55".repeat(20) })).rejects.toBeInstanceOf(
        StoreOrderError,
      );
      await expect(s.updateAnchor(2, anchor(2))).rejects.toBeInstanceOf(StoreOrderError);
      const s2 = await handle!.reopen();
      expect((await s2.getAnchor(1))?.blockHash).toBe("0x" + "bb".repeat(32));
    });

    it("behavior: rewindAnchors un-anchors the batches above a seq, which go out again unchanged; it survives a reopen and never goes below pruned data", async () => {
      const s = await make();
      for (let i = 1; i <= 8; i++) await s.append(record(1, i));
      let prev = ZERO;
      for (let b = 1; b <= 4; b++) {
        const batch = fakeBatch(b, prev, 2 * b - 1, 2 * b);
        await s.saveBatch(batch, new Uint8Array(64));
        prev = batch.head;
      }
      for (let b = 1; b <= 4; b++) await s.markAnchored(b, anchor(b));
      expect(await s.rewindAnchors(4)).toBe(0);
      expect(await s.rewindAnchors(2)).toBe(2);
      expect(s.anchoredThrough()).toBe(2);
      expect(s.stats().anchoredThrough).toBe(2);
      expect(await s.getAnchor(3)).toBeUndefined();
      expect(await s.getAnchor(4)).toBeUndefined();
      expect((await s.getAnchor(2))?.txHash).toBe(anchor(2).txHash);
      expect((await s.pendingAnchors()).map((b) => b.header.seq)).toEqual([3, 4]);
      expect(await s.getBatch(3)).toEqual(fakeBatch(3, (await s.getBatch(2))!.head, 5, 6)); // unchanged
      await expect(s.markAnchored(4, anchor(4))).rejects.toBeInstanceOf(StoreOrderError);
      await s.markAnchored(3, { ...anchor(3), txHash: "0x" + "cc".repeat(32) });
      // The watermark follows: reopening is not an integrity error, and the state is the rewound one.
      const s2 = await handle!.reopen();
      expect(s2.anchoredThrough()).toBe(3);
      expect((await s2.getAnchor(3))?.txHash).toBe("0x" + "cc".repeat(32));
      // Retention pruned batch 1: un-anchoring it would break "pruned implies anchored".
      mono += 10;
      expect(await s2.prune({ retentionUs: 0 })).toBeGreaterThan(0);
      expect(s2.stats().prunedThrough).toBeGreaterThanOrEqual(2);
      await expect(s2.rewindAnchors(0)).rejects.toBeInstanceOf(StoreOrderError);
      await expect(s2.rewindAnchors(-1)).rejects.toBeInstanceOf(StoreOrderError);
      expect(s2.anchoredThrough()).toBe(3);
    });

    it("behavior: prune deletes only anchored frames older than the window; dedupe and leaves survive", async () => {
      const s = await make();
      for (let i = 1; i <= 6; i++) await s.append(record(1, i));
      const b1 = fakeBatch(1, ZERO, 1, 3, 1000);
      const b2 = fakeBatch(2, b1.head, 4, 5, 2000);
      await s.saveBatch(b1, new Uint8Array(96));
      await s.saveBatch(b2, new Uint8Array(64));
      mono += 10;
      expect(await s.prune({ retentionUs: 0 })).toBe(0); // nothing anchored yet
      await s.markAnchored(1, anchor(1)); // at 10 ms of uptime
      await age(s, 1);
      await s.markAnchored(2, anchor(2)); // at 11 ms
      mono += 9;
      expect(await s.prune({ retentionUs: 9500 })).toBe(3); // at 20 ms batch 2 is too young
      expect(await s.getFrame(1)).toBeUndefined();
      expect(await s.getFrameBySeq(1, 3)).toBeUndefined();
      expect((await s.getFrame(4))?.seq).toBe(4);
      expect(await s.has(1, 2)).toBe(true);
      expect(await s.append(record(1, 2))).toBe("duplicate");
      expect(await s.getBatchLeaves(1)).toHaveLength(96);
      expect(s.stats()).toMatchObject({ liveFrames: 3, prunedThrough: 3 });
      mono += 100;
      expect(await s.prune({ retentionUs: 9500 })).toBe(2); // frame 6 is not sealed
      expect((await collect(s.framesByIndex(0, 100))).map((f) => f.index)).toEqual([6]);
      const s2 = await handle!.reopen();
      expect(s2.stats()).toMatchObject({ liveFrames: 1, prunedThrough: 5, lastIndex: 6 });
      expect(await s2.append(record(1, 1))).toBe("duplicate");
    });

    it("behavior: an anchored batch that is not final yet is never pruned (a reorg may still un-anchor it); once final it is", async () => {
      const s = await make();
      for (let i = 1; i <= 3; i++) await s.append(record(1, i));
      await s.saveBatch(fakeBatch(1, ZERO, 1, 3, 0), new Uint8Array(96));
      await s.markAnchored(1, { ...anchor(1), final: false });
      mono += 10;
      expect(await s.prune({ retentionUs: 0 })).toBe(0);
      await s.rewindAnchors(0); // the reorg it was kept for
      await s.markAnchored(1, { ...anchor(1), final: false });
      await s.updateAnchor(1, { ...anchor(1), final: true });
      mono += 10;
      expect(await s.prune({ retentionUs: 0 })).toBe(3);
    });

    it("behavior: retention counts uptime since anchoring: a clock jump or a long pause cannot age batches, and the clock survives a reopen", async () => {
      const s = await make();
      for (let i = 1; i <= 3; i++) await s.append(record(1, i));
      await s.saveBatch(fakeBatch(1, ZERO, 1, 3, 0), new Uint8Array(96));
      await s.markAnchored(1, anchor(1));
      const hour = 3600e6;
      // 30 days pass in one step (NTP fixed a stale clock, or the process was suspended): the
      // retention clock advances by at most its bound (10 min), far below a 1 h window.
      mono += 30 * 24 * 3_600_000;
      expect(await s.prune({ retentionUs: hour })).toBe(0);
      expect(s.stats().retentionClockUs).toBe(600e6);
      // Ten-minute steps of real uptime: pruned once an hour has passed since anchoring.
      for (let i = 0; i < 4; i++) await age(s, 600_000);
      expect(s.stats().retentionClockUs).toBe(3000e6);
      const s2 = await handle!.reopen();
      expect(s2.stats().retentionClockUs).toBe(3000e6); // persisted
      mono += 600_000;
      expect(await s2.prune({ retentionUs: hour })).toBe(3);
      expect((await s2.getAnchor(1))?.anchoredAgeUs).toBe(0);
    });

    it("error: append after close rejects StoreUnavailableError CLOSED; pending appends are flushed by close", async () => {
      const s = await make({ groupCommit: { flushIntervalMs: 1000, maxBatchRecords: 1000 } });
      const p = s.append(record(1, 1));
      await s.close();
      expect(await p).toBe("stored");
      const err = await s.append(record(1, 2)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StoreUnavailableError);
      expect((err as StoreUnavailableError).reason).toBe("CLOSED");
    });

    it("behavior: leaf records share the arrival index with frames; readable by index and by hash", async () => {
      const s = await make();
      const l1 = leafRecord(7, 1);
      const l2 = leafRecord(7, 1, true);
      await Promise.all([s.append(record(7, 1)), s.appendLeaf(l1), s.appendLeaf(l2), s.append(record(7, 2))]);
      expect(s.stats()).toMatchObject({ lastIndex: 4, liveFrames: 4, leavesStored: 2, leafFailures: 0 });
      expect(await s.getFrame(2)).toBeUndefined();
      const g = (await s.getLeaf(2))!;
      expect(g).toMatchObject({ index: 2, kind: "inference", deviceId: 7, timestampUs: l1.timestampUs });
      expect(Buffer.compare(g.preimage, l1.preimage)).toBe(0);
      expect(Buffer.compare(g.hash, l1.hash!)).toBe(0);
      expect(await s.getLeaf(1)).toBeUndefined();
      expect((await s.getByLeafHash(l2.hash!))?.index).toBe(3);
      expect((await s.getByLeafHash("0x" + Buffer.from(l1.hash!).toString("hex")))?.index).toBe(2);
      expect(await s.getByLeafHash(new Uint8Array(32))).toBeUndefined();
      expect((await s.entryByIndex(3))?.index).toBe(3);
      expect(isStoredLeaf((await s.entryByIndex(3))!)).toBe(true);
      expect(isStoredLeaf((await s.entryByIndex(4))!)).toBe(false);
      // Frame readers see frames only; entryChunks sees the whole contiguous run.
      expect((await collect(s.framesByIndex(1, 10))).map((f) => f.index)).toEqual([1, 4]);
      const entries = (await collect(s.entryChunks(1, 10))).flat();
      expect(entries.map((e) => [e.index, isStoredLeaf(e) ? e.kind : "frame"])).toEqual([
        [1, "frame"],
        [2, "inference"],
        [3, "alert"],
        [4, "frame"],
      ]);
      // Leaves do not touch the (device, seq) state: frame dedupe is unchanged.
      expect(s.lastSeq(7)).toBe(2);
      expect(await s.append(record(7, 1))).toBe("duplicate");
      // The same leaf twice is stored twice; lookup by hash gives the first.
      await s.appendLeaf(l1);
      expect(s.stats().lastIndex).toBe(5);
      expect((await s.getByLeafHash(l1.hash!))?.index).toBe(2);
      const s2 = await handle!.reopen();
      expect(s2.stats().lastIndex).toBe(5);
      expect((await s2.getByLeafHash(l2.hash!))?.kind).toBe("alert");
      expect((await collect(s2.entryChunks(0, 99))).flat().map((e) => e.index)).toEqual([1, 2, 3, 4, 5]);
    });

    it("behavior: entryChunks merges long mixed runs in order, in chunks of at most 1024", async () => {
      const s = await make({ groupCommit: { flushIntervalMs: 1, maxBatchRecords: 500 } });
      const ops: Promise<unknown>[] = [];
      const kinds: string[] = [];
      for (let i = 0; i < 3000; i++) {
        if (i % 7 === 3 || (i > 1500 && i < 1600)) {
          ops.push(s.appendLeaf(leafRecord(1 + (i % 4), i, i % 2 === 0)));
          kinds.push("leaf");
        } else {
          ops.push(s.append(record(1 + (i % 4), i)));
          kinds.push("frame");
        }
      }
      await Promise.all(ops);
      const chunks = await collect(s.entryChunks(1, 3000));
      expect(chunks.every((c) => c.length <= 1024)).toBe(true);
      const all = chunks.flat();
      expect(all.map((e) => e.index)).toEqual(Array.from({ length: 3000 }, (_, i) => i + 1));
      expect(all.map((e) => (isStoredLeaf(e) ? "leaf" : "frame"))).toEqual(kinds);
      expect((await collect(s.entryChunks(1499, 1502))).flat().map((e) => e.index)).toEqual([
        1499, 1500, 1501, 1502,
      ]);
    });

    it("behavior: the unsealed tail in memory serves entryChunks with exactly what a reopened store reads from disk", async () => {
      const s = await make({ groupCommit: { flushIntervalMs: 1, maxBatchRecords: 300 } });
      const ops: Promise<unknown>[] = [];
      for (let i = 0; i < 2000; i++) {
        if (i % 5 === 2) ops.push(s.appendLeaf(leafRecord(1 + (i % 3), i, i % 2 === 0)));
        else if (i % 97 === 0) ops.push(s.appendLeaf(sensorFaultRecord(1 + (i % 3), i)));
        else
          ops.push(
            s.append({ ...record(1 + (i % 3), i), ...(i % 11 === 0 ? { clockUnverified: true } : {}) }),
          );
      }
      await Promise.all(ops);
      const tail = (s as KvFrameStore).internals.ctx.tail;
      expect(tail.covers(1, 2000)).toBe(true); // what follows is read from memory
      const fromTail = (await collect(s.entryChunks(1, 2000))).flat();
      const mid = (await collect(s.entryChunks(700, 1300))).flat();
      // Sealing through 1000 drops those entries from memory; the rest is still served from it.
      await s.saveBatch(fakeBatch(1, ZERO, 1, 1000), new Uint8Array(32 * 1000));
      expect(tail.covers(1000, 1000)).toBe(false);
      expect(tail.covers(1001, 2000)).toBe(true);
      const s2 = await handle!.reopen();
      expect((s2 as KvFrameStore).internals.ctx.tail.size).toBe(0); // a reopened store reads from disk
      const fromDisk = (await collect(s2.entryChunks(1, 2000))).flat();
      expect(fromTail).toHaveLength(2000);
      expect(fromTail).toEqual(fromDisk);
      expect(mid).toEqual(fromDisk.slice(699, 1300));
      expect(new Set(fromTail.filter(isStoredLeaf).map((e) => e.kind))).toEqual(
        new Set(["inference", "alert", "sensor-fault"]),
      );
      expect(fromTail.filter((e) => !isStoredLeaf(e) && e.clockUnverified)).toHaveLength(
        fromDisk.filter((e) => !isStoredLeaf(e) && e.clockUnverified).length,
      );
    });

    it("error: invalid leaf records reject with RangeError and are counted", async () => {
      const s = await make();
      const good = leafRecord(1, 1);
      const bad: LeafRecord[] = [
        { ...good, kind: "alert" },
        { ...good, deviceId: 2 },
        { ...good, timestampUs: good.timestampUs + 1 },
        { ...good, hash: new Uint8Array(31) },
        { ...good, preimage: good.preimage.subarray(0, good.preimage.length - 2) },
        { ...good, preimage: Uint8Array.of(0x01, 0, 0) },
      ];
      for (const b of bad) await expect(s.appendLeaf(b)).rejects.toBeInstanceOf(RangeError);
      expect(s.stats()).toMatchObject({ lastIndex: 0, leafFailures: bad.length });
      await s.appendLeaf(good);
      expect(s.stats()).toMatchObject({ lastIndex: 1, leavesStored: 1 });
    });

    it("behavior: a leaf is hashed once, by its producer: the store keeps the given hash, and the full check recomputes it", async () => {
      const s = await make();
      const good = leafRecord(1, 1);
      const wrong = { ...leafRecord(1, 2), hash: new Uint8Array(32).fill(9) };
      await s.appendLeaf(good);
      await s.appendLeaf(wrong);
      expect(Buffer.from((await s.getLeaf(1))!.hash)).toEqual(Buffer.from(good.hash));
      expect(Buffer.from((await s.getByLeafHash(wrong.hash))!.preimage)).toEqual(Buffer.from(wrong.preimage));
      const { ctx, reads } = (s as KvFrameStore).internals;
      const check = await checkEntries(ctx, reads, 1, 2, { hashes: true, indexes: true });
      expect(check.problems).toEqual(["leaf record 2: stored hash is not keccak256 of its preimage"]);
    });

    it("error: appendLeaf refuses like append when the store is full or closed", async () => {
      const s = await make({ limits: { maxFrames: 2 } });
      await s.append(record(1, 1));
      await s.appendLeaf(leafRecord(1, 1));
      await expect(s.appendLeaf(leafRecord(1, 2))).rejects.toBeInstanceOf(StoreFullError);
      await expect(s.append(record(1, 2))).rejects.toBeInstanceOf(StoreFullError);
      await s.close();
      const err = await s.appendLeaf(leafRecord(1, 3)).catch((e: unknown) => e);
      expect((err as StoreUnavailableError).reason).toBe("CLOSED");
      expect(s.stats().leafFailures).toBe(2);
    });

    it("behavior: batches cover mixed runs; prune deletes leaf records and their hash index", async () => {
      const s = await make();
      await s.append(record(1, 1));
      const l = leafRecord(1, 1, true);
      await s.appendLeaf(l);
      await s.append(record(1, 2));
      await s.appendLeaf(leafRecord(1, 2));
      const b1 = fakeBatch(1, ZERO, 1, 3, 1000);
      await s.saveBatch(b1, new Uint8Array(96));
      await s.saveBatch(fakeBatch(2, b1.head, 4, 4, 1000), new Uint8Array(32));
      expect((await s.batchForIndex(2))?.header.seq).toBe(1);
      expect((await s.batchForIndex(4))?.header.seq).toBe(2);
      await s.markAnchored(1, anchor(1));
      expect(await s.prune({ retentionUs: 0 })).toBe(3);
      expect(await s.getLeaf(2)).toBeUndefined();
      expect(await s.getByLeafHash(l.hash!)).toBeUndefined();
      expect((await s.getLeaf(4))?.kind).toBe("inference");
      expect(s.stats()).toMatchObject({ liveFrames: 1, prunedThrough: 3 });
      expect(await s.append(record(1, 1))).toBe("duplicate");
    });

    it("property: any interleaving of sends and resends stores each (device, seq) exactly once", async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 15 })), {
            minLength: 1,
            maxLength: 60,
          }),
          fc.integer({ min: 1, max: 8 }),
          async (sends, chunk) => {
            const h = await factory({ groupCommit: { flushIntervalMs: 1, maxBatchRecords: 4 } });
            try {
              const outcomes: Promise<string>[] = [];
              for (let i = 0; i < sends.length; i += chunk) {
                const part = sends.slice(i, i + chunk).map(([d, q]) => h.store.append(record(d, q)));
                outcomes.push(...part);
                await Promise.all(part);
              }
              const res = await Promise.all(outcomes);
              const uniq = new Set(sends.map(([d, q]) => `${d}:${q}`));
              expect(res.filter((r) => r === "stored")).toHaveLength(uniq.size);
              const all = await collect(h.store.framesByIndex(1, 1000));
              expect(new Set(all.map((f) => `${f.deviceId}:${f.seq}`)).size).toBe(all.length);
              expect(all).toHaveLength(uniq.size);
            } finally {
              await h.cleanup();
            }
          },
        ),
        { numRuns: 25 },
      );
    });

    it("behavior: the registry cache saves entries with its meta record atomically and survives a reopen", async () => {
      const s = await make();
      expect(await s.loadRegistry()).toEqual({ meta: undefined, entries: [] });
      await s.saveRegistry(
        [
          { kind: "s", id: "0000002a", value: { status: "active", keyType: "none", publicKey: "0x" } },
          { kind: "w", id: "0x" + "aa".repeat(20), value: 1_900_000_000 },
          { kind: "a", id: "0x" + "bb".repeat(20), value: true },
        ],
        { processed: 120, hash: "0x01" },
      );
      // An update, a delete and a new entry in one save.
      await s.saveRegistry(
        [
          { kind: "s", id: "0000002a", value: { status: "revoked", keyType: "none", publicKey: "0x" } },
          { kind: "a", id: "0x" + "bb".repeat(20), value: undefined },
          { kind: "s", id: "00000001", value: { status: "active", keyType: "none", publicKey: "0x" } },
        ],
        { processed: 130, hash: "0x02" },
      );
      // Frames and batches are untouched by the cache (own key prefix).
      expect(await s.append(record(1, 1))).toBe("stored");
      const again = await handle!.reopen();
      const st = await again.loadRegistry();
      expect(st.meta).toEqual({ processed: 130, hash: "0x02" });
      expect(st.entries.map((e) => [e.kind, e.id, e.value])).toEqual([
        ["s", "00000001", { status: "active", keyType: "none", publicKey: "0x" }],
        ["s", "0000002a", { status: "revoked", keyType: "none", publicKey: "0x" }],
        ["w", "0x" + "aa".repeat(20), 1_900_000_000],
      ]);
      expect(again.stats().lastIndex).toBe(1);
      expect((await again.getFrame(1))?.deviceId).toBe(1);
    });

    it("behavior: a replacing save leaves exactly the given entries", async () => {
      const s = await make();
      await s.saveRegistry(
        [
          { kind: "s", id: "00000001", value: 1 },
          { kind: "s", id: "00000002", value: 2 },
        ],
        { processed: 1 },
      );
      await s.saveRegistry([{ kind: "s", id: "00000002", value: 3 }], { processed: 2 }, true);
      const st = await s.loadRegistry();
      expect(st.entries).toEqual([{ kind: "s", id: "00000002", value: 3 }]);
      expect(st.meta).toEqual({ processed: 2 });
    });

    it("error: a registry cache kind or id outside the key format is refused before anything is written", async () => {
      const s = await make();
      await expect(s.saveRegistry([{ kind: "", id: "x", value: 1 }], { processed: 1 })).rejects.toThrow(
        RangeError,
      );
      await expect(
        s.saveRegistry([{ kind: "s", id: "x".repeat(201), value: 1 }], { processed: 1 }),
      ).rejects.toThrow(/201 bytes/);
      expect(await s.loadRegistry()).toEqual({ meta: undefined, entries: [] });
    });
  });
}

export function anchor(seq: number): AnchorRecord {
  return {
    chainId: 31337,
    contract: "0x" + "44".repeat(20),
    txHash: "0x" + seq.toString(16).padStart(64, "0"),
    blockNumber: 10 + seq,
    confirmations: 1,
    anchoredAtUs: BASE_US + seq,
  };
}
