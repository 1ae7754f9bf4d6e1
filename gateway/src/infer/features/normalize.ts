/**
 * Feature pipeline, per row: operating-regime z-score normalisation and the per-device baseline
 * deviations, exactly as models/cmapss/train.py computes them (float64 arithmetic, float32
 * results). Used by the gateway's per-device rings (infer/window.ts) and by models/eval. The
 * per-row functions write into caller buffers and do not allocate.
 */
import { FeatureSpecError } from "../errors.ts";
import type { ModelManifest } from "./manifest.ts";

/** Manifest normalisation compiled to flat typed arrays (build once per model, reuse per row). */
export interface Normalizer {
  /** number of channels in a device frame */
  channels: number;
  /** values per window row in the input tensor: `direct` features, then the baseline deviations */
  features: number;
  /** number of directly normalised features (manifest `inputs.features`); normalizeRow writes these */
  direct: number;
  /** rows that make the baseline (manifest `inputs.baseline.rows`); 0 when the model has none */
  baselineRows: number;
  /** position within the direct features of each baseline feature (the tensor values after `direct`) */
  baselineIndex: Int32Array;
  /**
   * position within the direct features of the baseline's origin feature (`inputs.baseline.origin`),
   * whose value in the device's first row ends every row; -1 without
   */
  originIndex: number;
  /** frame channel index of each model feature */
  featureIndex: Int32Array;
  /** frame channel index of each regime channel */
  regimeIndex: Int32Array;
  regimes: number;
  /** [regime][regimeChannel] */
  centroids: Float64Array;
  /** [regime][feature] */
  mean: Float64Array;
  /** [regime][feature] standard deviation; normalizeRow divides (not multiplies by 1/std) to match training bit for bit */
  std: Float64Array;
}

/** Indices of `names` in `among` ("channels" or "features": what the error calls that list). */
function indexOfAll(
  names: readonly string[],
  channels: readonly string[],
  what: string,
  among: "channels" | "features" = "channels",
): Int32Array {
  return Int32Array.from(
    names.map((n) => {
      const i = channels.indexOf(n);
      if (i < 0) throw new FeatureSpecError(`${what} "${n}" is not one of the input ${among}`);
      return i;
    }),
  );
}

export function createNormalizer(manifest: ModelManifest): Normalizer {
  const { inputs, normalization: n } = manifest;
  if (n.method !== "regime-zscore")
    throw new FeatureSpecError(`unsupported normalisation ${String(n.method)}`);
  const featureIndex = indexOfAll(inputs.features, inputs.channels, "feature");
  const regimeIndex = indexOfAll(n.regime.channels, inputs.channels, "regime channel");
  const regimes = n.regime.centroids.length;
  const F = featureIndex.length;
  const R = regimeIndex.length;
  if (n.mean.length !== regimes || n.std.length !== regimes)
    throw new FeatureSpecError("mean/std must have one row per regime");
  const flat = (rows: number[][], width: number, what: string): Float64Array => {
    const out = new Float64Array(rows.length * width);
    rows.forEach((row, r) => {
      if (row.length !== width)
        throw new FeatureSpecError(`${what}[${r}] has ${row.length} values, expected ${width}`);
      out.set(row, r * width);
    });
    return out;
  };
  const std = flat(n.std, F, "std");
  if (std.some((s) => !(s > 0))) throw new FeatureSpecError("std values must be > 0");
  const bl = inputs.baseline;
  if (bl && !(Number.isInteger(bl.rows) && bl.rows >= 1))
    throw new FeatureSpecError(`baseline.rows must be a positive integer, got ${bl.rows}`);
  const baselineIndex = bl
    ? indexOfAll(bl.features, inputs.features, "baseline feature", "features")
    : new Int32Array(0);
  const originIndex = bl?.origin ? inputs.features.indexOf(bl.origin.feature) : -1;
  if (bl?.origin && originIndex < 0)
    throw new FeatureSpecError(`baseline origin "${bl.origin.feature}" is not one of the features`);
  return {
    channels: inputs.channels.length,
    features: F + baselineIndex.length + (originIndex >= 0 ? 1 : 0),
    direct: F,
    baselineRows: bl?.rows ?? 0,
    baselineIndex,
    originIndex,
    featureIndex,
    regimeIndex,
    regimes,
    centroids: flat(n.regime.centroids, R, "centroids"),
    mean: flat(n.mean, F, "mean"),
    std,
  };
}

/** Operating regime of the frame at `row[offset .. offset + channels)`: nearest centroid (first on ties). */
export function assignRegime(norm: Normalizer, row: ArrayLike<number>, offset = 0): number {
  if (norm.regimes === 1) return 0;
  const R = norm.regimeIndex.length;
  let best = 0;
  let bestD = Infinity;
  for (let k = 0; k < norm.regimes; k++) {
    let d = 0;
    for (let j = 0; j < R; j++) {
      const diff = (row[offset + norm.regimeIndex[j]!] as number) - norm.centroids[k * R + j]!;
      d += diff * diff;
    }
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return best;
}

/**
 * Normalises one frame (all `norm.channels` channels at `row[rowOffset]`) into the `norm.direct`
 * feature values at `out[outOffset]` (float32). Arithmetic in float64, like training. Returns the
 * regime used. A model with a baseline needs applyBaseline next, for the values after them.
 */
export function normalizeRow(
  norm: Normalizer,
  row: ArrayLike<number>,
  rowOffset: number,
  out: Float32Array,
  outOffset: number,
): number {
  const r = assignRegime(norm, row, rowOffset);
  const F = norm.direct;
  const base = r * F;
  for (let f = 0; f < F; f++) {
    out[outOffset + f] =
      ((row[rowOffset + norm.featureIndex[f]!] as number) - norm.mean[base + f]!) / norm.std[base + f]!;
  }
  return r;
}

/** A device's (unit's) baseline so far: the sums of its first rows' baseline features. */
export interface BaselineState {
  /** rows seen so far (at most `norm.baselineRows`): the baseline is taken over these rows */
  rows: number;
  /** float64 sums of every value (measured or imputed), one per baseline feature */
  sum: Float64Array;
  /** float64 sums and counts of the values that were not guessed (see applyBaseline) */
  good: Float64Array;
  goodRows: Int32Array;
  /** the origin feature's normalised value in the first row (NaN before it; unused without an origin) */
  origin: number;
  /** true once `origin` comes from a value that was not guessed (see applyBaseline) */
  originMeasured: boolean;
}

export function newBaseline(norm: Normalizer): BaselineState {
  const B = norm.baselineIndex.length;
  return {
    rows: 0,
    sum: new Float64Array(B),
    good: new Float64Array(B),
    goodRows: new Int32Array(B),
    origin: NaN,
    originMeasured: false,
  };
}

/**
 * Completes a row written by normalizeRow at `out[offset]`: while the device has had fewer than
 * `norm.baselineRows` rows, adds this row to its baseline; then writes, after the direct features,
 * each baseline feature minus the baseline mean (float64, stored as float32; models/cmapss/train.py
 * Norm.apply). The first row's deviations are 0. With `inputs.baseline.origin`, the origin
 * feature's value in the first row follows as the row's last value. No allocation; a no-op
 * without a baseline.
 *
 * `guessed` (per direct feature, 1 = a stand-in the data-quality stage wrote without knowing
 * anything about the value: FrameQuality.guessed, features/quality.ts) keeps such values out of
 * the baseline: a feature's baseline is the mean of its other values among the baseline rows, and
 * the origin is the first such origin value among them; the mean of all values (and the first
 * row's value) stand in only until there is one. So a missing value in a device's first frame
 * does not set its commissioning age or bias its deviations for life. Without `guessed` (or on
 * clean data) the bits are training's.
 */
export function applyBaseline(
  norm: Normalizer,
  state: BaselineState,
  out: Float32Array,
  offset: number,
  guessed?: Uint8Array,
): void {
  const B = norm.baselineIndex.length;
  if (B === 0) return;
  const add = state.rows < norm.baselineRows;
  const oi = norm.originIndex;
  if (add && oi >= 0 && !state.originMeasured) {
    const ok = guessed === undefined || guessed[oi] === 0;
    if (ok || state.rows === 0) state.origin = out[offset + oi]!;
    state.originMeasured = ok;
  }
  if (add) state.rows++;
  for (let j = 0; j < B; j++) {
    const f = norm.baselineIndex[j]!;
    const v = out[offset + f]!;
    if (add) {
      state.sum[j]! += v;
      if (guessed === undefined || guessed[f] === 0) {
        state.good[j]! += v;
        state.goodRows[j]!++;
      }
    }
    const n = state.goodRows[j]!;
    const ref = n > 0 ? state.good[j]! / n : state.sum[j]! / state.rows;
    out[offset + norm.direct + j] = v - ref;
  }
  if (oi >= 0) out[offset + norm.direct + B] = state.origin;
}
