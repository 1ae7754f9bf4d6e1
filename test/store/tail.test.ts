// The unsealed tail's bounds (gateway/src/store/tail.ts); that it serves exactly what the disk
// holds is in the shared store suite (abstract.ts), against LevelDB and the in-memory store.
import { describe, expect, it } from "vitest";
import { LogTail } from "../../gateway/src/store/tail.ts";
import { encodeRecord } from "../../gateway/src/store/codec.ts";
import { record } from "./abstract.ts";

const v = (seq: number): Buffer => encodeRecord(record(1, seq));

describe("LogTail", () => {
  it("contract: keeps contiguous entries, drops sealed ones, and covers only what it holds", () => {
    const t = new LogTail(8);
    for (let i = 1; i <= 5; i++) t.push(i, false, v(i));
    expect(t.covers(1, 5)).toBe(true);
    expect(t.covers(1, 6)).toBe(false);
    t.trimThrough(2);
    expect(t.size).toBe(3);
    expect(t.covers(2, 3)).toBe(false);
    expect([...t.chunks(3, 5, 2)].map((c) => c.map((e) => e.index))).toEqual([[3, 4], [5]]);
    expect([...t.chunks(3, 5)].flat().map((e) => (e as { seq: number }).seq)).toEqual([3, 4, 5]);
    t.trimThrough(99);
    expect(t.size).toBe(0);
    expect(t.covers(6, 6)).toBe(false);
  });

  it("contract: a tail of 0 entries keeps nothing (a store whose log nobody seals)", () => {
    const t = new LogTail(0);
    for (let i = 1; i <= 3; i++) t.push(i, false, v(i));
    expect(t.size).toBe(0);
    expect(t.covers(1, 1)).toBe(false);
  });

  it("contract: when full it keeps its contiguous run and restarts after a gap once it has room", () => {
    const t = new LogTail(4);
    for (let i = 1; i <= 6; i++) t.push(i, false, v(i));
    expect(t.size).toBe(4);
    expect(t.covers(1, 4)).toBe(true);
    expect(t.covers(5, 5)).toBe(false); // not kept: sealing reads 5 and 6 from disk
    t.trimThrough(3); // room again, but 7 does not follow 4
    t.push(7, false, v(7));
    expect(t.covers(7, 7)).toBe(true);
    expect(t.covers(4, 4)).toBe(false);
    expect(t.size).toBe(1);
  });
});
