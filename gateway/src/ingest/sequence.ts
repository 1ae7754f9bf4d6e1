/**
 * Per-device sequence tracking: a frame is identified by (device, boot, seq).
 *
 * - A device's `boot_id` (HELLO) is a sequence-number space (PROTOCOL.md, "Sequence numbers
 *   and boots"): after a HELLO with a new boot id, the device's numbering may restart. The
 *   tracker gives each boot a base in the device's extended sequence space, the next multiple of
 *   2^32 above everything the device sent before, so a reboot is never taken for a replay, both
 *   boots' frames are stored, and an extended seq mod 2^32 is always the frame's own seq (the
 *   receipt check, RECEIPTS.md). The base is fixed by the boot's first DATA frame; a HELLO that
 *   repeats the current boot (a reconnect) changes nothing; the first HELLO of a device adopts
 *   its frames so far, unless they were restored from the store with no boot (then it starts a
 *   new space).
 * - Within a boot, u32 sequences wrap and are compared with serial-number arithmetic (RFC 1982,
 *   SERIAL_BITS = 32) and extended like RTP's extended sequence number (RFC 3550 §A.1).
 * - A sequence further than {@link SEQ_MAX_JUMP} from the boot's highest stored one (either
 *   direction) is refused (NACK SEQ_OUT_OF_RANGE): one absurd number can no longer move the
 *   device's extended sequence by billions and make later resends look new.
 * - A bitmap of the last WINDOW extended sequences answers "seen before?" without touching
 *   the store; older sequences fall back to the store's index (the slow path).
 */
import { SEQ_MAX_JUMP } from "../protocol/frame.ts";

export { SEQ_MAX_JUMP };
export const SEQ_WINDOW = 4096;
const TWO_32 = 0x1_0000_0000;
const HALF = 0x8000_0000;
/**
 * The highest boot base: extended sequences are exact integers up to 2^53 − 1, so a device can
 * start 2^21 − 1 boots that send DATA (one 2^32 block each, wraps included); later frames of a
 * new boot are refused as out of range.
 */
const MAX_BASE = 2 ** 53 - TWO_32;

export type SeqVerdict = "new" | "duplicate" | "old";

/** The boot a frame belongs to and where its sequence space starts (FrameRecord.boot). */
export interface BootSpace {
  id: number;
  base: number;
}

export class SequenceTracker {
  /** Highest extended sequence stored, -1 before the first frame. */
  highest = -1;
  /** Highest extended sequence handed to the store (stored or in flight). */
  issued = -1;
  gaps = 0;
  outOfOrder = 0;
  duplicates = 0;
  accepted = 0;
  /** Frames refused because their sequence jumped further than SEQ_MAX_JUMP. */
  outOfRange = 0;
  /** Boots seen (new sequence spaces started). */
  reboots = 0;
  /** The current boot (undefined before the device's first HELLO) and its base. */
  boot: BootSpace | undefined;
  /** A HELLO announced a new boot; its base is fixed by its first DATA frame. */
  #pendingBoot: number | undefined;
  /** Frames of an earlier gateway run were restored with no boot (see hello()). */
  #restoredWithoutBoot = false;
  readonly #seen = new Uint8Array(SEQ_WINDOW / 8);

  /** A HELLO: a new boot id starts a new sequence space at the next DATA frame. */
  hello(bootId: number): void {
    if (this.boot === undefined && this.#restoredWithoutBoot) {
      // Frames stored with no boot by an earlier run (a store written before boots were tracked,
      // or a device that sent DATA before any HELLO) may be any earlier boot's: the device may have
      // rebooted and restarted its numbering since. Adopting them refused every frame of the new
      // boot up to the old highest number (upgrade audit: a device that ran for days, for good).
      // A new sequence space instead; the price is that a resend of a frame stored before the
      // restart is stored once more.
      this.#pendingBoot = bootId;
    } else if (this.boot === undefined) {
      // The first HELLO of this device in this run: what it sent so far belongs to this boot.
      this.boot = { id: bootId, base: 0 };
      this.#pendingBoot = undefined;
    } else if (bootId !== this.boot.id) this.#pendingBoot = bootId;
    else this.#pendingBoot = undefined;
  }

  /**
   * The extended sequence of a DATA frame's u32 `seq`, or undefined when it is out of range
   * (more than SEQ_MAX_JUMP from the boot's highest). Starts the pending boot's space.
   */
  extend(seq: number): number | undefined {
    const top = Math.max(this.highest, this.issued);
    if (this.#pendingBoot !== undefined) {
      // A boot's space starts at the next multiple of 2^32 above everything issued, so every
      // extended seq is the frame's u32 seq + 2^32 × (the device's wraps and boots before it):
      // the receipt check `frame.seq mod 2^32 = seq` (RECEIPTS.md) holds across reboots.
      const base = top < 0 ? 0 : (Math.floor(top / TWO_32) + 1) * TWO_32;
      if (base > MAX_BASE) {
        this.outOfRange++;
        return undefined;
      }
      this.boot = { id: this.#pendingBoot, base };
      this.#pendingBoot = undefined;
      this.reboots++;
    }
    const base = this.boot?.base ?? 0;
    if (top < base) return base + seq; // the first frame of this boot
    const within = top - base;
    const lo = within % TWO_32;
    let diff = seq - lo;
    if (diff > HALF) diff -= TWO_32;
    else if (diff <= -HALF) diff += TWO_32;
    if (
      Math.abs(diff) > SEQ_MAX_JUMP ||
      within + diff < 0 ||
      base + within + diff > Number.MAX_SAFE_INTEGER
    ) {
      this.outOfRange++;
      return undefined;
    }
    return base + within + diff;
  }

  /** Classifies an extended sequence without recording it. */
  classify(ext: number): SeqVerdict {
    if (this.highest < 0 || ext > this.highest) return "new";
    if (this.highest - ext >= SEQ_WINDOW) return "old";
    return this.#bit(ext) ? "duplicate" : "new";
  }

  /** Notes an extended sequence handed to the store. */
  issue(ext: number): void {
    if (ext > this.issued) this.issued = ext;
  }

  /** Records an accepted (stored) sequence and updates gap / order statistics. */
  record(ext: number): void {
    this.accepted++;
    if (ext > this.issued) this.issued = ext;
    if (this.highest < 0) {
      this.highest = ext;
      this.#set(ext);
      return;
    }
    if (ext > this.highest) {
      // A new boot starts right after the previous boot's frames: its first frame is no gap.
      const start = this.boot !== undefined && ext >= this.boot.base && this.highest < this.boot.base;
      const expected = start ? this.boot!.base : this.highest + 1;
      if (ext > expected) this.gaps += ext - expected;
      // Clear the bits that slide into the window for sequences not yet seen.
      const from = Math.max(this.highest + 1, ext - SEQ_WINDOW + 1);
      for (let s = from; s < ext; s++) this.#clear(s);
      this.highest = ext;
    } else {
      this.outOfOrder++;
      // A late frame fills a gap that was counted when the jump happened.
      if (this.gaps > 0) this.gaps--;
      // Older than the window (stored after the store lookup): its bit belongs to a sequence
      // inside the window now (the bitmap is a ring), so it is not marked.
      if (this.highest - ext >= SEQ_WINDOW) return;
    }
    this.#set(ext);
  }

  /** Restores the durable state at start-up (the store's per-device record). */
  restore(lastSeq: number, boot: BootSpace | undefined): void {
    if (lastSeq > this.highest) {
      const from = Math.max(this.highest + 1, lastSeq - SEQ_WINDOW + 1);
      for (let s = from; s < lastSeq; s++) this.#clear(s);
      this.highest = lastSeq;
    }
    if (lastSeq > this.issued) this.issued = lastSeq;
    if (this.highest - lastSeq < SEQ_WINDOW) this.#set(lastSeq);
    if (boot) this.boot = { ...boot };
    else if (this.boot === undefined && lastSeq >= 0) this.#restoredWithoutBoot = true;
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
