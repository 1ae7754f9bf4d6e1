/**
 * The day's anchoring spend (gas + L1 data fee per UTC day), for the daily spend cap.
 *
 * Every mined anchoring transaction paid by the gateway's account counts — a reverted one too (its
 * gas was paid) and one found mined after a crash (it was paid before the restart). The total is kept
 * in the store's meta records, so a restart does not forget what the day already cost; the last
 * transaction hashes counted are kept beside it, so a transaction counted before a crash and found
 * again after it is not counted twice.
 */
import type { FrameStore } from "../store/types.ts";

const DAY_US = 86_400e6;
const META = "anchor/spend";
/** Hashes remembered for de-duplication: far more than can be mined between a count and a crash. */
const RECENT = 32;

interface Saved {
  v: 1;
  dayStartUs: number;
  wei: string;
  txs: string[];
}

/** Start of the UTC day holding `us`. */
export const dayStartUs = (us: number): number => Math.floor(us / DAY_US) * DAY_US;

export class SpendLedger {
  #day: number;
  #wei: bigint;
  #txs: string[];
  #dirty = false;

  private constructor(
    private readonly store: Pick<FrameStore, "getMeta" | "putMeta">,
    saved: Saved,
  ) {
    this.#day = saved.dayStartUs;
    this.#wei = BigInt(saved.wei);
    this.#txs = saved.txs;
  }

  /**
   * The ledger of the day holding `nowUs`. A store without a ledger record (written before it
   * existed) starts from `fallbackWei` (the cost recorded in the day's anchor records); one with a
   * record of the same day takes the larger of the two: a version without the ledger (a rollback)
   * that anchored in between paid what only its anchor records show (upgrade audit: 6 of 26
   * transactions of the day were missing from the cap).
   */
  static async load(
    store: Pick<FrameStore, "getMeta" | "putMeta">,
    nowUs: number,
    fallbackWei: () => Promise<bigint>,
  ): Promise<SpendLedger> {
    const day = dayStartUs(nowUs);
    const raw = await store.getMeta(META);
    const saved = raw && raw.length > 0 ? parse(raw.toString("utf8")) : undefined;
    if (saved) {
      const l = new SpendLedger(store, saved);
      l.#roll(nowUs);
      const recorded = await fallbackWei();
      if (recorded > l.#wei) {
        l.#wei = recorded;
        l.#dirty = true;
      }
      return l;
    }
    return new SpendLedger(store, { v: 1, dayStartUs: day, wei: String(await fallbackWei()), txs: [] });
  }

  #roll(nowUs: number): void {
    const day = dayStartUs(nowUs);
    if (day === this.#day) return;
    this.#day = day;
    this.#wei = 0n;
    // The hashes stay: a transaction counted just before 00:00 UTC and reported again after it
    // (onCost, then submit's return) is yesterday's money, not today's.
    this.#dirty = true;
  }

  /** Spent so far on the UTC day holding `nowUs`, wei. */
  spentWei(nowUs: number): bigint {
    this.#roll(nowUs);
    return this.#wei;
  }

  /**
   * Counts the cost of a mined transaction once (a hash among the last 32 counted, today or the day
   * before, is ignored); kept in memory until `save()`. @returns whether it was counted.
   */
  note(txHash: string, costWei: bigint, nowUs: number): boolean {
    this.#roll(nowUs);
    const h = txHash.toLowerCase();
    if (this.#txs.includes(h)) return false;
    this.#wei += costWei;
    this.#txs.push(h);
    if (this.#txs.length > RECENT) this.#txs.splice(0, this.#txs.length - RECENT);
    this.#dirty = true;
    return true;
  }

  /** Writes the ledger to the store (synced) if it changed. */
  async save(): Promise<void> {
    if (!this.#dirty) return;
    const s: Saved = { v: 1, dayStartUs: this.#day, wei: String(this.#wei), txs: this.#txs };
    await this.store.putMeta(META, Buffer.from(JSON.stringify(s)));
    this.#dirty = false;
  }
}

/** The saved record, or undefined when it is not one this version wrote (then rebuilt). */
function parse(text: string): Saved | undefined {
  try {
    const d = JSON.parse(text) as Partial<Saved>;
    if (
      d.v === 1 &&
      typeof d.dayStartUs === "number" &&
      typeof d.wei === "string" &&
      /^\d+$/.test(d.wei) &&
      Array.isArray(d.txs) &&
      d.txs.every((t) => typeof t === "string")
    )
      return { v: 1, dayStartUs: d.dayStartUs, wei: d.wei, txs: d.txs };
  } catch {
    // Not JSON: rebuilt from the anchor records, like a store written before the ledger existed.
  }
  return undefined;
}
