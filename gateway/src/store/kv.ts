/**
 * The tiny ordered key-value interface the frame store runs on: LevelDB in production
 * (level.ts), a sorted in-memory map for tests (MemoryKv). Keys compare byte-wise.
 */
import { MemoryWatermark } from "./watermark.ts";

export type KvOp = { type: "put"; key: Buffer; value: Buffer } | { type: "del"; key: Buffer };

export interface KvRange {
  gte?: Buffer;
  lt?: Buffer;
  reverse?: boolean;
  limit?: number;
}

export interface Kv {
  open(): Promise<void>;
  close(): Promise<void>;
  get(key: Buffer): Promise<Buffer | undefined>;
  /** Applies all ops atomically; with `sync` the call resolves only after fsync. */
  write(ops: KvOp[], sync: boolean): Promise<void>;
  range(r: KvRange): AsyncIterable<[Buffer, Buffer]>;
  /** Like range(), in chunks (fewer promises on long scans such as sealing). */
  rangeChunks(r: KvRange): AsyncIterable<[Buffer, Buffer][]>;
}

/**
 * Sorted in-memory map. Keys are held as latin1 strings, whose order is the byte order.
 * `faults` lets tests simulate a full or failing disk without a filesystem.
 */
export class MemoryKv implements Kv {
  /** The store's integrity watermark, kept beside the data (MemoryFrameStore). */
  readonly watermark = new MemoryWatermark();
  private readonly map = new Map<string, Buffer>();
  private keys: string[] = [];
  private isOpen = false;
  /** corruptReads: every get fails as LevelDB does on a damaged block (LEVEL_CORRUPTION). */
  readonly faults = { diskFull: false, failOpen: false, corruptReads: false };
  writes = 0;

  async open(): Promise<void> {
    if (this.faults.failOpen)
      throw Object.assign(new Error("IO error: No space left on device"), { code: "LEVEL_IO_ERROR" });
    this.isOpen = true;
  }

  async close(): Promise<void> {
    this.isOpen = false;
  }

  private check(): void {
    if (!this.isOpen)
      throw Object.assign(new Error("Database is not open"), { code: "LEVEL_DATABASE_NOT_OPEN" });
  }

  async get(key: Buffer): Promise<Buffer | undefined> {
    this.check();
    if (this.faults.corruptReads)
      throw Object.assign(new Error("Corruption: block checksum mismatch: /mem/000005.ldb"), {
        code: "LEVEL_CORRUPTION",
      });
    const v = this.map.get(key.toString("latin1"));
    return v === undefined ? undefined : Buffer.from(v); // a copy, as from a disk
  }

  async write(ops: KvOp[], _sync: boolean): Promise<void> {
    this.check();
    if (this.faults.diskFull)
      throw Object.assign(new Error("IO error: /mem/000001.log: No space left on device"), {
        code: "LEVEL_IO_ERROR",
      });
    // Resolve asynchronously like a real disk, so group commit batches concurrent appends.
    await new Promise<void>((r) => setImmediate(r));
    for (const op of ops) {
      const k = op.key.toString("latin1");
      if (op.type === "put") {
        if (!this.map.has(k)) this.insertKey(k);
        this.map.set(k, Buffer.from(op.value));
      } else if (this.map.delete(k)) {
        const i = this.lowerBound(k);
        this.keys.splice(i, 1);
      }
    }
    this.writes++;
  }

  private lowerBound(k: string): number {
    let lo = 0;
    let hi = this.keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.keys[mid]! < k) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private insertKey(k: string): void {
    const n = this.keys.length;
    if (n === 0 || this.keys[n - 1]! < k) this.keys.push(k);
    else this.keys.splice(this.lowerBound(k), 0, k);
  }

  async *range(r: KvRange): AsyncIterable<[Buffer, Buffer]> {
    this.check();
    const lo = r.gte === undefined ? 0 : this.lowerBound(r.gte.toString("latin1"));
    const hi = r.lt === undefined ? this.keys.length : this.lowerBound(r.lt.toString("latin1"));
    const snapshot = this.keys.slice(lo, hi);
    if (r.reverse) snapshot.reverse();
    const limit = r.limit ?? Infinity;
    let n = 0;
    for (const k of snapshot) {
      if (n++ >= limit) return;
      const v = this.map.get(k);
      if (v !== undefined) yield [Buffer.from(k, "latin1"), Buffer.from(v)];
    }
  }

  async *rangeChunks(r: KvRange): AsyncIterable<[Buffer, Buffer][]> {
    let chunk: [Buffer, Buffer][] = [];
    for await (const e of this.range(r)) {
      chunk.push(e);
      if (chunk.length === 1024) {
        yield chunk;
        chunk = [];
      }
    }
    if (chunk.length > 0) yield chunk;
  }
}
