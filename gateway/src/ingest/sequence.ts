/**
 * Per-device sequence tracking. Device sequence numbers are u32 and wrap; they are compared
 * with serial-number arithmetic (RFC 1982, SERIAL_BITS = 32) and extended to 64 bits the
 * way RTP extends its 16-bit sequence (RFC 3550 §A.1), so a wrap is never taken for a replay.
 * A bitmap of the last WINDOW sequences answers "seen before?" without touching the store;
 * older sequences fall back to the store's index (the slow path).
 */
export const SEQ_WINDOW = 4096;
const TWO_32 = 0x1_0000_0000;
const HALF = 0x8000_0000;

export type SeqVerdict = "new" | "duplicate" | "old";

export class SequenceTracker {
  /** Highest extended sequence accepted, -1 before the first frame. */
  highest = -1;
  gaps = 0;
  outOfOrder = 0;
  duplicates = 0;
  accepted = 0;
  readonly #seen = new Uint8Array(SEQ_WINDOW / 8);

  /** Extends a u32 sequence to the 64-bit value closest to the highest seen (RFC 1982). */
  extend(seq: number): number {
    if (this.highest < 0) return seq;
    const hiLow = this.highest % TWO_32;
    const base = this.highest - hiLow;
    let diff = seq - hiLow;
    if (diff > HALF) diff -= TWO_32;
    else if (diff < -HALF) diff += TWO_32;
    const ext = base + hiLow + diff;
    return ext < 0 ? seq : ext;
  }

  /** Classifies an extended sequence without recording it. */
  classify(ext: number): SeqVerdict {
    if (this.highest < 0 || ext > this.highest) return "new";
    if (this.highest - ext >= SEQ_WINDOW) return "old";
    return this.#bit(ext) ? "duplicate" : "new";
  }

  /** Records an accepted (stored) sequence and updates gap / order statistics. */
  record(ext: number): void {
    this.accepted++;
    if (this.highest < 0) {
      this.highest = ext;
      this.#set(ext);
      return;
    }
    if (ext > this.highest) {
      if (ext > this.highest + 1) this.gaps += ext - this.highest - 1;
      // Clear the bits that slide into the window for sequences not yet seen.
      const from = Math.max(this.highest + 1, ext - SEQ_WINDOW + 1);
      for (let s = from; s < ext; s++) this.#clear(s);
      this.highest = ext;
    } else {
      this.outOfOrder++;
      // A late frame fills a gap that was counted when the jump happened.
      if (this.gaps > 0) this.gaps--;
    }
    this.#set(ext);
  }

  /** Marks a sequence as known (used when state is recovered from the store at start-up). */
  restore(ext: number): void {
    if (ext > this.highest) {
      const from = Math.max(this.highest + 1, ext - SEQ_WINDOW + 1);
      for (let s = from; s < ext; s++) this.#clear(s);
      this.highest = ext;
    }
    if (this.highest - ext < SEQ_WINDOW) this.#set(ext);
  }

  #bit(s: number): boolean {
    const i = s % SEQ_WINDOW;
    return (this.#seen[i >> 3]! & (1 << (i & 7))) !== 0;
  }
  #set(s: number): void {
    const i = s % SEQ_WINDOW;
    this.#seen[i >> 3] = this.#seen[i >> 3]! | (1 << (i & 7));
  }
  #clear(s: number): void {
    const i = s % SEQ_WINDOW;
    this.#seen[i >> 3] = this.#seen[i >> 3]! & ~(1 << (i & 7));
  }
}
