// Data quality before inference (gateway/src/infer/features/quality.ts): per-channel verdicts,
// imputation, regime inference, sensor-fault state, window rules, and the DeviceWindow that runs
// them on every frame.
import { describe, expect, it } from "vitest";
import type { ModelManifest } from "../../gateway/src/infer/features/manifest.ts";
import { createNormalizer, normalizeRow } from "../../gateway/src/infer/features/normalize.ts";
import {
  checkRow,
  createQuality,
  newFrameQuality,
  QUALITY_REASONS,
  QualityState,
  Q_MISSING,
  Q_OK,
  Q_OUT_OF_RANGE,
  Q_SPIKE,
  Q_STUCK,
  W_LOST_FEATURES,
  W_OK,
  W_ROW_IMPUTED,
  W_TOO_MUCH_IMPUTED,
  windowQuality,
} from "../../gateway/src/infer/features/quality.ts";
import type { LoadedModel } from "../../gateway/src/infer/registry.ts";
import { DeviceWindow, emptyMeta } from "../../gateway/src/infer/window.ts";
import { FeatureSpecError } from "../../gateway/src/infer/errors.ts";

/**
 * A small two-regime model: channels mode (regime), a, b, count, spare; features a, b, count.
 * Regime 0 around mode 0 (a ~ 10 ± 1, b ~ 100 ± 10), regime 1 around mode 1 (a ~ 50 ± 2, b ~ 200 ± 20).
 */
function manifest(quality = true): ModelManifest {
  return {
    schemaVersion: 1,
    name: "q-test",
    version: "1.0.0",
    task: "rul",
    devices: { profiles: ["q-test"] },
    model: { file: "x.onnx", sha256: "0".repeat(64), bytes: 1, format: "onnx", params: 1, macsPerWindow: 1 },
    inputs: {
      tensor: "window",
      dtype: "float32",
      shape: ["batch", 4, 3],
      channels: ["mode", "a", "b", "count", "spare"],
      features: ["a", "b", "count"],
      window: 4,
      stride: 1,
      padding: { policy: "repeat-first" },
      ...(quality
        ? {
            quality: {
              channels: {
                mode: { min: -0.5, max: 1.5 },
                a: { min: 0, max: 100, maxStepSd: 6, stuckFrames: 4 },
                b: { min: 0, max: 400, maxStep: 150 },
                count: { min: 0, max: 1e6, stuckFrames: 2, impute: "counter" },
              },
              maxImputeFrames: 3,
              faultFrames: 2,
              clearFrames: 2,
              window: { maxImputedFraction: 0.25, maxImputedFractionRow: 0.5, maxLostFeatures: 0 },
            },
          }
        : {}),
    },
    normalization: {
      method: "regime-zscore",
      regime: { channels: ["mode"], centroids: [[0], [1]] },
      mean: [
        [10, 100, 0],
        [50, 200, 0],
      ],
      std: [
        [1, 10, 100],
        [2, 20, 100],
      ],
    },
    outputs: [{ name: "rul", shape: ["batch"], unit: "cycles", meaning: "test" }],
    alerts: [],
    training: { command: "none", seed: 1, data: [{ file: "none", sha256: "0".repeat(64) }] },
    metrics: { testFile: "none", units: 1, rmse: 0, score: 0 },
  };
}

function setup(
  quality = true,
  edit?: (m: ModelManifest) => void,
): {
  m: ModelManifest;
  run: (
    row: number[],
    frames?: number,
  ) => { codes: string[]; z: number[]; regime: number; imputed: number; lost: number };
  state: QualityState;
  res: ReturnType<typeof newFrameQuality>;
} {
  const m = manifest(quality);
  edit?.(m);
  const norm = createNormalizer(m);
  const spec = createQuality(m, norm);
  const state = new QualityState(spec);
  const res = newFrameQuality(spec);
  const out = new Float32Array(3);
  const run = (
    row: number[],
    frames = 1,
  ): { codes: string[]; z: number[]; regime: number; imputed: number; lost: number } => {
    const regime = checkRow(spec, norm, state, row, 0, out, 0, res, frames);
    return {
      codes: Array.from(res.codes, (c) => QUALITY_REASONS[c]!),
      z: Array.from(out),
      regime,
      imputed: res.imputed,
      lost: res.lost,
    };
  };
  return { m, run, state, res };
}

describe("data quality: per-channel verdicts", () => {
  it("checks the features and the regime channel, never an unused channel", () => {
    const m = manifest();
    const spec = createQuality(m, createNormalizer(m));
    expect(spec.names).toEqual(["a", "b", "count", "mode"]);
    const { run } = setup();
    const r = run([0, 11, 110, 1, NaN]);
    expect(r.codes).toEqual(["ok", "ok", "ok", "ok"]);
    expect(r.z).toEqual([1, 1, 0.01].map(Math.fround));
  });

  it("writes exactly normalizeRow's values on good data (same float64 arithmetic)", () => {
    const m = manifest();
    const norm = createNormalizer(m);
    const { run } = setup();
    const expected = new Float32Array(3);
    for (let i = 0; i < 50; i++) {
      const row = [i % 2, (i % 2 ? 50 : 10) + Math.sin(i) / 3, (i % 2 ? 200 : 100) + Math.cos(i), i + 1, 0];
      normalizeRow(norm, row, 0, expected, 0);
      expect(run(row).z).toEqual(Array.from(expected));
    }
  });

  it("flags NaN and ±Inf as missing and imputes the last good normalised value", () => {
    const { run, state } = setup();
    run([0, 12, 120, 1, 0]);
    const r = run([0, NaN, Infinity, 2, 0]);
    expect(r.codes.slice(0, 2)).toEqual(["missing", "missing"]);
    expect(r.z.slice(0, 2)).toEqual([2, 2]);
    expect(r.imputed).toBe(2);
    expect(state.since[0]).toBe(1);
    const r2 = run([0, -Infinity, 130, 3, 0]);
    expect(r2.codes[0]).toBe("missing");
    expect(r2.z.slice(0, 2)).toEqual([2, 3]);
  });

  it("imputes z = 0 (the regime's mean) before any good value", () => {
    const { run } = setup();
    const r = run([1, NaN, 230, 1, 0]);
    expect(r.codes[0]).toBe("missing");
    expect(r.z[0]).toBe(0);
  });

  it("flags out-of-range values (a finite 3e38 never becomes ±Inf after normalisation)", () => {
    const { run } = setup();
    run([0, 10, 100, 1, 0]);
    const r = run([0, 3e38, -1, 2, 0]);
    expect(r.codes.slice(0, 2)).toEqual(["out-of-range", "out-of-range"]);
    expect(r.z.every(Number.isFinite)).toBe(true);
    expect(r.z.slice(0, 2)).toEqual([0, 0]);
  });

  it("flags a value repeated stuckFrames times as stuck, and releases it when it moves", () => {
    const { run } = setup();
    const a = [10.5, 10.5, 10.5, 10.5, 10.5, 10.7];
    const codes = a.map((v, i) => run([0, v, 100 + i, i + 1, 0]).codes[0]);
    expect(codes).toEqual(["ok", "ok", "ok", "stuck", "stuck", "ok"]);
  });

  it("flags spikes by raw step (scaled by the frames since the last good value) and by standard deviations", () => {
    const { run } = setup();
    run([0, 10, 100, 1, 0]);
    expect(run([0, 10, 260, 2, 0]).codes[1]).toBe("spike"); // |Δb| 160 > 150
    expect(run([0, 10, 240, 3, 0]).codes[1]).toBe("ok"); // 140 < 150 × 2 frames since the last good
    expect(run([0, 17, 240, 4, 0]).codes[0]).toBe("spike"); // a: 7 sd from the last good z
    const r = run([0, 15.9, 240, 5, 0]);
    expect(r.codes[0]).toBe("ok"); // 5.9 sd
  });

  it("a lasting shift beyond maxStepSd (a replaced or recalibrated sensor) is the new level once clearFrames such values in a row agree: no sensor fault for ever", () => {
    const { run, state } = setup(); // a: maxStepSd 6; clearFrames 2
    run([0, 10, 100, 1, 0]);
    expect(run([0, 18, 100, 2, 0]).codes[0]).toBe("spike"); // +8 sd > 6
    const r = run([0, 18.5, 100, 3, 0]); // within 6 sd of the value before: the second in a row
    expect(r.codes[0]).toBe("ok");
    expect(r.z[0]).toBeCloseTo(8.5, 12);
    expect(run([0, 18.4, 100, 4, 0]).codes[0]).toBe("ok"); // the new level is the last good value
    expect(state.faults).toBe(0); // one flagged frame < faultFrames 2
  });

  it("values beyond maxStepSd that do not agree with each other (a value held across regime changes, noise) stay spikes", () => {
    const { run, state } = setup();
    run([0, 10, 100, 1, 0]);
    const codes = [18, 2, 18, 2, 18, 2].map((a, i) => run([0, a, 100, i + 2, 0]).codes[0]);
    expect(codes).toEqual(Array(6).fill("spike")); // ±8 sd, 16 sd apart
    expect(state.faulted[0]).toBe(1);
    // A missing value between two agreeing ones does not break their run.
    expect(run([0, 18, 100, 8, 0]).codes[0]).toBe("spike");
    expect(run([0, NaN, 100, 9, 0]).codes[0]).toBe("missing");
    expect(run([0, 18, 100, 10, 0]).codes[0]).toBe("ok");
  });

  it("the raw spike check compares with the last good value, so a spike is flagged until it goes away", () => {
    const { run } = setup();
    run([0, 10, 100, 1, 0]);
    expect(run([0, 10, 300, 2, 0]).codes[1]).toBe("spike");
    expect(run([0, 10, 101, 3, 0]).codes[1]).toBe("ok");
  });

  it("continues a counter by its last step while it is missing", () => {
    const { run } = setup();
    run([0, 10, 100, 10, 0]);
    run([0, 10, 101, 12, 0]); // step 2
    const r = run([0, 10, 102, NaN, 0]);
    expect(r.codes[2]).toBe("missing");
    expect(r.z[2]).toBe(Math.fround(0.14));
    expect(run([0, 10, 103, NaN, 0]).z[2]).toBe(Math.fround(0.16));
    // a repeated counter value is stuck at once (stuckFrames 2) and counted on
    expect(run([0, 10, 104, 18, 0]).codes[2]).toBe("ok");
    const s = run([0, 10, 105, 18, 0]);
    expect(s.codes[2]).toBe("stuck");
    expect(s.z[2]).toBe(Math.fround(0.2)); // 18 + 2·1... step since 12 → 18 over 3 frames = 2
  });

  it("a counter that repeats its value is continued from the last value that moved, not from the repeats (no frozen age)", () => {
    const { run } = setup(true, (m) => {
      m.inputs.quality!.channels.count!.stuckFrames = 4;
    });
    run([0, 10, 100, 10, 0]);
    run([0, 10, 100, 11, 0]); // step 1
    // Stuck at 11: the first two repeats pass as good values (fed as they are); with the value
    // itself that makes four in a row, and the next repeat is flagged.
    for (let i = 0; i < 2; i++) expect(run([0, 10, 100, 11, 0]).codes[2]).toBe("ok");
    const s = run([0, 10, 100, 11, 0]);
    expect(s.codes[2]).toBe("stuck");
    // Three frames after the last value that moved (11): 11 + 1·3 = 14, not 11.
    expect(s.z[2]).toBe(Math.fround(0.14));
    expect(run([0, 10, 100, 11, 0]).z[2]).toBe(Math.fround(0.15));
    // It moves again, where it would be by now: taken as is, and counting goes on from there.
    const back = run([0, 10, 100, 16, 0]);
    expect([back.codes[2], back.z[2]]).toEqual(["ok", Math.fround(0.16)]);
  });

  it("frames lost in between (the seq step) count: a counter that moved with them is no spike, and a missing value is imputed across the gap", () => {
    const { run } = setup(true, (m) => {
      m.inputs.quality!.channels.count!.maxStep = 2;
    });
    run([0, 10, 100, 10, 0]);
    run([0, 10, 100, 11, 0]); // step 1
    // 100 frames were lost: the counter moved by 100 (at most 2 a frame would allow 200).
    const back = run([0, 10, 100, 111, 0], 100);
    expect([back.codes[2], back.z[2]]).toEqual(["ok", Math.fround(1.11)]);
    // Missing after 5 more lost frames: 111 + 1·6.
    expect(run([0, 10, 100, NaN, 0], 6).z[2]).toBe(Math.fround(1.17));
    // As one frame, the same jump is a spike.
    const { run: once } = setup(true, (m) => {
      m.inputs.quality!.channels.count!.maxStep = 2;
    });
    once([0, 10, 100, 10, 0]);
    once([0, 10, 100, 11, 0]);
    expect(once([0, 10, 100, 111, 0]).codes[2]).toBe("spike");
  });

  it("regress: estimates a flagged feature from the row's other normalised features", () => {
    const m = manifest();
    const q = m.inputs.quality!;
    q.channels["a"]!.impute = "regress";
    q.regression = {
      features: ["a", "b", "count"],
      weights: [
        [0, 2, 0],
        [0, 0, 0],
        [0, 0, 0],
      ],
      intercept: [0.5, 0, 0],
    };
    const norm = createNormalizer(m);
    const spec = createQuality(m, norm);
    const state = new QualityState(spec);
    const res = newFrameQuality(spec);
    const out = new Float32Array(3);
    checkRow(spec, norm, state, [0, 10, 100, 1, 0], 0, out, 0, res);
    checkRow(spec, norm, state, [0, NaN, 103, 2, 0], 0, out, 0, res); // z_b = 0.3 → z_a = 0.5 + 0.6
    expect(res.codes[0]).toBe(Q_MISSING);
    expect(out[0]).toBe(Math.fround(0.5 + 2 * Math.fround(0.3)));
    // b missing too: its last good z (0.3) stands in for it
    checkRow(spec, norm, state, [0, NaN, NaN, 3, 0], 0, out, 0, res);
    expect(out[1]).toBe(Math.fround(0.3));
    expect(out[0]).toBe(Math.fround(0.5 + 2 * Math.fround(0.3)));
    const bad = structuredClone(m);
    bad.inputs.quality!.regression!.weights[0]![0] = 1;
    expect(() => createQuality(bad, createNormalizer(bad))).toThrow(/itself/);
    const none = structuredClone(m);
    delete none.inputs.quality!.regression;
    expect(() => createQuality(none, createNormalizer(none))).toThrow(/regression/);
  });

  it("infers the regime from the features when a regime channel is flagged", () => {
    const { run, res } = setup();
    run([1, 50, 200, 1, 0]);
    const r = run([NaN, 10.5, 101, 2, 0]); // clearly regime 0 values
    expect(r.codes[3]).toBe("missing");
    expect(res.regimeInferred).toBe(true);
    expect(r.regime).toBe(0);
    expect(r.z.slice(0, 2)).toEqual([0.5, 0.1].map(Math.fround));
    const r2 = run([7, 49, 210, 3, 0]); // out of range mode, regime-1 values
    expect(r2.codes[3]).toBe("out-of-range");
    expect(r2.regime).toBe(1);
    run([NaN, NaN, NaN, 4, 0]); // nothing to go by: keeps the previous regime
    expect(res.regimeInferred).toBe(true);
    expect(run([NaN, NaN, NaN, 5, 0]).regime).toBe(1);
  });

  it("counts a feature imputed for more than maxImputeFrames frames in a row as lost", () => {
    const { run } = setup();
    run([0, 10, 100, 1, 0]);
    const lost = [2, 3, 4, 5, 6].map((c) => run([0, NaN, 100, c, 0]).lost);
    expect(lost).toEqual([0, 0, 0, 1, 1]);
  });

  it("run counters never wrap: a value stuck, or missing, for 2^31 frames (248 days at 100 Hz) stays flagged and lost", () => {
    const { run, state } = setup();
    run([0, 10.5, 100, 1, 0]);
    state.run[0] = 2 ** 31 - 2; // a stuck for that long (as if counted frame by frame)
    const stuck = [2, 3, 4].map((c) => run([0, 10.5, 100 + c, c, 0]).codes[0]);
    expect(stuck).toEqual(["stuck", "stuck", "stuck"]);
    expect(state.run[0]).toBe(2 ** 31 + 1);
    // b missing for as long: still lost, and a value after it is judged by the whole gap
    state.since[1] = 2 ** 31 - 2;
    const lost = [5, 6, 7].map((c) => run([0, 11 + c / 10, NaN, c, 0]).lost);
    expect(lost).toEqual([1, 1, 1]);
    expect(run([0, 10.8, 390, 8, 0]).codes[1]).toBe("ok"); // |Δb| 290 within 150 × the gap
  });

  it("raises a sensor fault after faultFrames flagged frames and clears it after clearFrames good ones", () => {
    const { run, state, res } = setup();
    const events: string[] = [];
    const step = (a: number, c: number): void => {
      run([0, a, 100, c, 0]);
      for (let i = 0; i < res.changedCount; i++) {
        const u = res.changed[i]!;
        events.push(
          `${c}:${u}:${state.faulted[u] ? `raise ${QUALITY_REASONS[state.faultCode[u]!]}` : "clear"}`,
        );
      }
    };
    step(10, 1);
    step(NaN, 2); // one missing value: no fault
    step(10, 3);
    step(NaN, 4);
    step(500, 5); // second flagged frame in a row: raise (reason of the frame that raised)
    step(600, 6);
    step(10, 7);
    step(10.1, 8); // second good frame: clear
    expect(events).toEqual(["5:0:raise out-of-range", "8:0:clear"]);
    expect(state.faults).toBe(0);
  });

  it("rejects a quality block that misses a used channel or has inconsistent rules", () => {
    const bad = (edit: (m: ModelManifest) => void): (() => void) => {
      const m = manifest();
      edit(m);
      return () => createQuality(m, createNormalizer(m));
    };
    expect(bad((m) => delete m.inputs.quality!.channels["mode"])).toThrow(FeatureSpecError);
    expect(bad((m) => (m.inputs.quality!.channels["zzz"] = {}))).toThrow(/not an input channel/);
    expect(bad((m) => (m.inputs.quality!.channels["a"]!.min = 1000))).toThrow(/min > max/);
    expect(bad((m) => (m.inputs.quality!.channels["mode"]!.maxStepSd = 3))).toThrow(/regime channel/);
    expect(bad((m) => (m.inputs.quality!.channels["a"]!.stuckFrames = 1))).toThrow(/stuckFrames/);
    expect(bad((m) => (m.inputs.quality!.window.maxImputedFraction = 2))).toThrow(/\[0, 1\]/);
  });

  it("codes are stable (they appear in reports)", () => {
    expect([Q_OK, Q_MISSING, Q_OUT_OF_RANGE, Q_STUCK, Q_SPIKE].map((c) => QUALITY_REASONS[c])).toEqual([
      "ok",
      "missing",
      "out-of-range",
      "stuck",
      "spike",
    ]);
  });
});

describe("data quality: window rules", () => {
  const m = manifest();
  const spec = createQuality(m, createNormalizer(m));
  it("withholds a window with too much imputed data, an imputed newest row or a lost feature", () => {
    expect(windowQuality(spec, 3, 3, 4, 0, 0)).toBe(W_OK); // 3 of 12 = 0.25
    expect(windowQuality(spec, 3, 4, 4, 0, 0)).toBe(W_TOO_MUCH_IMPUTED);
    expect(windowQuality(spec, 3, 2, 4, 2, 0)).toBe(W_ROW_IMPUTED); // 2 of 3 > 0.5
    expect(windowQuality(spec, 3, 1, 4, 1, 1)).toBe(W_LOST_FEATURES);
  });
  it("without a quality block any imputed value withholds the window", () => {
    const m0 = manifest(false);
    const s0 = createQuality(m0, createNormalizer(m0));
    expect(s0.declared).toBe(false);
    expect(windowQuality(s0, 3, 0, 4, 0, 0)).toBe(W_OK);
    expect(windowQuality(s0, 3, 1, 4, 0, 0)).not.toBe(W_OK);
  });
  it("without a quality block a missing regime-only channel counts as imputed (the regime was guessed); with one, it does not", () => {
    const bare = setup(false);
    bare.run([0, 10, 100, 1, 0]);
    const r = bare.run([NaN, 10, 100, 2, 0]);
    expect(r.codes[3]).toBe("missing"); // 'mode': the regime-only channel, after a, b, count
    expect(bare.res.regimeInferred).toBe(true);
    expect(r.imputed).toBe(1);
    expect(bare.run([0, 10, 100, 3, 0]).imputed).toBe(0);
    const declared = setup(true);
    declared.run([0, 10, 100, 1, 0]);
    expect(declared.run([NaN, 10, 100, 2, 0]).imputed).toBe(0);
    expect(declared.res.regimeInferred).toBe(true);
  });
});

describe("DeviceWindow with the data-quality stage", () => {
  const fakeModel = (m: ModelManifest): LoadedModel =>
    ({ manifest: m, normalizer: createNormalizer(m) }) as unknown as LoadedModel;
  const good = (i: number): number[] => [0, 10 + Math.sin(i), 100 + 5 * Math.cos(i), i + 1, 0];

  it("NaN in an unused channel never costs a prediction, and the window is unchanged", () => {
    const model = fakeModel(manifest());
    const clean = new DeviceWindow(1, model, "q-test");
    const dirty = new DeviceWindow(2, model, "q-test");
    const a = new Float32Array(12);
    const b = new Float32Array(12);
    for (let i = 0; i < 10; i++) {
      expect(clean.push(good(i), i, 0, 0)).toBe(true);
      const row = good(i);
      row[4] = i % 2 ? NaN : Infinity;
      expect(dirty.push(row, i, 0, 0)).toBe(true);
      expect(dirty.frameQuality.flagged).toBe(0);
    }
    clean.take(a, 0, emptyMeta());
    const meta = emptyMeta();
    dirty.take(b, 0, meta);
    expect(b).toEqual(a);
    expect(meta.imputed).toBe(0);
  });

  it("imputes within the rules, withholds the window beyond them, and recovers", () => {
    const w = new DeviceWindow(1, fakeModel(manifest()), "q-test");
    for (let i = 0; i < 6; i++) w.push(good(i), i, 0, 0);
    const row = good(6);
    row[1] = NaN;
    expect(w.push(row, 6, 0, 0)).toBe(true); // 1 of 12 imputed
    const out = new Float32Array(12);
    const meta = emptyMeta();
    w.take(out, 0, meta);
    expect(meta.imputed).toBe(1);
    expect(out.every(Number.isFinite)).toBe(true);
    const verdicts: number[] = [];
    const withheld: boolean[] = [];
    for (let i = 7; i < 16; i++) {
      const r = good(i);
      if (i < 11) r[1] = NaN;
      expect(w.push(r, i, 0, 0)).toBe(!w.withheldLast);
      verdicts.push(w.windowVerdict);
      withheld.push(w.withheldLast);
      if (w.frameQuality.flagged) expect(w.quality.names[w.frameQuality.codes.indexOf(1)]).toBe("a");
    }
    // rows 6..10 missing a: the 4-row window holds 2, 3, 4 (lost: imputed 4 frames > 3) …
    expect(verdicts).toEqual([W_OK, W_OK, W_LOST_FEATURES, W_LOST_FEATURES, W_OK, W_OK, W_OK, W_OK, W_OK]);
    expect(w.withheld).toBe(2);
    expect(withheld).toEqual(verdicts.map((v) => v !== W_OK));
  });

  it("without a quality block a NaN in a feature withholds every window that holds it", () => {
    const w = new DeviceWindow(1, fakeModel(manifest(false)), "q-test");
    const ready: boolean[] = [];
    for (let i = 0; i < 9; i++) {
      const r = good(i);
      if (i === 2) r[2] = NaN;
      ready.push(w.push(r, i, 0, 0));
    }
    expect(ready).toEqual([true, true, false, false, false, false, true, true, true]);
    expect(w.qualityState.faulted[1]).toBe(0); // cleared after one good frame (default clearFrames 1)
  });

  it("without a quality block a NaN in a regime-only channel withholds every window that holds it too", () => {
    const w = new DeviceWindow(1, fakeModel(manifest(false)), "q-test");
    const ready: boolean[] = [];
    for (let i = 0; i < 9; i++) {
      const r = good(i);
      if (i === 2) r[0] = NaN; // 'mode'
      ready.push(w.push(r, i, 0, 0));
    }
    expect(ready).toEqual([true, true, false, false, false, false, true, true, true]);
  });
});
