/**
 * The unsealed tail of the log, in memory: the exact `L`/`E` values of the entries committed by
 * this process that no sealed batch covers yet, so the sealer reads them without going back to
 * LevelDB.
 *
 * Why: every entry is read back once for sealing, about a second after it was written. Those
 * reads went through LevelDB's memory-mapped tables, so every table of the store ended up
 * resident in the gateway's RSS (64 MB of 432 MB at the peak of bench e2e at 22,800 frames/s),
 * and they cost an iterator, a merge of the frame and leaf ranges and a copy per entry. The values
 * kept here are the same bytes the write batch carried, decoded by the same codec (leaves without
 * re-validating what appendLeaf validated), so a batch sealed from the tail is identical to one
 * sealed from disk (the shared store suite, test/store/abstract.ts).
 *
 * Bounded: at most `max` entries (default 65,536; full of 34-byte frames that measured 10.3 MB of
 * RSS, 7.6 MB of it Buffer objects on the V8 heap). When the sealer falls behind by more, new
 * entries are not kept and sealing reads them from disk as before; the tail starts again at the
 * next entry once it has room.
 */
import type { LogEntry } from "./types.ts";
import { decodeOwnLeaf, decodeRecord } from "./codec.ts";

/** Default most entries kept: more than six batches of the sealer's default 10,000 leaves. */
export const DEFAULT_TAIL_ENTRIES = 65_536;

export class LogTail {
  readonly max: number;
  /** Encoded values; `#kinds[i]` 1 for a leaf record (`E`), 0 for a frame (`L`). */
  #values: Buffer[] = [];
  #kinds: number[] = [];
  #head = 0;
  /** Arrival index of `#values[#head]`. */
  #first = 0;

  /** @param max most entries kept (default 65,536); 0 keeps none (sealing reads from disk). */
  constructor(max = DEFAULT_TAIL_ENTRIES) {
    this.max = max;
  }

  get size(): number {
    return this.#values.length - this.#head;
  }

  /** Forgets everything (open, recovery: what is durable is read from disk). */
  clear(): void {
    this.#values = [];
    this.#kinds = [];
    this.#head = 0;
    this.#first = 0;
  }

  /**
   * Keeps a committed entry. Entries must come in index order; a gap (entries that were not
   * kept) restarts the tail at `index`.
   */
  push(index: number, leaf: boolean, value: Buffer): void {
    if (this.size >= this.max) return; // full (or max 0): keep the contiguous run, drop the new
    if (this.size === 0 || index !== this.#first + this.size) {
      this.clear();
      this.#first = index;
    }
    this.#values.push(value);
    this.#kinds.push(leaf ? 1 : 0);
  }

  /** Drops the entries with index ≤ `index` (they are sealed). */
  trimThrough(index: number): void {
    const n = Math.min(this.size, index - this.#first + 1);
    if (n <= 0) return;
    this.#head += n;
    this.#first += n;
    if (this.size === 0) this.clear();
    else if (this.#head > 4096 && this.#head * 2 > this.#values.length) {
      this.#values = this.#values.slice(this.#head);
      this.#kinds = this.#kinds.slice(this.#head);
      this.#head = 0;
    }
  }

  /** True when every index in [from, to] is kept. */
  covers(from: number, to: number): boolean {
    return this.size > 0 && from >= this.#first && to < this.#first + this.size;
  }

  /** The entries [from, to] decoded, in chunks of up to `chunk`; call only when `covers(from, to)`. */
  *chunks(from: number, to: number, chunk = 1024): Generator<LogEntry[]> {
    for (let lo = from; lo <= to; lo += chunk) {
      const hi = Math.min(to, lo + chunk - 1);
      const out: LogEntry[] = [];
      for (let i = lo; i <= hi; i++) {
        const k = this.#head + (i - this.#first);
        const v = this.#values[k]!;
        out.push(this.#kinds[k] === 1 ? decodeOwnLeaf(i, v) : decodeRecord(i, v));
      }
      yield out;
    }
  }
}
