// Commissioning anywhere in a machine's life: the baseline's origin feature (inputs.baseline.origin)
// and the per-device commissioning mode (gateway/src/infer/features/commissioning.ts).
import { describe, expect, it } from "vitest";
import { commissioningMode } from "../../gateway/src/infer/features/commissioning.ts";
import { tensorWidth, type ModelManifest } from "../../gateway/src/infer/features/manifest.ts";
import {
  applyBaseline,
  createNormalizer,
  newBaseline,
  normalizeRow,
} from "../../gateway/src/infer/features/normalize.ts";
import type { HistoryRow } from "../../gateway/src/infer/history.ts";
import type { LoadedModel } from "../../gateway/src/infer/registry.ts";
import { DeviceWindow, emptyMeta } from "../../gateway/src/infer/window.ts";
import { FeatureSpecError } from "../../gateway/src/infer/errors.ts";

/** channels s, cycle; features s, cycle; baseline of 2 rows on s; origin cycle (std 100). */
function manifest(baseline: "origin" | "plain" | "none" = "origin"): ModelManifest {
  const bl =
    baseline === "none"
      ? {}
      : {
          baseline: {
            rows: 2,
            features: ["s"],
            ...(baseline === "origin" ? { origin: { feature: "cycle", firstCycleMax: 1 } } : {}),
          },
        };
  const width = 2 + (baseline === "none" ? 0 : 1) + (baseline === "origin" ? 1 : 0);
  return {
    schemaVersion: 1,
    name: "c-test",
    version: "1.0.0",
    task: "rul",
    devices: { profiles: ["c-test"] },
    model: { file: "x.onnx", sha256: "0".repeat(64), bytes: 1, format: "onnx", params: 1, macsPerWindow: 1 },
    inputs: {
      tensor: "window",
      dtype: "float32",
      shape: ["batch", 3, width],
      channels: ["s", "cycle"],
      features: ["s", "cycle"],
      window: 3,
      stride: 1,
      padding: { policy: "repeat-first" },
      ...bl,
    },
    normalization: {
      method: "regime-zscore",
      regime: { channels: ["s"], centroids: [[0]] },
      mean: [[10, 0]],
      std: [[2, 100]],
    },
    outputs: [{ name: "rul", shape: ["batch"], unit: "cycles", meaning: "test" }],
    alerts: [],
    training: { command: "none", seed: 1, data: [{ file: "none", sha256: "0".repeat(64) }] },
    metrics: { testFile: "none", units: 1, rmse: 0, score: 0 },
  };
}

/** manifest() whose data-quality rules impute (last good value) and never withhold a window. */
function lenient(): ModelManifest {
  const m = manifest();
  m.inputs.quality = {
    channels: { s: {}, cycle: {} },
    window: { maxImputedFraction: 1, maxImputedFractionRow: 1, maxLostFeatures: 2 },
  };
  return m;
}

const model = (m: ModelManifest): LoadedModel =>
  ({ manifest: m, normalizer: createNormalizer(m) }) as unknown as LoadedModel;

describe("baseline origin", () => {
  it("appends the first row's normalised origin feature to every row, after the deviations", () => {
    const m = manifest();
    const norm = createNormalizer(m);
    expect(norm.features).toBe(4);
    expect(tensorWidth(m)).toBe(4);
    const state = newBaseline(norm);
    const out = new Float32Array(4);
    const rows = [
      [12, 250],
      [14, 251],
      [20, 252],
    ];
    const got = rows.map((r) => {
      normalizeRow(norm, r, 0, out, 0);
      applyBaseline(norm, state, out, 0);
      return Array.from(out);
    });
    // s: z = (s-10)/2 → 1, 2, 5; baseline mean of the first 2 rows: 1, 1.5, 1.5; origin 250/100
    expect(got).toEqual(
      [
        [1, 2.5, 0, 2.5],
        [2, 2.51, 0.5, 2.5],
        [5, 2.52, 3.5, 2.5],
      ].map((r) => r.map(Math.fround)),
    );
  });

  it("rejects an origin that is not a feature", () => {
    const m = manifest();
    m.inputs.baseline!.origin!.feature = "nope";
    expect(() => createNormalizer(m)).toThrow(FeatureSpecError);
  });
});

describe("commissioning mode per device", () => {
  it("first-cycle when the first frame's age is ≤ firstCycleMax, mid-life otherwise", () => {
    const m = manifest();
    expect(commissioningMode(m, 1)).toBe("first-cycle");
    expect(commissioningMode(m, 2)).toBe("mid-life");
    expect(commissioningMode(m, NaN)).toBe("mid-life");
    expect(commissioningMode(manifest("plain"), 200)).toBe("assumed-first-cycle");
    expect(commissioningMode(manifest("none"), 200)).toBe("not-needed");
  });

  it("DeviceWindow reports the mode and the baseline's progress, and the rows carry the origin", () => {
    const fresh = new DeviceWindow(1, model(manifest()), "c-test");
    expect(fresh.commissioning).toMatchObject({ mode: "mid-life", baselineRows: 0, baselineNeeds: 2 });
    fresh.push([10, 1], 0, 0, 0);
    expect(fresh.commissioning).toMatchObject({ mode: "first-cycle", age: 1, baselineRows: 1 });

    const old = new DeviceWindow(2, model(manifest()), "c-test");
    for (let i = 0; i < 3; i++) old.push([10 + i, 400 + i], i, 0, 0);
    expect(old.commissioning).toEqual({ mode: "mid-life", age: 400, baselineRows: 2, baselineNeeds: 2 });
    const out = new Float32Array(12);
    old.take(out, 0, emptyMeta());
    for (let r = 0; r < 3; r++) expect(out[r * 4 + 3]).toBe(4);
  });

  it("a value missing from the first frames is left out of the baseline, live and when warmed", () => {
    // Row 0 has no s and no cycle: both are imputed with the regime's mean (z = 0, no good value yet),
    // a guess. The baseline of s is then row 1's z = 1 alone, and the origin and age row 1's 250;
    // counted in, they would have made the baseline 0.5 and the origin 0 (cycle 0: "first-cycle").
    const frames = [
      [NaN, NaN],
      [12, 250],
      [14, 251],
    ];
    const expected = [
      [0, 0, 0, 0],
      [1, 2.5, 0, 2.5],
      [2, 2.51, 1, 2.5],
    ].map((r) => r.map(Math.fround));
    const live = new DeviceWindow(4, model(lenient()), "c-test");
    frames.forEach((v, i) => live.push(v, i, i, i));
    expect(live.commissioning).toEqual({ mode: "mid-life", age: 250, baselineRows: 2, baselineNeeds: 2 });
    const out = new Float32Array(12);
    live.take(out, 0, emptyMeta());
    expect(Array.from(out.subarray(4))).toEqual(expected.slice(1).flat());
    // the first row keeps the guesses it was written with (its origin was not known yet)
    expect(Array.from(out.subarray(0, 4))).toEqual(expected[0]);

    // A restart seeds the same baseline from the stored first frames (the ring from later ones).
    const row = (seq: number, v: number[]): HistoryRow => ({
      seq,
      timestampUs: seq,
      receivedUs: seq,
      values: Float32Array.from(v),
    });
    const warmed = new DeviceWindow(5, model(lenient()), "c-test");
    warmed.warm(
      frames.map((v, i) => row(i, v)),
      [row(50, [14, 300]), row(51, [14, 301])],
    );
    expect(warmed.commissioning).toEqual(live.commissioning);
    warmed.push([20, 302], 52, 52, 52);
    warmed.take(out, 0, emptyMeta());
    expect(Array.from(out.subarray(8))).toEqual([5, 3.02, 4, 2.5].map(Math.fround));
  });

  it("a value imputed from an earlier good one is not a guess: it stays in the baseline", () => {
    const w = new DeviceWindow(6, model(lenient()), "c-test");
    w.push([12, 1], 0, 0, 0);
    w.push([NaN, NaN], 1, 1, 1); // last good: s z = 1, cycle 0.01
    w.push([16, 3], 2, 2, 2);
    expect(w.commissioning).toMatchObject({ mode: "first-cycle", age: 1, baselineRows: 2 });
    const out = new Float32Array(12);
    w.take(out, 0, emptyMeta());
    // baseline of s: (1 + 1) / 2 = 1, so row 2 (z = 3) deviates by 2
    expect(out[8 + 2]).toBe(2);
  });

  it("a device warmed from history takes its age from the earliest stored frame", () => {
    const w = new DeviceWindow(3, model(manifest()), "c-test");
    const row = (
      seq: number,
      cycle: number,
    ): { seq: number; timestampUs: number; receivedUs: number; values: Float32Array } => ({
      seq,
      timestampUs: seq,
      receivedUs: seq,
      values: Float32Array.from([10, cycle]),
    });
    w.warm([row(0, 1), row(1, 2)], [row(50, 51), row(51, 52)]);
    expect(w.commissioning).toMatchObject({ mode: "first-cycle", age: 1, baselineRows: 2 });
  });
});
