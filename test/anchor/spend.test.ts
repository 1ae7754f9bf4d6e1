/** The day's anchoring spend ledger (anchor/spend.ts) over a real store's meta records. */
import { describe, expect, it } from "vitest";
import { MemoryFrameStore } from "../../gateway/src/store/memory.ts";
import { SpendLedger } from "../../gateway/src/anchor/spend.ts";

const DAY = Date.UTC(2026, 11, 2, 12) * 1000;
const TX = "0x" + "ab".repeat(32);

async function store(): Promise<MemoryFrameStore> {
  const s = new MemoryFrameStore({ groupCommit: { flushIntervalMs: 0 } });
  await s.open();
  return s;
}

describe("SpendLedger", () => {
  it("behavior: a transaction counted and saved before a crash is not counted again after it; another one is", async () => {
    const s = await store();
    const a = await SpendLedger.load(s, DAY, async () => 0n);
    expect(a.note(TX, 5n, DAY)).toBe(true);
    expect(a.note(TX.toUpperCase().replace("0X", "0x"), 5n, DAY)).toBe(false);
    await a.save();
    const b = await SpendLedger.load(s, DAY + 1e6, async () => 3n); // the record wins over smaller anchor records
    expect(b.spentWei(DAY)).toBe(5n);
    expect(b.note(TX, 5n, DAY)).toBe(false);
    expect(b.note("0x" + "cd".repeat(32), 7n, DAY)).toBe(true);
    expect(b.spentWei(DAY)).toBe(12n);
  });

  it("behavior: a new UTC day starts from 0, also for a record saved the day before; a transaction counted the day before is not counted again", async () => {
    const s = await store();
    const a = await SpendLedger.load(s, DAY, async () => 0n);
    a.note(TX, 5n, DAY);
    await a.save();
    const next = DAY + 86_400e6;
    const b = await SpendLedger.load(s, next, async () => 0n); // no anchor record of the new day yet
    expect(b.spentWei(next)).toBe(0n);
    // Counted yesterday (mined just before 00:00 UTC, reported again after it): not today's money.
    expect(b.note(TX, 5n, next)).toBe(false);
    expect(b.spentWei(next)).toBe(0n);
    expect(b.note("0x" + "cd".repeat(32), 7n, next)).toBe(true);
    expect(b.spentWei(next)).toBe(7n);
  });

  it("behavior: the day's anchor records showing more than the saved record (a version without the ledger anchored in between, a rollback): the larger counts, and is saved", async () => {
    const s = await store();
    const a = await SpendLedger.load(s, DAY, async () => 0n);
    a.note(TX, 5n, DAY);
    await a.save();
    const b = await SpendLedger.load(s, DAY + 1e6, async () => 40n);
    expect(b.spentWei(DAY + 1e6)).toBe(40n);
    expect(b.note(TX, 5n, DAY + 1e6)).toBe(false);
    await b.save();
    expect((await SpendLedger.load(s, DAY + 2e6, async () => 0n)).spentWei(DAY + 2e6)).toBe(40n);
  });

  it("behavior: without a record (a store from before the ledger, or one it cannot read) the day starts from the anchor records' costs", async () => {
    const s = await store();
    expect((await SpendLedger.load(s, DAY, async () => 42n)).spentWei(DAY)).toBe(42n);
    await s.putMeta("anchor/spend", Buffer.from("{not json"));
    expect((await SpendLedger.load(s, DAY, async () => 43n)).spentWei(DAY)).toBe(43n);
    await s.putMeta("anchor/spend", Buffer.from(JSON.stringify({ v: 1, dayStartUs: 0, wei: "-5", txs: [] })));
    expect((await SpendLedger.load(s, DAY, async () => 44n)).spentWei(DAY)).toBe(44n);
  });
});
