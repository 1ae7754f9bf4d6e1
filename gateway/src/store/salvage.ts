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
 *
 * What was lost is learned from what survives, never from the absence of records alone: a range
 * that stops on a read error is recorded, LevelDB's repair log names the parts it dropped, and
 * the number of batches the source had sealed comes from its watermark and batch counter (a
 * damaged table can take every batch record with it). A copy that lacks sealed batches, or whose
 * source's batch count cannot be learned, is flagged: see salvageProblems.
 */
import { spawn } from "node:child_process";
import { cp, mkdtemp, readFile, readdir, rm } from "node:fs/promises";
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
  ZERO32,
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
import type { Watermark } from "./watermark.ts";
import { makeDir } from "../core/make-dir.ts";

/** A read that failed even after LevelDB's repair. */
export interface SalvageReadError {
  /** "range": a key range that stopped there (what it held from there on is not in the copy); "record": one key; "watermark": the file beside the database. */
  kind: "range" | "record" | "watermark";
  /** The key prefix read ("B" for batch records), for "range" and "record". */
  keys?: string;
  /** What was being read, e.g. "the batch records (B keys) after batch 2". */
  what: string;
  message: string;
}

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
  /** Batches the source had sealed after the kept ones (dropped; their surviving entries are kept unsealed). */
  batchesDropped: number;
  /**
   * Batches the source had sealed: its watermark's and batch counter's (Mbatch) count when either
   * is readable, else the highest seq a surviving batch, leaves, anchor or index record names.
   */
  sourceBatches: number;
  /** False when `sourceBatches` is only a lower bound (0: nothing to go by): no counter was readable and the database was damaged. */
  sourceBatchesKnown: boolean;
  /** Last arrival index the source's batches covered, and how many it had anchored (by its counters; 0 when unknown). */
  sourceSealedThrough: number;
  sourceAnchored: number;
  /** Last arrival index the kept batches cover. */
  keptSealedThrough: number;
  /** Kept batches the source had anchored whose anchor records were lost (the chain holds them). */
  anchorsLost: number;
  /** All the batches the source counted were kept, but its head (Mhead) is not the last kept batch's. */
  headMismatch: boolean;
  /** Reads that failed after the repair: a range that stopped is recorded here, never silently short. */
  readErrors: SalvageReadError[];
  /** What LevelDB's repair reported it could not read and dropped (lines of its log). */
  repairDropped: string[];
  /**
   * Why LevelDB's repair did not complete (it ended its process, e.g. on an assertion); the copy
   * was then read as the damaged store stands. Undefined when it ran.
   */
  repairFailed?: string;
}

type Db = ClassicLevel<Buffer, Buffer>;

/** Key prefixes of the batch records, their leaves, anchors and index: a range of them that stops affects the chain. */
const BATCH_KEYS = new Set(["B", "V", "A", "X"]);

function open(path: string, create: boolean): Db {
  return new ClassicLevel<Buffer, Buffer>(path, {
    keyEncoding: "buffer",
    valueEncoding: "buffer",
    createIfMissing: create,
    errorIfExists: create,
  });
}

const RANGES: Record<number, { name: string; unit: string; key: (k: Buffer) => number }> = {
  [P_LOG]: { name: "frame records", unit: "arrival index", key: (k) => readU64(k, 1) },
  [P_LEAF]: { name: "leaf records", unit: "arrival index", key: (k) => readU64(k, 1) },
  [P_BATCH]: { name: "batch records", unit: "batch", key: (k) => readU64(k, 1) },
  [P_LEAVES]: { name: "packed leaves", unit: "batch", key: (k) => readU64(k, 1) },
  [P_ANCHOR]: { name: "anchor records", unit: "batch", key: (k) => readU64(k, 1) },
  [P_INDEX]: { name: "batch index records", unit: "arrival index", key: (k) => readU64(k, 1) },
  [P_PRUNED]: { name: "pruned floors", unit: "device", key: (k) => k.readUInt32BE(1) },
};

function messageOf(e: unknown): string {
  const text = String((e as { message?: unknown } | null)?.message ?? e);
  const cause = (e as { cause?: { message?: unknown } } | null)?.cause?.message;
  return cause !== undefined && !text.includes(String(cause)) ? `${text}: ${String(cause)}` : text;
}

/** Every key-value pair with `prefix`; a read error ends the range and is recorded in `errors`. */
async function* scan(db: Db, prefix: number, errors: SalvageReadError[]): AsyncIterable<[Buffer, Buffer]> {
  const r = RANGES[prefix]!;
  const keys = String.fromCharCode(prefix);
  const it = db.iterator({ gte: Buffer.of(prefix), lt: Buffer.of(prefix + 1) });
  let last: Buffer | undefined;
  try {
    while (true) {
      let next: [Buffer, Buffer] | undefined;
      try {
        next = await it.next();
      } catch (e) {
        // Unreadable even after the repair: whatever this range holds from here on is not in
        // the copy, which the report must say (a batch range that ends early looks like fewer batches).
        const at =
          last && last.length >= (prefix === P_PRUNED ? 5 : 9)
            ? `after ${r.unit} ${r.key(last)}`
            : "from its start";
        errors.push({
          kind: "range",
          keys,
          what: `the ${r.name} (${keys} keys) ${at}`,
          message: messageOf(e),
        });
        return;
      }
      if (!next) return;
      last = next[0];
      yield next;
    }
  } finally {
    await it.close().catch(() => undefined);
  }
}

/** One record; a read error is recorded (not found is no error). */
async function read(
  db: Db,
  key: Buffer,
  what: string,
  errors: SalvageReadError[],
): Promise<Buffer | undefined> {
  try {
    return await db.get(key);
  } catch (e) {
    errors.push({ kind: "record", keys: String.fromCharCode(key[0]!), what, message: messageOf(e) });
    return undefined;
  }
}

/** A u64 counter record; undefined when absent, unreadable or too short. */
async function counter(db: Db, key: Buffer, errors: SalvageReadError[]): Promise<number | undefined> {
  const v = await read(db, key, `the counter ${key.toString("latin1")}`, errors);
  return v && v.length >= 8 ? readU64(v, 0) : undefined;
}

/**
 * The lines of LevelDB's repair log (`LOG` in the repaired folder) about a table or log file it
 * could not read in full, e.g. "Table #5: 2028 entries Corruption: bad block type" (repair.cc:
 * "N entries" counts what it kept). Lines ending in OK are intact files.
 */
async function repairLosses(db: string): Promise<string[]> {
  const log = await readFile(join(db, "LOG"), "utf8").catch(() => "");
  return log
    .split("\n")
    .map((l) => l.replace(/^\S+ \S+ /, "").trim()) // "2026/12/04-14:14:03.565685 7fd0f5f7b6c0 "
    .filter((l) => /^(?:Table|Log) #\d+: /.test(l) && !/(?: OK| entries repaired)$/.test(l))
    .map((l) => l.replace(/^Table #(\d+): (\d+) entries (.+)$/, "table #$1: $3 ($2 entries read)"));
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
 * LevelDB's repair of `dir`, in a child process: the prebuilt LevelDB of classic-level keeps its
 * assertions, and a damaged table whose keys are out of order fails one inside the repair
 * (table_builder.cc: "Compare(key, last_key) > 0"), which aborts the whole process (storage audit:
 * `vigil store salvage` died with exit 134 and no report). Undefined when the repair ran; else why
 * it did not, in words.
 */
async function repairInChild(dir: string): Promise<string | undefined> {
  const lib = import.meta.resolve("classic-level");
  const script = `const { ClassicLevel } = await import(${JSON.stringify(lib)}); await ClassicLevel.repair(process.argv[1]);`;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--input-type=module", "-e", script, dir], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    let err = "";
    child.stderr.on("data", (c: Buffer) => {
      if (err.length < 8192) err += c.toString("utf8");
    });
    child.on("error", (e) => resolve(`it could not be started: ${e.message}`));
    child.on("close", (code, signal) => {
      if (code === 0) return resolve(undefined);
      const assertion = /Assertion `[^`]*' failed/.exec(err)?.[0];
      const last = err.trim().split("\n").at(-1) ?? "";
      const why = assertion ?? (last || "no message");
      resolve(signal ? `LevelDB ended it with ${signal}: ${why}` : `exit status ${code}: ${why}`);
    });
  });
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
  const readErrors: SalvageReadError[] = [];
  const watermark = await new FileWatermark(fromDir).read().catch((e: unknown) => {
    readErrors.push({ kind: "watermark", what: "the watermark", message: messageOf(e) });
    return undefined;
  });
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
    const repairFailed = await repairInChild(copy);
    let repairDropped: string[] = [];
    if (repairFailed === undefined) repairDropped = await repairLosses(copy);
    else {
      // What a repair that died left behind is not to be trusted: start again from the source.
      await rm(copy, { recursive: true, force: true });
      await cp(join(fromDir, "db"), copy, { recursive: true, dereference: true });
    }
    const src = open(copy, false);
    await src.open().catch((e: unknown) => {
      if (repairFailed === undefined) throw e;
      throw new StoreIntegrityError(
        `LevelDB's repair of the copy did not complete (${repairFailed}) and the damaged store cannot be opened without it (${messageOf(e)}): nothing could be salvaged; keep ${fromDir} as it is for a closer look`,
      );
    });
    try {
      // A store of a newer format would be misread (format.ts); a damaged format record is read
      // as format 1, like any other damage the salvage works around.
      const format = await src.get(M_FORMAT).catch(() => undefined);
      if (format?.length === 4 && format.readUInt32BE(0) > STORE_FORMAT)
        throw new StoreFormatError(format.readUInt32BE(0), STORE_FORMAT);
      const r = await rebuild(src, toDir, { watermark, readErrors, repairDropped });
      return repairFailed === undefined ? r : { ...r, repairFailed };
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

interface Source {
  /** The source's watermark; undefined when it had none or it was unreadable. */
  watermark: Watermark | undefined;
  readErrors: SalvageReadError[];
  repairDropped: string[];
}

async function rebuild(src: Db, toDir: string, source: Source): Promise<SalvageReport> {
  const { watermark, readErrors: errors } = source;
  // 1. Entries: intact frames and leaf records by index.
  const entries = new Map<number, { kind: "frame" | "leaf"; value: Buffer }>();
  const damaged: number[] = [];
  for await (const [k, v] of scan(src, P_LOG, errors)) {
    const i = readU64(k, 1);
    if (intactFrame(i, v)) entries.set(i, { kind: "frame", value: v });
    else damaged.push(i);
  }
  for await (const [k, v] of scan(src, P_LEAF, errors)) {
    const i = readU64(k, 1);
    if (intactLeaf(v) && !entries.has(i)) entries.set(i, { kind: "leaf", value: v });
    else damaged.push(i);
  }
  // 2. How many batches the source had sealed. Its counters (the watermark beside the database,
  // Mbatch inside it) say so; the batch records alone do not: a damaged table takes them with it.
  // Without a counter the highest seq any surviving batch, leaves, anchor or index record names
  // is a lower bound, exact only when nothing was damaged.
  const batchCounter = await counter(src, M_BATCH, errors);
  const sealedCounter = await counter(src, M_SEALED, errors);
  const anchoredCounter = await counter(src, M_ANCHORED, errors);
  const sourceHead = await read(src, M_HEAD, "the counter Mhead", errors);
  let seen = 0;
  for (const p of [P_BATCH, P_LEAVES, P_ANCHOR])
    for await (const [k] of scan(src, p, errors)) seen = Math.max(seen, readU64(k, 1));
  for await (const [, v] of scan(src, P_INDEX, errors))
    if (v.length >= 8) seen = Math.max(seen, readU64(v, 0));
  const counted = watermark !== undefined || batchCounter !== undefined;
  const sourceBatches = counted ? Math.max(watermark?.batchSeq ?? 0, batchCounter ?? 0) : seen;
  const sourceBatchesKnown = counted || (errors.length === 0 && source.repairDropped.length === 0);
  const sourceSealedThrough = Math.max(watermark?.sealedThrough ?? 0, sealedCounter ?? 0);
  const sourceAnchored = Math.min(sourceBatches, Math.max(watermark?.anchored ?? 0, anchoredCounter ?? 0));
  // 3. Batches 1..k while consecutive, readable and linked.
  const batches: Array<{ batch: SealedBatch; leaves: Buffer; anchor: Buffer | undefined; raw: Buffer }> = [];
  let head = ZERO32;
  let expectFirst = 1;
  let firstBatchLost: number | undefined;
  for (let seq = 1; seq <= sourceBatches; seq++) {
    const raw = await read(src, u64Key(P_BATCH, seq), `batch ${seq}'s record`, errors);
    const leaves = await read(src, u64Key(P_LEAVES, seq), `batch ${seq}'s packed leaves`, errors);
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
    const anchor = await read(src, u64Key(P_ANCHOR, seq), `batch ${seq}'s anchor record`, errors);
    batches.push({ batch, leaves, anchor, raw: raw! });
    head = batch.head;
    expectFirst = batch.lastIndex + 1;
  }
  const sealed = batches.at(-1)?.batch.lastIndex ?? 0;
  // Anchors must be consecutive from 1 too.
  let anchored = 0;
  while (anchored < batches.length && batches[anchored]!.anchor) anchored++;
  const headMismatch =
    batches.length > 0 &&
    batches.length === sourceBatches &&
    sourceHead?.length === 32 &&
    "0x" + sourceHead.toString("hex") !== head;

  // 4. Pruned state and floors (entries at or below prunedThrough were deleted on purpose).
  const prunedRaw = await read(src, M_PRUNED, "the counter Mpruned", errors);
  const prunedThrough = prunedRaw && prunedRaw.length >= 32 ? Math.min(readU64(prunedRaw, 0), sealed) : 0;
  const lostSealed: number[] = [];
  for (let i = prunedThrough + 1; i <= sealed; i++) if (!entries.has(i)) lostSealed.push(i);

  // 5. Write the new store.
  await makeDir(toDir, 0o700);
  const dst = open(join(toDir, "db"), true);
  await dst.open();
  const report: SalvageReport = {
    entries: 0,
    frames: 0,
    leaves: 0,
    damaged: damaged.sort((a, b) => a - b),
    lostSealed,
    acknowledged: watermark?.lastIndex,
    prunedThrough,
    renumbered: 0,
    batchesKept: batches.length,
    firstBatchLost,
    batchesDropped: sourceBatches - batches.length,
    sourceBatches,
    sourceBatchesKnown,
    sourceSealedThrough,
    sourceAnchored,
    keptSealedThrough: sealed,
    anchorsLost: Math.max(0, Math.min(sourceAnchored, batches.length) - anchored),
    headMismatch,
    readErrors: errors,
    repairDropped: source.repairDropped,
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
      const old = await read(src, devKey(P_SEQ, dev), `device ${dev}'s sequence state`, errors);
      const st = old ? decodeDeviceSeq(old) : undefined;
      const v = Buffer.alloc(st?.bootId !== undefined ? 20 : 8);
      writeU64(v, 0, seq);
      if (st?.bootId !== undefined) {
        v.writeUInt32BE(st.bootId >>> 0, 8);
        writeU64(v, 12, Math.min(st.base, seq));
      }
      chunk.put(devKey(P_SEQ, dev), v);
    }
    for await (const [k, v] of scan(src, P_PRUNED, errors)) chunk.put(k, v);
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
    const age = await read(src, M_AGE, "the counter Mage", errors);
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

const seqs = (a: number, b: number): string => (a === b ? `batch ${a}` : `batches ${a}-${b}`);

/**
 * Why the copy must not simply be put in place (`vigil store salvage` exits 1): sealed batches
 * missing from it, a batch count that cannot be learned, lost anchor records, a range that could
 * not be read to its end. Empty when the other lines of the report say all that was lost.
 */
export function salvageProblems(r: SalvageReport): string[] {
  const out: string[] = [];
  const kept = r.batchesKept;
  if (r.repairFailed !== undefined)
    out.push(
      `LevelDB's repair of the copy did not complete (${r.repairFailed}), so the copy was read as the damaged store stands: what its unreadable tables held is not in the copy, and the lines above may not name all of it`,
    );
  const atLeast = r.sourceBatchesKnown ? "" : "at least ";
  if (r.batchesDropped > 0) {
    const through =
      r.sourceSealedThrough > r.keptSealedThrough ? ` (through arrival index ${r.sourceSealedThrough})` : "";
    const anchored = Math.max(0, r.sourceAnchored - kept);
    out.push(
      `sealed batches lost: the damaged store had sealed ${atLeast}${r.sourceBatches} batches${through}, the copy keeps ${kept}: ` +
        `batch ${r.firstBatchLost ?? kept + 1} was missing or damaged, so ${seqs(kept + 1, r.sourceBatches)} ${r.batchesDropped === 1 ? "was" : "were"} dropped` +
        `${anchored > 0 ? ` (${anchored} of them anchored on chain)` : ""}. Their surviving entries are in the copy, unsealed: ` +
        `a gateway started on it would seal them again from batch ${kept + 1}${anchored > 0 ? ", under seqs the chain already holds" : ""}, ` +
        `and receipts exported from the dropped batches would match nothing in the copy`,
    );
  }
  if (!r.sourceBatchesKnown)
    out.push(
      r.sourceBatches === 0
        ? "how many batches the damaged store had sealed cannot be learned (its watermark and batch counter are gone or unreadable, and its database is damaged): sealed batches may be missing from the copy"
        : `how many batches the damaged store had sealed beyond ${r.sourceBatches} cannot be learned (its watermark and batch counter are gone or unreadable, and its database is damaged): more sealed batches may be missing from the copy`,
    );
  if (r.anchorsLost > 0) {
    const from = Math.min(r.sourceAnchored, kept) - r.anchorsLost + 1;
    out.push(
      `the anchor records of ${seqs(from, from + r.anchorsLost - 1)} were lost although the damaged store had anchored ${r.anchorsLost === 1 ? "it" : "them"}`,
    );
  }
  if (r.headMismatch)
    out.push(
      `the damaged store's batch head (Mhead) is not the head of its last kept batch ${kept}: batches sealed after it may be missing from the copy`,
    );
  for (const e of r.readErrors)
    if (e.kind === "range")
      out.push(
        `${e.what} could not be read (${e.message}): what that range held from there on is not in the copy`,
      );
  return out;
}

/** The report for the operator; `to` is the new data folder (`--to`), for the advice. */
export function describeSalvage(r: SalvageReport, to = "NEW_DIR"): string {
  const problems = salvageProblems(r);
  const lines = [
    `copied ${r.entries} entries (${r.frames} frames, ${r.leaves} inference/alert leaves) and ${r.batchesKept} batches`,
  ];
  if (r.acknowledged !== undefined)
    lines.push(
      `the damaged store had acknowledged ${r.acknowledged} entries${r.prunedThrough > 0 ? `, ${r.prunedThrough} of them pruned on purpose before (retention)` : ""}; ${Math.max(0, r.acknowledged - r.prunedThrough - r.entries)} ${problems.length ? "of these entries are not in the copy, but the copy is not complete (✘ below)" : "are not in the copy"}`,
    );
  if (r.damaged.length) lines.push(`damaged entries skipped at arrival indexes ${ranges(r.damaged)}`);
  if (r.lostSealed.length)
    lines.push(
      `lost for good inside sealed batches: arrival indexes ${ranges(r.lostSealed)} (their receipts cannot be exported)`,
    );
  if (r.renumbered) lines.push(`${r.renumbered} unsealed entries were renumbered to close gaps`);
  for (const e of r.readErrors) if (e.kind !== "range") lines.push(`could not read ${e.what}: ${e.message}`);
  if (r.repairDropped.length)
    lines.push(`LevelDB's repair dropped what it could not read: ${r.repairDropped.join("; ")}`);
  if (problems.length === 0) return lines.join("\n");
  lines.push(...problems.map((p) => `✘ ${p}`));
  const chain =
    r.batchesDropped > 0 ||
    !r.sourceBatchesKnown ||
    r.anchorsLost > 0 ||
    r.headMismatch ||
    r.readErrors.some((e) => e.kind === "range" && BATCH_KEYS.has(e.keys ?? ""));
  if (chain)
    lines.push(
      `✘ before starting the gateway on the copy, reconcile it with the chain: vigil anchor resync -c FILE --data-dir ${to} (FILE: the gateway's config; it reports what the registry holds that the copy lacks, see "vigil anchor --help")`,
    );
  lines.push(
    `the copy is written but not complete: do not put it in place before acting on the ✘ lines (exit status 1)`,
  );
  return lines.join("\n");
}
