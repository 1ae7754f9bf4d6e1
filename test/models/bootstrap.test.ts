// The bootstrap interval models/README.md reads the first-cycle goals against (models/eval/bootstrap.ts).
import { describe, expect, it } from "vitest";
import { bootstrapRmse } from "../../models/eval/bootstrap.ts";

describe("bootstrapRmse", () => {
  it("has zero width when every unit's error has the same size", () => {
    const truth = Array.from({ length: 50 }, (_, i) => i);
    const pred = truth.map((t, i) => t + (i % 2 === 0 ? 3 : -3));
    const r = bootstrapRmse(pred, truth, { resamples: 500 });
    expect(r.lo).toBeCloseTo(3, 12);
    expect(r.hi).toBeCloseTo(3, 12);
    expect(r).toMatchObject({ level: 0.9, resamples: 500 });
  });

  it("matches the binomial law of one outlier among 100 units", () => {
    // Error 10 on one unit, 0 on 99: RMSE 1. A resample holds K ~ Bin(100, 0.01) copies of the
    // outlier, so its RMSE is sqrt(K): P(K = 0) = 0.366 puts the 5 % quantile at 0, P(K ≤ 2) = 0.921
    // and P(K ≤ 3) = 0.981 put the 95 % quantile at sqrt(3), and P(K ≤ 1) = 0.736.
    const truth = new Array<number>(100).fill(50);
    const pred = truth.slice();
    pred[37] = 60;
    const r = bootstrapRmse(pred, truth, { threshold: 1 });
    expect(r.lo).toBe(0);
    expect(r.hi).toBeCloseTo(Math.sqrt(3), 12);
    expect(r.threshold).toBe(1);
    expect(r.atOrBelow).toBeGreaterThan(0.736 - 0.015);
    expect(r.atOrBelow).toBeLessThan(0.736 + 0.015);
  });

  it("is repeatable for a seed and moves with another seed", () => {
    const truth = Array.from({ length: 100 }, (_, i) => (i * 37) % 140);
    const pred = truth.map((t, i) => t + ((i * 53) % 29) - 14);
    const a = bootstrapRmse(pred, truth, { threshold: 8 });
    expect(bootstrapRmse(pred, truth, { threshold: 8 })).toEqual(a);
    const b = bootstrapRmse(pred, truth, { threshold: 8, seed: 15 });
    expect(b.lo).not.toBe(a.lo);
    expect(a.lo).toBeLessThan(a.hi);
  });

  it("refuses empty or mismatched input and a level outside (0, 1)", () => {
    expect(() => bootstrapRmse([], [])).toThrow(/length mismatch or empty/);
    expect(() => bootstrapRmse([1, 2], [1])).toThrow(/length mismatch/);
    expect(() => bootstrapRmse([1], [1], { level: 1 })).toThrow(/level 1 not in/);
  });
});
