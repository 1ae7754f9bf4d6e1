/**
 * Reads of the log: frames by arrival index or (device, seq), leaf records by index or hash, and
 * the merged arrival-ordered stream of both that the sealer consumes.
 */
import type { StoreContext } from "./context.ts";
import { P_LEAF, P_LOG, decodeLeaf, decodeRecord, devSeqKey, leafHashKey, readU64, u64Key } from "./codec.ts";
import type { KvRange } from "./kv.ts";
import type { LogEntry, StoredFrame, StoredLeaf } from "./types.ts";

export class LogReader {
  readonly #c: StoreContext;

  constructor(c: StoreContext) {
    this.#c = c;
  }

  /** A range scan in chunks, with read errors translated (corruption marks the store corrupt). */
  async *chunks(r: KvRange): AsyncIterable<[Buffer, Buffer][]> {
    const it = this.#c.kv.rangeChunks(r)[Symbol.asyncIterator]();
    while (true) {
      let n: IteratorResult<[Buffer, Buffer][]>;
      try {
        n = await it.next();
      } catch (e) {
        throw this.#c.readFailed(e);
      }
      if (n.done) return;
      yield n.value;
    }
  }

  async *range(r: KvRange): AsyncIterable<[Buffer, Buffer]> {
    for await (const chunk of this.chunks(r)) yield* chunk;
  }

  async has(deviceId: number, seq: number): Promise<boolean> {
    const c = this.#c;
    const floor = c.prunedFloor.get(deviceId);
    if (floor !== undefined && seq <= floor) return true;
    const last = c.devices.get(deviceId)?.lastSeq;
    // Above the device's last durable seq nothing can be stored (`last` is the maximum).
    if (last === undefined || seq > last) return false;
    return (await c.read(devSeqKey(deviceId, seq))) !== undefined;
  }

  async getFrame(index: number): Promise<StoredFrame | undefined> {
    const v = await this.#c.read(u64Key(P_LOG, index));
    return v ? decodeRecord(index, v) : undefined;
  }

  async getFrameBySeq(deviceId: number, seq: number): Promise<StoredFrame | undefined> {
    const v = await this.#c.read(devSeqKey(deviceId, seq));
    return v ? this.getFrame(readU64(v, 0)) : undefined;
  }

  async getLeaf(index: number): Promise<StoredLeaf | undefined> {
    const v = await this.#c.read(u64Key(P_LEAF, index));
    return v ? decodeLeaf(index, v) : undefined;
  }

  async getByLeafHash(hash: Uint8Array | string): Promise<StoredLeaf | undefined> {
    const h = typeof hash === "string" ? Buffer.from(hash.replace(/^0x/i, ""), "hex") : Buffer.from(hash);
    if (h.length !== 32) throw new RangeError("leaf hash must be 32 bytes");
    for await (const [k] of this.range({
      gte: leafHashKey(h, 0),
      lt: leafHashKey(h, Number.MAX_SAFE_INTEGER),
      limit: 1,
    }))
      return this.getLeaf(readU64(k, 33));
    return undefined;
  }

  async entryByIndex(index: number): Promise<LogEntry | undefined> {
    return (await this.getFrame(index)) ?? (await this.getLeaf(index));
  }

  async *framesByIndex(fromIndex: number, toIndex: number): AsyncIterable<StoredFrame> {
    for await (const chunk of this.frameChunks(fromIndex, toIndex)) yield* chunk;
  }

  async *frameChunks(fromIndex: number, toIndex: number): AsyncIterable<StoredFrame[]> {
    if (toIndex < fromIndex) return;
    for await (const chunk of this.chunks({
      gte: u64Key(P_LOG, Math.max(0, fromIndex)),
      lt: u64Key(P_LOG, toIndex + 1),
    }))
      yield chunk.map(([k, v]) => decodeRecord(readU64(k, 1), v));
  }

  async *framesByDevice(
    deviceId: number,
    fromSeq = 0,
    toSeq = Number.MAX_SAFE_INTEGER - 1,
  ): AsyncIterable<StoredFrame> {
    for await (const [, v] of this.range({
      gte: devSeqKey(deviceId, fromSeq),
      lt: devSeqKey(deviceId, toSeq + 1),
    })) {
      const f = await this.getFrame(readU64(v, 0));
      if (f) yield f;
    }
  }

  /**
   * The last `count` frames of a device with seq < beforeSeq, oldest first, whatever gaps lie
   * between them (a new boot starts at the next multiple of 2^32: seq ranges do not find the
   * previous boot's frames).
   */
  async framesBefore(deviceId: number, beforeSeq: number, count: number): Promise<StoredFrame[]> {
    const out: StoredFrame[] = [];
    if (count <= 0 || beforeSeq <= 0) return out;
    for await (const [, v] of this.range({
      gte: devSeqKey(deviceId, 0),
      lt: devSeqKey(deviceId, beforeSeq),
      reverse: true,
      limit: count,
    })) {
      const f = await this.getFrame(readU64(v, 0));
      if (f) out.push(f);
    }
    return out.reverse();
  }

  /** Merges the `L` (frame) and `E` (leaf) ranges, which share one index space, in index order. */
  async *entryChunks(fromIndex: number, toIndex: number): AsyncIterable<LogEntry[]> {
    if (toIndex < fromIndex) return;
    // The sealer's reads: the unsealed tail is in memory (tail.ts), the same bytes as on disk.
    if (toIndex <= this.#c.lastIndex && this.#c.tail.covers(fromIndex, toIndex)) {
      yield* this.#c.tail.chunks(fromIndex, toIndex);
      return;
    }
    const lo = Math.max(0, fromIndex);
    const lt = toIndex + 1;
    const frames = this.chunks({ gte: u64Key(P_LOG, lo), lt: u64Key(P_LOG, lt) })[Symbol.asyncIterator]();
    const leaves = this.chunks({ gte: u64Key(P_LEAF, lo), lt: u64Key(P_LEAF, lt) })[Symbol.asyncIterator]();
    const a = { it: frames, chunk: [] as [Buffer, Buffer][], i: 0, done: false };
    const b = { it: leaves, chunk: [] as [Buffer, Buffer][], i: 0, done: false };
    const fill = async (s: typeof a): Promise<number> => {
      while (s.i >= s.chunk.length && !s.done) {
        const r = await s.it.next();
        if (r.done) s.done = true;
        else {
          s.chunk = r.value;
          s.i = 0;
        }
      }
      const e = s.chunk[s.i];
      return e === undefined || s.i >= s.chunk.length ? Infinity : readU64(e[0], 1);
    };
    let out: LogEntry[] = [];
    let ka = await fill(a);
    let kb = await fill(b);
    while (ka !== Infinity || kb !== Infinity) {
      if (ka < kb) {
        // Frame-only runs (the common case) are copied without re-checking the leaf stream.
        const [, v] = a.chunk[a.i++]!;
        out.push(decodeRecord(ka, v));
        ka = a.i < a.chunk.length ? readU64(a.chunk[a.i]![0], 1) : await fill(a);
      } else {
        const [, v] = b.chunk[b.i++]!;
        out.push(decodeLeaf(kb, v));
        kb = b.i < b.chunk.length ? readU64(b.chunk[b.i]![0], 1) : await fill(b);
      }
      if (out.length >= 1024) {
        yield out;
        out = [];
      }
    }
    if (out.length > 0) yield out;
  }
}
