/**
 * The watermark: what the store must contain, synced outside the database after every group
 * commit and outbox change (integrity.ts explains why). Two alternating 64-byte slots, each with
 * a generation and a CRC-32, so a torn write leaves the other slot valid.
 *
 * Slot layout (big-endian): magic "VGWM" u32 ‖ format 1 u32 ‖ generation u64 ‖ lastIndex u64 ‖
 * batchSeq u64 ‖ sealedThrough u64 ‖ anchored u64 ‖ prunedThrough u64 ‖ 4 bytes 0 ‖ CRC-32 of
 * bytes 0..59 u32.
 */
import { open as openFile, readFile, rename } from "node:fs/promises";
import { dirname, join } from "node:path";
import { crc32 } from "../protocol/crc32.ts";
import { readU64, writeU64 } from "./codec.ts";
import { StoreIntegrityError } from "./errors.ts";

export { StoreIntegrityError } from "./errors.ts";

/** What the store must contain, as last synced outside the database. */
export interface Watermark {
  /** Highest arrival index acknowledged (frames and leaf records). */
  lastIndex: number;
  /** Last sealed batch seq, and the last arrival index it covers. */
  batchSeq: number;
  sealedThrough: number;
  /** Last anchored batch seq. */
  anchored: number;
  /** Arrival index through which entries were deleted by retention. */
  prunedThrough: number;
}

/** The watermark's storage: a file beside the database (FileWatermark) or memory (tests). */
export interface WatermarkStore {
  /** The newest valid watermark; undefined when none was ever written. Throws when unreadable. */
  read(): Promise<Watermark | undefined>;
  /** Writes and syncs. */
  write(w: Watermark): Promise<void>;
}

const SLOT = 64;
const MAGIC = 0x5647_574d; // "VGWM"

function encodeSlot(w: Watermark, generation: number): Buffer {
  const b = Buffer.alloc(SLOT);
  b.writeUInt32BE(MAGIC, 0);
  b.writeUInt32BE(1, 4); // format
  writeU64(b, 8, generation);
  writeU64(b, 16, w.lastIndex);
  writeU64(b, 24, w.batchSeq);
  writeU64(b, 32, w.sealedThrough);
  writeU64(b, 40, w.anchored);
  writeU64(b, 48, w.prunedThrough);
  b.writeUInt32BE(crc32(b.subarray(0, 60)), 60);
  return b;
}

function decodeSlot(b: Buffer): { w: Watermark; generation: number } | undefined {
  if (b.length < SLOT || b.readUInt32BE(0) !== MAGIC || b.readUInt32BE(4) !== 1) return undefined;
  if (crc32(b.subarray(0, 60)) !== b.readUInt32BE(60)) return undefined;
  return {
    generation: readU64(b, 8),
    w: {
      lastIndex: readU64(b, 16),
      batchSeq: readU64(b, 24),
      sealedThrough: readU64(b, 32),
      anchored: readU64(b, 40),
      prunedThrough: readU64(b, 48),
    },
  };
}

/** `<dir>/watermark`: two alternating slots, each synced in place (pwrite + fdatasync). */
export class FileWatermark implements WatermarkStore {
  readonly path: string;
  #generation = 0;
  #fd: Awaited<ReturnType<typeof openFile>> | undefined;

  constructor(dir: string) {
    this.path = join(dir, "watermark");
  }

  async read(): Promise<Watermark | undefined> {
    let raw: Buffer;
    try {
      raw = await readFile(this.path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw new StoreIntegrityError(`cannot read ${this.path}: ${(e as Error).message}`);
    }
    const a = decodeSlot(raw.subarray(0, SLOT));
    const b = decodeSlot(raw.subarray(SLOT, 2 * SLOT));
    const best = a && b ? (a.generation >= b.generation ? a : b) : (a ?? b);
    if (!best)
      throw new StoreIntegrityError(
        `${this.path} is damaged (no valid slot): the store cannot tell what it must contain; run "vigil store check"`,
      );
    this.#generation = best.generation;
    return best.w;
  }

  async write(w: Watermark): Promise<void> {
    if (!this.#fd) {
      try {
        this.#fd = await openFile(this.path, "r+", 0o600);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
        // First write: create both slots in a temporary file, then rename it into place.
        const tmp = `${this.path}.new`;
        const fd = await openFile(tmp, "w", 0o600);
        const first = encodeSlot(w, ++this.#generation);
        await fd.write(Buffer.concat([first, first]), 0, 2 * SLOT, 0);
        await fd.sync();
        await fd.close();
        await rename(tmp, this.path);
        // The rename is durable only once the folder is synced: without it, a crash could lose
        // the new watermark and the next open would take the store for one without any.
        const dir = await openFile(dirname(this.path), "r");
        try {
          await dir.sync();
        } finally {
          await dir.close();
        }
        this.#fd = await openFile(this.path, "r+", 0o600);
        return;
      }
    }
    const g = ++this.#generation;
    await this.#fd.write(encodeSlot(w, g), 0, SLOT, (g % 2) * SLOT);
    await this.#fd.datasync();
  }

  async close(): Promise<void> {
    const fd = this.#fd;
    this.#fd = undefined;
    await fd?.close();
  }
}

/** In-memory watermark (MemoryFrameStore); `faults.failWrite` makes writes fail. */
export class MemoryWatermark implements WatermarkStore {
  current: Watermark | undefined;
  readonly faults = { failWrite: false };
  read(): Promise<Watermark | undefined> {
    return Promise.resolve(this.current ? { ...this.current } : undefined);
  }
  write(w: Watermark): Promise<void> {
    if (this.faults.failWrite)
      return Promise.reject(
        Object.assign(new Error("EIO: i/o error, write (simulated)"), { code: "EIO" }), // what node:fs rejects with
      );
    this.current = { ...w };
    return Promise.resolve();
  }
}
