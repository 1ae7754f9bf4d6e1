/**
 * `vigil store salvage`: copies every intact frame, leaf record and batch of a damaged store into
 * a new one and says exactly what was lost. The damaged store is never written to: its database
 * folder is copied, LevelDB's repair runs on the copy (it rebuilds the manifest from the table
 * and log files, keeping what it can read), and the copy is read entry by entry.
 *
 * What the new store holds:
 * - every entry that decodes and is intact (a frame's CRC-32 and device id; a leaf record's
 *   preimage structure), at its original arrival index while that index is covered by a kept
 *   batch, so the batch's proofs stay valid;
 * - batch records (with their packed leaves and anchors) from 1 up to the first missing or
 *   damaged one: the outbox must stay consecutive;
 * - after the last kept batch, the remaining intact entries renumbered contiguously (they are
 *   not sealed yet; the sealer needs an unbroken run), in their original order;
 * - per-device sequence state recomputed from the kept frames (and the boot state of the
 *   source where it is readable), pruned floors copied;
 * - counters recomputed; a fresh watermark.
 */
import { cp, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ClassicLevel } from "classic-level";
import { VigilError } from "../core/errors.ts";
import { decodeModelLeaf } from "../core/leaf.ts";
import { decodeFrame, FrameType } from "../protocol/frame.ts";
import {
  M_AGE,
  M_ANCHORED,
  M_BATCH,
  M_HEAD,
  M_LAST,
  M_LOST,
  M_PRUNED,
  M_SEALED,
  decodeDeviceSeq,
} from "./context.ts";
import {
  LEAF_FIXED,
  P_ANCHOR,
  P_BATCH,
  P_INDEX,
  P_LEAF,
  P_LEAVES,
  P_LOG,
  P_PRUNED,
  P_SEQ,
  FLAG_CLOCK_UNVERIFIED,
  RECORD_FIXED,
  decodeRecord,
  devKey,
  devSeqKey,
  leafHashKey,
  readU64,
  storedLeafHash,
  u64Key,
  u64Value,
  writeU64,
} from "./codec.ts";
import { FileWatermark, StoreIntegrityError, ranges } from "./integrity.ts";
import { StoreFormatError } from "./errors.ts";
import { formatRecord, M_FORMAT, STORE_FORMAT } from "./format.ts";
import { KEY_BYTES, LEAF_KEY_BYTES } from "./log.ts";
import type { SealedBatch } from "./types.ts";
import { makeDir } from "../core/make-dir.ts";

export interface SalvageReport {
  /** Entries (frames + leaf records) copied. */
  entries: number;
  frames: number;
  leaves: number;
  /** Entries that were present but damaged, by arrival index. */
  damaged: number[];
  /** Arrival indexes inside kept batches with no intact entry (lost for good). */
  lostSealed: number[];
  /** The source's watermark said this many entries were acknowledged; undefined when unreadable. */
  acknowledged: number | undefined;
  /** Entries through this arrival index had been pruned on purpose (retention) before. */
  prunedThrough: number;
  /** Entries after the kept batches that were renumbered (unsealed, so nothing refers to them). */
  renumbered: number;
  batchesKept: number;
  /** First batch seq that was missing or damaged (later batches are dropped), if any. */
  firstBatchLost: number | undefined;
  /** Batches in the source after the kept ones (their entries are kept, to be sealed again). */
  batchesDropped: number;
}

type Db = ClassicLevel<Buffer, Buffer>;

function open(path: string, create: boolean): Db {
  return new ClassicLevel<Buffer, Buffer>(path, {
    keyEncoding: "buffer",
    valueEncoding: "buffer",
    createIfMissing: create,
    errorIfExists: create,
  });
}

async function* scan(db: Db, prefix: number): AsyncIterable<[Buffer, Buffer]> {
  const it = db.iterator({ gte: Buffer.of(prefix), lt: Buffer.of(prefix + 1) });
  try {
    while (true) {
      let next: [Buffer, Buffer] | undefined;
      try {
        next = await it.next();
      } catch {
        return; // the rest of this range is unreadable even after repair
      }
      if (!next) return;
      yield next;
    }
  } finally {
    await it.close().catch(() => undefined);
  }
}

function intactFrame(index: number, v: Buffer): boolean {
  // Flags other than the clock mark mean the record is damaged (codec.ts encodeRecord).
  if (v.length < RECORD_FIXED + 4 || (v[4]! & ~FLAG_CLOCK_UNVERIFIED) !== 0) return false;
  try {
    const r = decodeRecord(index, v);
    const f = decodeFrame(r.raw);
    return f.type === FrameType.Data && f.deviceId === r.deviceId;
  } catch {
    return false;
  }
}

function intactLeaf(v: Buffer): boolean {
  try {
    decodeModelLeaf(v[0] === 0x01 ? v.subarray(LEAF_FIXED) : v.subarray(8));
    return true;
  } catch {
    return false;
  }
}

/**
 * Salvages the store in `fromDir` (its `db` folder and `watermark`) into `toDir`, which must be new
 * or empty. Returns what was kept and lost.
 */
export async function salvageStore(fromDir: string, toDir: string): Promise<SalvageReport> {
  // Anything already there (another store's watermark, say) would mix with the salvaged store,
  // and a stale watermark slot of a higher generation would win over the new one.
  const there = await readdir(toDir).catch(() => undefined);
  if (there !== undefined && there.length > 0)
    throw new StoreIntegrityError(`${toDir} already exists and is not empty; salvage into a new folder`);
  const acknowledged = await new FileWatermark(fromDir).read().then(
    (w) => w?.lastIndex,
    () => undefined,
  );
  const work = await mkdtemp(join(tmpdir(), "vigil-salvage-"));
  const copy = join(work, "db");
  try {
    // dereference: a db folder (or files in it) that are links to another disk are copied, not
    // linked, so the repair below never reaches the source.
    await cp(join(fromDir, "db"), copy, { recursive: true, dereference: true });
    // LevelDB's repair: rebuilds the MANIFEST/CURRENT from whatever table and log files it can
    // read (a missing CURRENT, a truncated table or log). Only ever on the copy.
    if (!(await readdir(copy)).some((f) => f.endsWith(".ldb") || f.endsWith(".log") || f.endsWith(".sst")))
      throw new StoreIntegrityError(`${join(fromDir, "db")} holds no LevelDB data files to salvage`);
    await ClassicLevel.repair(copy);
    const src = open(copy, false);
    await src.open();
    try {
      // A store of a newer format would be misread (format.ts); a damaged format record is read
      // as format 1, like any other damage the salvage works around.
      const format = await src.get(M_FORMAT).catch(() => undefined);
      if (format?.length === 4 && format.readUInt32BE(0) > STORE_FORMAT)
        throw new StoreFormatError(format.readUInt32BE(0), STORE_FORMAT);
      return await rebuild(src, toDir, acknowledged);
    } catch (e) {
      // A half-written store in toDir would look like a fresh one to the gateway (entries without
      // their counters): removed, so the folder is as before and the salvage can be run again.
      // (A target that could not be made at all, e.g. under a file, has nothing to remove.)
      await rm(toDir, { recursive: true, force: true }).catch(() => undefined);
      if (there !== undefined) await makeDir(toDir);
      if (e instanceof VigilError) throw e;
      throw new StoreIntegrityError(
        `the salvage into ${toDir} failed (${(e as Error).message}); nothing was kept there, the source is unchanged`,
      );
    } finally {
      await src.close();
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function rebuild(src: Db, toDir: string, acknowledged: number | undefined): Promise<SalvageReport> {
  // 1. Entries: intact frames and leaf records by index.
  const entries = new Map<number, { kind: "frame" | "leaf"; value: Buffer }>();
  const damaged: number[] = [];
  for await (const [k, v] of scan(src, P_LOG)) {
    const i = readU64(k, 1);
    if (intactFrame(i, v)) entries.set(i, { kind: "frame", value: v });
    else damaged.push(i);
  }
  for await (const [k, v] of scan(src, P_LEAF)) {
    const i = readU64(k, 1);
    if (intactLeaf(v) && !entries.has(i)) entries.set(i, { kind: "leaf", value: v });
    else damaged.push(i);
  }
  // 2. Batches 1..k while consecutive, readable and linked.
  const batches: Array<{ batch: SealedBatch; leaves: Buffer; anchor: Buffer | undefined; raw: Buffer }> = [];
  let head = "0x" + "00".repeat(32);
  let expectFirst = 1;
  let sourceBatches = 0;
  for await (const [k] of scan(src, P_BATCH)) sourceBatches = Math.max(sourceBatches, readU64(k, 1));
  let firstBatchLost: number | undefined;
  for (let seq = 1; seq <= sourceBatches; seq++) {
    const raw = await src.get(u64Key(P_BATCH, seq)).catch(() => undefined);
    const leaves = await src.get(u64Key(P_LEAVES, seq)).catch(() => undefined);
    let batch: SealedBatch | undefined;
    try {
      batch = raw ? (JSON.parse(raw.toString("utf8")) as SealedBatch) : undefined;
    } catch {
      batch = undefined;
    }
    const n = batch ? batch.lastIndex - batch.firstIndex + 1 : 0;
    if (
      !batch ||
      !leaves ||
      batch.header.seq !== seq ||
      batch.firstIndex !== expectFirst ||
      leaves.length !== 32 * n ||
      batch.header.prevHead !== head
    ) {
      firstBatchLost = seq;
      break;
    }
    const anchor = await src.get(u64Key(P_ANCHOR, seq)).catch(() => undefined);
    batches.push({ batch, leaves, anchor, raw: raw! });
    head = batch.head;
    expectFirst = batch.lastIndex + 1;
  }
  const sealed = batches.at(-1)?.batch.lastIndex ?? 0;
  // Anchors must be consecutive from 1 too.
  let anchored = 0;
  while (anchored < batches.length && batches[anchored]!.anchor) anchored++;

  // 3. Pruned state and floors (entries at or below prunedThrough were deleted on purpose).
  const prunedRaw = await src.get(M_PRUNED).catch(() => undefined);
  const prunedThrough = prunedRaw && prunedRaw.length >= 32 ? Math.min(readU64(prunedRaw, 0), sealed) : 0;
  const lostSealed: number[] = [];
  for (let i = prunedThrough + 1; i <= sealed; i++) if (!entries.has(i)) lostSealed.push(i);

  // 4. Write the new store.
  await makeDir(toDir, 0o700);
  const dst = open(join(toDir, "db"), true);
  await dst.open();
  const report: SalvageReport = {
    entries: 0,
    frames: 0,
    leaves: 0,
    damaged: damaged.sort((a, b) => a - b),
    lostSealed,
    acknowledged,
    prunedThrough,
    renumbered: 0,
    batchesKept: batches.length,
    firstBatchLost,
    batchesDropped: sourceBatches - batches.length,
  };
  try {
    let chunk = dst.batch();
    let ops = 0;
    const flush = async (): Promise<void> => {
      if (ops === 0) return;
      await chunk.write({ sync: true });
      chunk = dst.batch();
      ops = 0;
    };
    const devices = new Map<number, number>();
    let next = sealed;
    let totalBytes = 0;
    const sorted = [...entries.keys()].sort((a, b) => a - b);
    for (const i of sorted) {
      if (i <= prunedThrough) continue;
      const e = entries.get(i)!;
      const index = i <= sealed ? i : ++next;
      if (i > sealed && index !== i) report.renumbered++;
      if (e.kind === "frame") {
        const r = decodeRecord(index, e.value);
        chunk.put(u64Key(P_LOG, index), e.value);
        chunk.put(devSeqKey(r.deviceId, r.seq), u64Value(index));
        devices.set(r.deviceId, Math.max(devices.get(r.deviceId) ?? -1, r.seq));
        totalBytes += RECORD_FIXED + KEY_BYTES + r.raw.length;
        report.frames++;
      } else {
        chunk.put(u64Key(P_LEAF, index), e.value);
        chunk.put(leafHashKey(storedLeafHash(e.value), index), Buffer.alloc(0));
        totalBytes += LEAF_KEY_BYTES + e.value.length;
        report.leaves++;
      }
      report.entries++;
      if (++ops >= 2000) await flush();
    }
    const lastIndex = Math.max(next, sealed);
    for (const [seq, b] of batches.entries()) {
      const s = seq + 1;
      chunk.put(u64Key(P_BATCH, s), b.raw);
      chunk.put(u64Key(P_LEAVES, s), b.leaves);
      chunk.put(u64Key(P_INDEX, b.batch.lastIndex), u64Value(s));
      if (s <= anchored && b.anchor) chunk.put(u64Key(P_ANCHOR, s), b.anchor);
    }
    // Per-device state: the source's boot state where it agrees with the kept frames.
    for (const [dev, seq] of devices) {
      const old = await src.get(devKey(P_SEQ, dev)).catch(() => undefined);
      const st = old ? decodeDeviceSeq(old) : undefined;
      const v = Buffer.alloc(st?.bootId !== undefined ? 20 : 8);
      writeU64(v, 0, seq);
      if (st?.bootId !== undefined) {
        v.writeUInt32BE(st.bootId >>> 0, 8);
        writeU64(v, 12, Math.min(st.base, seq));
      }
      chunk.put(devKey(P_SEQ, dev), v);
    }
    for await (const [k, v] of scan(src, P_PRUNED)) chunk.put(k, v);
    const last = Buffer.alloc(16);
    writeU64(last, 0, lastIndex);
    writeU64(last, 8, totalBytes);
    chunk.put(M_LAST, last);
    chunk.put(M_SEALED, u64Value(sealed));
    chunk.put(M_BATCH, u64Value(batches.length));
    chunk.put(M_HEAD, Buffer.from(head.slice(2), "hex"));
    chunk.put(M_ANCHORED, u64Value(anchored));
    if (prunedRaw && prunedThrough > 0) chunk.put(M_PRUNED, prunedRaw);
    // The gaps left inside kept batches, so the new store opens (integrity.ts skips them).
    if (lostSealed.length > 0) chunk.put(M_LOST, Buffer.concat(lostSealed.map(u64Value)));
    const age = await src.get(M_AGE).catch(() => undefined);
    if (age) chunk.put(M_AGE, age);
    const f = formatRecord();
    chunk.put(f.key, f.value);
    ops++;
    await flush();
    await new FileWatermark(toDir).write({
      lastIndex,
      batchSeq: batches.length,
      sealedThrough: sealed,
      anchored,
      prunedThrough,
    });
  } finally {
    await dst.close();
  }
  return report;
}

/** One paragraph for the operator. */
export function describeSalvage(r: SalvageReport): string {
  const lines = [
    `copied ${r.entries} entries (${r.frames} frames, ${r.leaves} inference/alert leaves) and ${r.batchesKept} batches`,
  ];
  if (r.acknowledged !== undefined)
    lines.push(
      `the damaged store had acknowledged ${r.acknowledged} entries${r.prunedThrough > 0 ? `, ${r.prunedThrough} of them pruned on purpose before (retention)` : ""}; ${Math.max(0, r.acknowledged - r.prunedThrough - r.entries)} are not in the copy`,
    );
  if (r.damaged.length) lines.push(`damaged entries skipped at arrival indexes ${ranges(r.damaged)}`);
  if (r.lostSealed.length)
    lines.push(
      `lost for good inside sealed batches: arrival indexes ${ranges(r.lostSealed)} (their receipts cannot be exported)`,
    );
  if (r.renumbered) lines.push(`${r.renumbered} unsealed entries were renumbered to close gaps`);
  if (r.firstBatchLost !== undefined)
    lines.push(
      `batch ${r.firstBatchLost} was missing or damaged: ${r.batchesDropped} batches from it on were dropped and their entries will be sealed again (reconcile the chain with "vigil anchor resync")`,
    );
  return lines.join("\n");
}
