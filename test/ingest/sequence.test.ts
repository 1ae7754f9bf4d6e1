import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SEQ_WINDOW, SequenceTracker } from "../../gateway/src/ingest/sequence.ts";

describe("SequenceTracker", () => {
  it("behavior: in-order frames, then a gap, then the late frame fills it", () => {
    const t = new SequenceTracker();
    for (const s of [0, 1, 2]) t.record(t.extend(s)!);
    expect(t.classify(t.extend(5)!)).toBe("new");
    t.record(t.extend(5)!);
    expect(t.gaps).toBe(2);
    t.record(t.extend(3)!);
    expect(t.outOfOrder).toBe(1);
    expect(t.gaps).toBe(1);
    expect(t.classify(t.extend(3)!)).toBe("duplicate");
    expect(t.classify(t.extend(4)!)).toBe("new");
  });

  it("behavior: sequence wrap 2^32-1 → 0 extends instead of replaying (RFC 1982)", () => {
    const t = new SequenceTracker();
    t.record(t.extend(0xffff_fffe)!);
    t.record(t.extend(0xffff_ffff)!);
    const ext = t.extend(0)!;
    expect(ext).toBe(0x1_0000_0000);
    expect(t.classify(ext)).toBe("new");
    t.record(ext);
    expect(t.extend(0xffff_ffff)).toBe(0xffff_ffff);
    expect(t.classify(t.extend(0xffff_ffff)!)).toBe("duplicate");
  });

  it("behavior: sequences older than the window are 'old' (store lookup)", () => {
    const t = new SequenceTracker();
    t.record(t.extend(10_000)!);
    expect(t.classify(t.extend(10_000 - SEQ_WINDOW)!)).toBe("old");
    expect(t.classify(t.extend(10_000 - SEQ_WINDOW + 1)!)).toBe("new");
  });

  it("property: a shuffled stream with repeats, far behind the window too, is classified exactly (model check)", () => {
    // Ingest records an 'old' frame after the store said it does not hold it: that must never
    // mark a sequence inside the window as seen (the bitmap is a ring: old ones alias new ones).
    fc.assert(
      fc.property(fc.array(fc.nat(3 * SEQ_WINDOW), { maxLength: 600 }), (seqs) => {
        const t = new SequenceTracker();
        const stored = new Set<number>();
        for (const s of seqs) {
          const ext = t.extend(s)!;
          expect(ext).toBe(s);
          const v = t.classify(ext);
          if (v === "old") {
            if (!stored.has(s)) {
              stored.add(s);
              t.record(ext);
            }
            continue;
          }
          expect(v).toBe(stored.has(s) ? "duplicate" : "new");
          if (v === "new") {
            stored.add(s);
            t.record(ext);
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it("regression: recording a frame older than the window does not hide the in-window frame it aliases", () => {
    const t = new SequenceTracker();
    t.record(t.extend(SEQ_WINDOW + 10)!);
    t.record(t.extend(5)!); // 'old', stored after the store lookup (ingest's slow path)
    expect(t.classify(t.extend(SEQ_WINDOW + 5)!)).toBe("new"); // same bit as 5 in the ring
  });
});
