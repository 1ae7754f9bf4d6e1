/**
 * Integrity: the store knows what it must contain, and refuses to acknowledge anything over a
 * database that lost or damaged what it had acknowledged.
 *
 * LevelDB as classic-level exposes it cannot be asked for paranoid checks or verified read
 * checksums, and on its own it will silently drop a damaged write-ahead-log record, or create a
 * fresh empty database when its CURRENT file is gone (measured: a truncated 000003.log lost 70
 * acknowledged frames and the gateway started without a word). So:
 *
 * - **Watermark.** After every group commit (and every outbox change) the store syncs a small
 *   record outside LevelDB, `<dir>/watermark`: the highest acknowledged arrival index, the last
 *   sealed and anchored batch and the pruned floor. It is written in two alternating 64-byte slots,
 *   each with a generation and a CRC-32, so a torn write leaves the other slot valid.
 * - **Open checks.** At open the database must hold at least what the watermark says (counters),
 *   must exist when a watermark exists (it is never created over lost data), and the log's tail —
 *   the part that lives in LevelDB's write-ahead log — must be contiguous (every arrival index
 *   present exactly once) and every record in it must be intact (frames: CRC-32 and device id;
 *   leaves: structure). Any mismatch is a `StoreIntegrityError`: the gateway stops with the
 *   reason, and `vigil store check` / `vigil store salvage` take over.
 * - **Full check** (`checkEntries`, used by `vigil store check`): the same over the whole live log,
 *   plus the (device, seq) index and the leaf-hash index.
 */
import { leafFromPreimage } from "../core/leaf.ts";
import { FrameError } from "../protocol/errors.ts";
import { decodeFrame, FrameType } from "../protocol/frame.ts";
import type { StoreContext } from "./context.ts";
import {
  P_DEV,
  P_LEAF,
  P_LEAFHASH,
  P_LOG,
  decodeLeaf,
  decodeRecord,
  devSeqKey,
  prefixEnd,
  readU64,
  u64Key,
} from "./codec.ts";
import { StoreRecordError } from "./errors.ts";
import type { LogReader } from "./reads.ts";
import type { LogEntry } from "./types.ts";
import type { Watermark } from "./watermark.ts";

export {
  FileWatermark,
  MemoryWatermark,
  StoreIntegrityError,
  type Watermark,
  type WatermarkStore,
} from "./watermark.ts";

/** The watermark the store's current counters imply. */
export function watermarkOf(c: StoreContext): Watermark {
  return {
    lastIndex: c.lastIndex,
    batchSeq: c.batchSeq,
    sealedThrough: c.sealed,
    anchored: c.anchored,
    prunedThrough: c.pruned.throughIndex,
  };
}

/** Entries at the end of the log verified at every open (≥ LevelDB's write buffer of records). */
export const TAIL_CHECK = 131_072;

/**
 * Open-time checks (see the file comment). Returns the problems found (empty when the store is
 * consistent with its watermark); the caller turns them into a StoreIntegrityError.
 */
export async function checkAtOpen(c: StoreContext, reads: LogReader, w: Watermark): Promise<string[]> {
  const problems: string[] = [];
  if (c.lastIndex < w.lastIndex)
    problems.push(
      `the log ends at arrival index ${c.lastIndex} but ${w.lastIndex} were acknowledged: ${w.lastIndex - c.lastIndex} entries lost`,
    );
  if (c.batchSeq < w.batchSeq)
    problems.push(`batch ${w.batchSeq} was sealed but the batch log ends at ${c.batchSeq}`);
  if (c.anchored < w.anchored)
    problems.push(`batch ${w.anchored} was anchored but the store records ${c.anchored}`);
  if (c.pruned.throughIndex < w.prunedThrough && c.lastIndex >= w.lastIndex)
    problems.push(`retention had pruned through ${w.prunedThrough}, the store says ${c.pruned.throughIndex}`);
  const from = Math.max(c.pruned.throughIndex + 1, c.lastIndex - TAIL_CHECK + 1, 1);
  problems.push(...(await checkEntries(c, reads, from, c.lastIndex, { indexes: false })).problems);
  if (c.batchSeq > 0) {
    const b = await c.read(u64Key(0x42, c.batchSeq));
    if (!b) problems.push(`the last sealed batch ${c.batchSeq} is missing from the batch log`);
  }
  return problems;
}

export interface EntryCheck {
  /** Entries read (frames + leaf records). */
  entries: number;
  /** Arrival indexes in range with no entry. */
  missing: number[];
  problems: string[];
}

const MAX_LISTED = 1000;

/**
 * Verifies every entry with index in [from, to]: present exactly once (frame or leaf), intact
 * (a frame's raw bytes pass their CRC-32 and name the record's device; a leaf's preimage decodes
 * and, with `hashes`, hashes to its stored hash) and, with `indexes`, reachable through the
 * (device, seq) and leaf-hash indexes.
 */
export async function checkEntries(
  c: StoreContext,
  reads: LogReader,
  from: number,
  to: number,
  opts: { indexes?: boolean; hashes?: boolean } = {},
): Promise<EntryCheck> {
  const problems: string[] = [];
  const missing: number[] = [];
  let entries = 0;
  let expected = from;
  const gap = (upTo: number): void => {
    // Indexes a salvage recorded as lost inside kept batches (M_LOST) are known gaps, not damage.
    for (; expected < upTo; expected++)
      if (missing.length < MAX_LISTED && !c.lost.has(expected)) missing.push(expected);
  };
  for await (const chunk of readableChunks(reads, from, to)) {
    for (const e of chunk) {
      if ("damaged" in e) {
        // Present but undecodable: named, not counted as missing, and the check goes on.
        gap(e.index);
        expected = e.index + 1;
        entries++;
        problems.push(e.damaged);
        continue;
      }
      if (e.index < expected) {
        problems.push(`arrival index ${e.index} holds both a frame and a leaf record`);
        continue;
      }
      gap(e.index);
      expected = e.index + 1;
      entries++;
      if ("raw" in e) {
        try {
          const f = decodeFrame(e.raw);
          if (f.type !== FrameType.Data || f.deviceId !== e.deviceId)
            problems.push(`frame ${e.index}: record says device ${e.deviceId}, frame bytes say otherwise`);
        } catch (err) {
          problems.push(
            `frame ${e.index} is damaged (${err instanceof FrameError ? err.reason : String(err)})`,
          );
          continue;
        }
        if (opts.indexes) {
          const v = await c.read(devSeqKey(e.deviceId, e.seq));
          if (!v || readU64(v, 0) !== e.index)
            problems.push(
              `frame ${e.index} (device ${e.deviceId} seq ${e.seq}) is missing from the (device, seq) index`,
            );
        }
      } else if (
        opts.hashes &&
        Buffer.compare(Buffer.from(leafFromPreimage(e.preimage)), Buffer.from(e.hash)) !== 0
      )
        problems.push(`leaf record ${e.index}: stored hash is not keccak256 of its preimage`);
    }
  }
  gap(to + 1);
  if (missing.length > 0) problems.push(`${missing.length} arrival indexes missing: ${ranges(missing)}`);
  return { entries, missing, problems };
}

/** An entry whose stored value does not decode (StoreRecordError), in place of the entry. */
interface DamagedEntry {
  index: number;
  damaged: string;
}

/**
 * `reads.entryChunks(from, to)`, going on past values that do not decode: each becomes a
 * DamagedEntry. The entries read before it in the same chunk were not yielded (the chunk was being
 * built), so they are read again, up to it.
 */
async function* readableChunks(
  reads: LogReader,
  from: number,
  to: number,
): AsyncGenerator<(LogEntry | DamagedEntry)[]> {
  let at = from;
  while (at <= to) {
    let next = at;
    try {
      for await (const chunk of reads.entryChunks(at, to)) {
        yield chunk;
        if (chunk.length > 0) next = chunk[chunk.length - 1]!.index + 1;
      }
      return;
    } catch (e) {
      if (!(e instanceof StoreRecordError) || e.index < next) throw e;
      if (e.index > next) yield* readableChunks(reads, next, e.index - 1);
      yield [{ index: e.index, damaged: e.shortMessage }];
      at = e.index + 1;
    }
  }
}

/** "3, 7-9, 12" for sorted indexes. */
export function ranges(xs: readonly number[]): string {
  const out: string[] = [];
  for (let i = 0; i < xs.length;) {
    let j = i;
    while (j + 1 < xs.length && xs[j + 1] === xs[j]! + 1) j++;
    out.push(i === j ? `${xs[i]}` : `${xs[i]}-${xs[j]}`);
    i = j + 1;
  }
  return out.join(", ");
}

/** Keys of the `D` and `H` indexes that point at no entry (full check only). */
export async function danglingIndexes(c: StoreContext, reads: LogReader): Promise<string[]> {
  const problems: string[] = [];
  for await (const [k, v] of reads.range({ gte: Buffer.of(P_DEV), lt: prefixEnd(P_DEV) })) {
    const index = readU64(v, 0);
    if (index <= c.pruned.throughIndex) continue;
    const raw = await c.read(u64Key(P_LOG, index));
    const rec = raw ? decodeRecord(index, raw) : undefined;
    if (!rec || rec.deviceId !== k.readUInt32BE(1) || rec.seq !== readU64(k, 5))
      problems.push(
        `(device ${k.readUInt32BE(1)}, seq ${readU64(k, 5)}) points at index ${index}, which holds no such frame`,
      );
    if (problems.length >= MAX_LISTED) break;
  }
  for await (const [k] of reads.range({ gte: Buffer.of(P_LEAFHASH), lt: prefixEnd(P_LEAFHASH) })) {
    const index = readU64(k, 33);
    const raw = await c.read(u64Key(P_LEAF, index));
    if (!raw || Buffer.compare(Buffer.from(decodeLeaf(index, raw).hash), k.subarray(1, 33)) !== 0)
      problems.push(`leaf hash index entry for index ${index} points at no such leaf`);
    if (problems.length >= 2 * MAX_LISTED) break;
  }
  return problems;
}
