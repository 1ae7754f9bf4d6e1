/**
 * Data quality before inference (manifest `inputs.quality`, models/manifest.schema.json).
 *
 * Every frame a device sends is checked, channel by channel, before it becomes a window row:
 * only the channels the model uses (its features, and its regime channels when it has more than
 * one operating regime); a NaN, an absurd value or a stuck sensor in any other channel never costs
 * a prediction. Per used channel, in this order of precedence:
 *
 * - `missing`: the value is NaN or ±Inf (as the device sent it; frames keep non-finite values);
 * - `out-of-range`: outside the declared `[min, max]`;
 * - `stuck`: the same value `stuckFrames` times in a row (a flat-lined sensor);
 * - `spike`: further from the channel's last good value than `maxStep` (raw units per frame since
 *   that value) or, for a feature, than `maxStepSd` standard deviations of the row's regime; such
 *   values are a new level, and good, once `clearFrames` of them in a row each stay within
 *   `maxStepSd` of the one before.
 *
 * A flagged value is never fed raw. A flagged feature is imputed by its declared policy:
 * `last-good` holds its last good normalised value (the regime's mean, z = 0, before any), and
 * `counter` (a cycle counter) continues the last good value by its last step per frame, and
 * `regress` estimates it from the row's other normalised features with the manifest's linear
 * regression (the sensors of a degrading machine move together). A feature
 * imputed for more than `maxImputeFrames` frames in a row is "lost". A flagged regime channel makes
 * the row's regime the one under which the row's good features are most plausible (least sum of
 * squared z-scores) instead of the nearest centroid. On good data the row is bit-for-bit what
 * `normalizeRow` writes (the same float64 arithmetic), so training, evaluation and the gateway
 * agree.
 *
 * A channel flagged `faultFrames` frames in a row becomes a **sensor fault** (reported with the
 * channel and the reason, distinct from machine health); it clears after `clearFrames` good frames
 * in a row. The window rules (`windowQuality`) withhold a prediction when too much of a window is
 * imputed. Per frame the work is a few comparisons per used channel and no allocation: state lives
 * in typed arrays per device, the verdict in a caller-owned {@link FrameQuality}.
 */
import { FeatureSpecError } from "../errors.ts";
import type { ModelManifest, QualityChannelSpec } from "./manifest.ts";
import type { Normalizer } from "./normalize.ts";

/** Per-channel verdict codes (index into {@link QUALITY_REASONS}). */
export const Q_OK = 0;
export const Q_MISSING = 1;
export const Q_OUT_OF_RANGE = 2;
export const Q_STUCK = 3;
export const Q_SPIKE = 4;
/** Names of the verdict codes, as reported in sensor-fault alerts and status messages. */
export const QUALITY_REASONS = ["ok", "missing", "out-of-range", "stuck", "spike"] as const;
export type QualityReason = (typeof QUALITY_REASONS)[number];

/** Imputation policies (manifest `impute`). */
const POLICY_LAST_GOOD = 0;
const POLICY_COUNTER = 1;
const POLICY_REGRESS = 2;

/** A model's data-quality rules compiled to flat typed arrays (build once per model). */
export interface QualitySpec {
  /** True when the manifest declares `inputs.quality`; false: the strict default (see createQuality). */
  declared: boolean;
  /** Names of the checked ("used") channels: the features, then regime channels that are not features. */
  names: readonly string[];
  /** Frame channel index of each used channel. */
  channel: Int32Array;
  /** Direct feature index of each used channel, -1 for a regime-only channel. */
  feature: Int32Array;
  /** Used-channel index of each direct feature. */
  usedOfFeature: Int32Array;
  /** Used-channel index of each regime channel (empty with a single regime: not used then). */
  usedOfRegime: Int32Array;
  min: Float64Array;
  max: Float64Array;
  /** Raw units per frame since the last good value; +Inf when not declared. */
  maxStep: Float64Array;
  /** Standard deviations (of the row's regime) from the last good normalised value; +Inf when not declared. */
  maxStepSd: Float64Array;
  /** Identical values in a row that make a channel stuck; 0 when not checked. */
  stuckFrames: Int32Array;
  /** Imputation policy per used channel. */
  policy: Uint8Array;
  /** `regress` policy: [feature][feature] weights (diagonal 0) and intercepts over the row's normalised features; empty when unused. */
  weights: Float64Array;
  intercept: Float64Array;
  maxImputeFrames: number;
  faultFrames: number;
  clearFrames: number;
  /** Window rules: largest fraction of imputed feature values in a window and in its newest row, lost features. */
  maxImputedFraction: number;
  maxImputedFractionRow: number;
  maxLostFeatures: number;
}

/** Defaults of the optional manifest fields (models/manifest.schema.json). */
export const QUALITY_DEFAULTS = { maxImputeFrames: 30, faultFrames: 3, clearFrames: 10 } as const;

/**
 * Compiles `inputs.quality` for a normaliser of the same manifest. Without the block the strict
 * default applies: a non-finite value in a used channel is flagged `missing` (imputed so the ring
 * stays finite) and any window holding one yields no prediction (`maxImputedFraction` 0); a
 * sensor fault is reported from its first flagged frame. Throws FeatureSpecError when a used channel has
 * no entry, or a rule is inconsistent.
 */
export function createQuality(manifest: ModelManifest, norm: Normalizer): QualitySpec {
  const { inputs } = manifest;
  const q = inputs.quality;
  const names: string[] = [...inputs.features];
  const channel: number[] = Array.from(norm.featureIndex);
  const feature: number[] = names.map((_, i) => i);
  const usedOfRegime: number[] = [];
  if (norm.regimes > 1) {
    manifest.normalization.regime.channels.forEach((name, j) => {
      let u = names.indexOf(name);
      if (u < 0) {
        u = names.length;
        names.push(name);
        channel.push(norm.regimeIndex[j]!);
        feature.push(-1);
      }
      usedOfRegime.push(u);
    });
  }
  const U = names.length;
  const spec: QualitySpec = {
    declared: q !== undefined,
    names,
    channel: Int32Array.from(channel),
    feature: Int32Array.from(feature),
    usedOfFeature: Int32Array.from({ length: norm.direct }, (_, f) => f),
    usedOfRegime: Int32Array.from(usedOfRegime),
    min: new Float64Array(U).fill(-Infinity),
    max: new Float64Array(U).fill(Infinity),
    maxStep: new Float64Array(U).fill(Infinity),
    maxStepSd: new Float64Array(U).fill(Infinity),
    stuckFrames: new Int32Array(U),
    policy: new Uint8Array(U),
    weights: new Float64Array(0),
    intercept: new Float64Array(0),
    maxImputeFrames: q?.maxImputeFrames ?? QUALITY_DEFAULTS.maxImputeFrames,
    faultFrames: q ? (q.faultFrames ?? QUALITY_DEFAULTS.faultFrames) : 1,
    clearFrames: q ? (q.clearFrames ?? QUALITY_DEFAULTS.clearFrames) : 1,
    maxImputedFraction: q?.window.maxImputedFraction ?? 0,
    maxImputedFractionRow: q?.window.maxImputedFractionRow ?? 0,
    maxLostFeatures: q?.window.maxLostFeatures ?? 0,
  };
  const positiveInt = (v: number, what: string): void => {
    if (!(Number.isInteger(v) && v >= 1))
      throw new FeatureSpecError(`quality.${what} must be a positive integer, got ${v}`);
  };
  positiveInt(spec.maxImputeFrames, "maxImputeFrames");
  positiveInt(spec.faultFrames, "faultFrames");
  positiveInt(spec.clearFrames, "clearFrames");
  for (const [k, v] of [
    ["maxImputedFraction", spec.maxImputedFraction],
    ["maxImputedFractionRow", spec.maxImputedFractionRow],
  ] as const)
    if (!(v >= 0 && v <= 1)) throw new FeatureSpecError(`quality.window.${k} must lie in [0, 1], got ${v}`);
  if (!(Number.isInteger(spec.maxLostFeatures) && spec.maxLostFeatures >= 0))
    throw new FeatureSpecError(
      `quality.window.maxLostFeatures must be an integer ≥ 0, got ${spec.maxLostFeatures}`,
    );
  if (!q) return spec;
  for (const name of Object.keys(q.channels))
    if (!inputs.channels.includes(name))
      throw new FeatureSpecError(`quality channel "${name}" is not an input channel`);
  names.forEach((name, u) => {
    const c: QualityChannelSpec | undefined = q.channels[name];
    if (c === undefined)
      throw new FeatureSpecError(`quality.channels has no entry for used channel "${name}"`);
    if (c.min !== undefined) spec.min[u] = c.min;
    if (c.max !== undefined) spec.max[u] = c.max;
    if (!(spec.min[u]! <= spec.max[u]!)) throw new FeatureSpecError(`quality channel "${name}": min > max`);
    if (c.maxStep !== undefined) spec.maxStep[u] = c.maxStep;
    if (c.maxStepSd !== undefined) {
      if (spec.feature[u]! < 0)
        throw new FeatureSpecError(
          `quality channel "${name}": maxStepSd needs a feature (it is only a regime channel)`,
        );
      spec.maxStepSd[u] = c.maxStepSd;
    }
    if (!(spec.maxStep[u]! > 0 && spec.maxStepSd[u]! > 0))
      throw new FeatureSpecError(`quality channel "${name}": maxStep/maxStepSd must be > 0`);
    if (c.stuckFrames !== undefined) {
      if (!(Number.isInteger(c.stuckFrames) && c.stuckFrames >= 2))
        throw new FeatureSpecError(`quality channel "${name}": stuckFrames must be an integer ≥ 2`);
      spec.stuckFrames[u] = c.stuckFrames;
    }
    const policy = c.impute ?? "last-good";
    spec.policy[u] =
      policy === "counter" ? POLICY_COUNTER : policy === "regress" ? POLICY_REGRESS : POLICY_LAST_GOOD;
    if (policy === "regress" && spec.feature[u]! < 0)
      throw new FeatureSpecError(`quality channel "${name}": impute "regress" needs a feature`);
  });
  if (spec.policy.includes(POLICY_REGRESS)) {
    const reg = q.regression;
    const F = norm.direct;
    if (reg === undefined) throw new FeatureSpecError('quality: impute "regress" needs quality.regression');
    if (reg.features.length !== F || reg.features.some((f, i) => f !== inputs.features[i]))
      throw new FeatureSpecError("quality.regression.features must be inputs.features, in order");
    if (reg.intercept.length !== F || reg.weights.length !== F || reg.weights.some((r) => r.length !== F))
      throw new FeatureSpecError(`quality.regression needs ${F} intercepts and ${F} × ${F} weights`);
    spec.weights = Float64Array.from(reg.weights.flat());
    spec.intercept = Float64Array.from(reg.intercept);
    for (let f = 0; f < F; f++)
      if (spec.weights[f * F + f] !== 0)
        throw new FeatureSpecError("quality.regression.weights: a feature cannot predict itself");
  }
  return spec;
}

/** One device's data-quality state (typed arrays, one slot per used channel). */
export class QualityState {
  /** Last good raw value, and whether there is one. */
  readonly lastGood: Float64Array;
  readonly hasGood: Uint8Array;
  /** Last good normalised value of each direct feature (float32-rounded, as written into rows). */
  readonly lastGoodZ: Float64Array;
  /** Counter policy: the last good step per frame (default 1). */
  readonly step: Float64Array;
  /**
   * Frames since the last good value (0: this frame was good). The run counters are float64, exact
   * to 2^53: an Int32 wrapped after 2^31 frames (248 days at 100 Hz), un-flagging a stuck sensor.
   */
  readonly since: Float64Array;
  /** Previous finite raw value and how many times in a row it has been seen (stuck detection). */
  readonly prev: Float64Array;
  readonly run: Float64Array;
  /** Consecutive flagged / good frames. */
  readonly badRun: Float64Array;
  readonly goodRun: Float64Array;
  /** Sensor-fault state per used channel (1: faulted) and the verdict code that raised it. */
  readonly faulted: Uint8Array;
  readonly faultCode: Uint8Array;
  /**
   * Gateway arrival time (µs) of the frame that raised each channel's fault (set by the window,
   * which knows the frame). A warm-up replays the same frames, so after a restart a fault carried
   * over has the raise time it had before: its `cleared` matches the `raised` sent then.
   */
  readonly raisedRxUs: Float64Array;
  /**
   * Per direct feature, the run of values in a row beyond `maxStepSd` from the last good one that
   * each stay within `maxStepSd` of the one before (a new level), and the last of them.
   */
  readonly shiftRun: Float64Array;
  readonly shiftZ: Float64Array;
  /** Regime of the previous row (fallback when neither regime channels nor features are good). */
  lastRegime = 0;

  constructor(spec: QualitySpec) {
    const U = spec.channel.length;
    this.lastGood = new Float64Array(U);
    this.hasGood = new Uint8Array(U);
    this.lastGoodZ = new Float64Array(spec.usedOfFeature.length);
    this.shiftRun = new Float64Array(spec.usedOfFeature.length);
    this.shiftZ = new Float64Array(spec.usedOfFeature.length);
    this.step = new Float64Array(U).fill(1);
    this.since = new Float64Array(U);
    this.prev = new Float64Array(U).fill(NaN);
    this.run = new Float64Array(U);
    this.badRun = new Float64Array(U);
    this.goodRun = new Float64Array(U);
    this.faulted = new Uint8Array(U);
    this.faultCode = new Uint8Array(U);
    this.raisedRxUs = new Float64Array(U);
  }

  /** Number of used channels currently in sensor fault. */
  get faults(): number {
    let n = 0;
    for (let u = 0; u < this.faulted.length; u++) n += this.faulted[u]!;
    return n;
  }
}

/** The verdict on one frame (caller-owned, overwritten by every {@link checkRow}). */
export interface FrameQuality {
  /** Verdict code per used channel (Q_OK, Q_MISSING, …; names in QUALITY_REASONS). */
  codes: Uint8Array;
  /** Used channels flagged in this frame. */
  flagged: number;
  /** Direct features imputed in this row. */
  imputed: number;
  /** Features imputed for more than maxImputeFrames frames in a row. */
  lost: number;
  /**
   * Per direct feature, 1 when its value in this row is a stand-in written without any evidence:
   * imputed before the channel ever had a good value, by a policy other than `regress` (the
   * regime's mean, z = 0). The baseline leaves these out (normalize.ts applyBaseline).
   */
  guessed: Uint8Array;
  /** True when a flagged regime channel made the regime come from the features' plausibility. */
  regimeInferred: boolean;
  /** Used channels whose sensor-fault state changed in this frame (raised or cleared): the first `changedCount`. */
  changed: Int32Array;
  changedCount: number;
}

export function newFrameQuality(spec: QualitySpec): FrameQuality {
  const U = spec.channel.length;
  return {
    codes: new Uint8Array(U),
    flagged: 0,
    imputed: 0,
    lost: 0,
    guessed: new Uint8Array(spec.usedOfFeature.length),
    regimeInferred: false,
    changed: new Int32Array(U),
    changedCount: 0,
  };
}

/**
 * Checks one frame (`row[rowOffset ..]`, all frame channels, raw values including NaN/Inf),
 * updates the device's state, and writes the `norm.direct` normalised feature values at
 * `out[outOffset]` like normalizeRow, with flagged features imputed. Fills `res` and returns the
 * regime used. No allocation. A model with a baseline needs applyBaseline next, as usual.
 * `frames` (default 1): how many frames the device sent since the previous row checked, i.e. the
 * seq step; frames lost in between count in the rate-of-change check, the counter's step and the
 * imputation gap, as frames the device sent but the gateway never fed.
 */
export function checkRow(
  spec: QualitySpec,
  norm: Normalizer,
  state: QualityState,
  row: ArrayLike<number>,
  rowOffset: number,
  out: Float32Array,
  outOffset: number,
  res: FrameQuality,
  frames = 1,
): number {
  const U = spec.channel.length;
  const codes = res.codes;
  let flagged = 0;
  // 1. raw checks: missing, range, stuck, raw rate of change
  for (let u = 0; u < U; u++) {
    const x = row[rowOffset + spec.channel[u]!] as number;
    let code = Q_OK;
    if (x - x !== 0)
      code = Q_MISSING; // NaN or ±Inf
    else {
      if (x === state.prev[u]) state.run[u]!++;
      else {
        state.prev[u] = x;
        state.run[u] = 1;
      }
      const stuck = spec.stuckFrames[u]!;
      if (x < spec.min[u]! || x > spec.max[u]!) code = Q_OUT_OF_RANGE;
      else if (stuck > 0 && state.run[u]! >= stuck) code = Q_STUCK;
      else if (
        state.hasGood[u] === 1 &&
        Math.abs(x - state.lastGood[u]!) > spec.maxStep[u]! * (state.since[u]! + frames)
      )
        code = Q_SPIKE;
    }
    codes[u] = code;
  }
  // 2. regime: nearest centroid when every regime channel is good, else the most plausible
  const regime = rowRegime(spec, norm, state, row, rowOffset, codes, res);
  // 3. features: normalise good values (spike check in standard deviations), impute the rest
  const F = norm.direct;
  const base = regime * F;
  let imputed = 0;
  let lost = 0;
  for (let f = 0; f < F; f++) {
    const u = spec.usedOfFeature[f]!;
    const mean = norm.mean[base + f]!;
    const sd = norm.std[base + f]!;
    res.guessed[f] = 0;
    if (codes[u] === Q_OK) {
      const z = ((row[rowOffset + spec.channel[u]!] as number) - mean) / sd;
      const limit = spec.maxStepSd[u]!;
      if (state.hasGood[u] === 1 && Math.abs(z - state.lastGoodZ[f]!) > limit) {
        // A spike, unless it is a new level: `clearFrames` such values in a row, each within
        // maxStepSd of the one before (a replaced or recalibrated sensor), else a lasting shift
        // would be flagged for ever. Not an allowance growing with the frames since the last good
        // value, as for maxStep: that took a stuck value seen across regime changes for a level.
        const run =
          state.shiftRun[f]! > 0 && Math.abs(z - state.shiftZ[f]!) <= limit ? state.shiftRun[f]! + 1 : 1;
        state.shiftZ[f] = z;
        state.shiftRun[f] = run;
        if (run < spec.clearFrames) codes[u] = Q_SPIKE;
      }
      if (codes[u] === Q_OK) {
        state.shiftRun[f] = 0;
        out[outOffset + f] = z;
        state.lastGoodZ[f] = out[outOffset + f]!;
        continue;
      }
    }
    // flagged: impute (since counts this frame too)
    const gap = state.since[u]! + frames;
    if (spec.policy[u] === POLICY_COUNTER && state.hasGood[u] === 1)
      out[outOffset + f] = (state.lastGood[u]! + state.step[u]! * gap - mean) / sd;
    else out[outOffset + f] = state.hasGood[u] === 1 ? state.lastGoodZ[f]! : 0;
    if (state.hasGood[u] === 0 && spec.policy[u] !== POLICY_REGRESS) res.guessed[f] = 1;
    imputed++;
    if (gap > spec.maxImputeFrames) lost++;
  }
  // 3b. regression imputation from the row's other normalised features (good or imputed above)
  if (imputed > 0 && spec.intercept.length > 0)
    for (let f = 0; f < F; f++) {
      const u = spec.usedOfFeature[f]!;
      if (codes[u] === Q_OK || spec.policy[u] !== POLICY_REGRESS) continue;
      let v = spec.intercept[f]!;
      for (let k = 0; k < F; k++) v += spec.weights[f * F + k]! * out[outOffset + k]!;
      out[outOffset + f] = v;
    }
  // 4. per-channel bookkeeping: last good value, counter step, fault state
  let changed = 0;
  for (let u = 0; u < U; u++) {
    if (codes[u] === Q_OK) {
      const x = row[rowOffset + spec.channel[u]!] as number;
      if (spec.policy[u] === POLICY_COUNTER && state.hasGood[u] === 1 && x === state.lastGood[u]) {
        // A counter that repeats its value is not counting: the repeats before the stuck check
        // fires are not anchors, or the imputation would continue from them with a step of 0 (a
        // frozen age). It continues from the last value that moved, by the last step.
        state.since[u]! += frames;
      } else {
        const step = (x - state.lastGood[u]!) / (state.since[u]! + frames);
        // A decrease (a counter reset) is taken as the new value but not as a step.
        if (state.hasGood[u] === 1 && spec.policy[u] === POLICY_COUNTER && step > 0) state.step[u] = step;
        state.lastGood[u] = x;
        state.since[u] = 0;
      }
      state.hasGood[u] = 1;
      state.badRun[u] = 0;
      state.goodRun[u]!++;
      if (state.faulted[u] === 1 && state.goodRun[u]! >= spec.clearFrames) {
        state.faulted[u] = 0;
        res.changed[changed++] = u;
      }
    } else {
      flagged++;
      state.since[u]! += frames;
      state.goodRun[u] = 0;
      state.badRun[u]!++;
      if (state.faulted[u] === 0 && state.badRun[u]! >= spec.faultFrames) {
        state.faulted[u] = 1;
        state.faultCode[u] = codes[u]!;
        res.changed[changed++] = u;
      }
    }
  }
  res.flagged = flagged;
  // Without declared rules no stand-in is allowed, the regime's included: a regime the features
  // had to suggest counts as an imputed value, so the window rules (limits 0) withhold every
  // window holding this row, as for a missing feature.
  if (!spec.declared && res.regimeInferred) imputed++;
  res.imputed = imputed;
  res.lost = lost;
  res.changedCount = changed;
  state.lastRegime = regime;
  return regime;
}

function rowRegime(
  spec: QualitySpec,
  norm: Normalizer,
  state: QualityState,
  row: ArrayLike<number>,
  rowOffset: number,
  codes: Uint8Array,
  res: FrameQuality,
): number {
  res.regimeInferred = false;
  if (norm.regimes === 1) return 0;
  const R = spec.usedOfRegime.length;
  let good = true;
  for (let j = 0; j < R; j++) if (codes[spec.usedOfRegime[j]!] !== Q_OK) good = false;
  if (good) {
    // assignRegime, inlined: nearest centroid, first on ties
    let best = 0;
    let bestD = Infinity;
    for (let k = 0; k < norm.regimes; k++) {
      let d = 0;
      for (let j = 0; j < R; j++) {
        const diff = (row[rowOffset + norm.regimeIndex[j]!] as number) - norm.centroids[k * R + j]!;
        d += diff * diff;
      }
      if (d < bestD) {
        bestD = d;
        best = k;
      }
    }
    return best;
  }
  res.regimeInferred = true;
  // The regime under which the good features are most plausible: least sum of squared z-scores.
  const F = norm.direct;
  let best = state.lastRegime;
  let bestD = Infinity;
  for (let k = 0; k < norm.regimes; k++) {
    let d = 0;
    let n = 0;
    for (let f = 0; f < F; f++) {
      const u = spec.usedOfFeature[f]!;
      if (codes[u] !== Q_OK || spec.feature[u]! < 0) continue;
      const z =
        ((row[rowOffset + spec.channel[u]!] as number) - norm.mean[k * F + f]!) / norm.std[k * F + f]!;
      d += z * z;
      n++;
    }
    // ties (e.g. only regime-independent features are good) keep the previous row's regime
    if (n > 0 && (d < bestD || (d === bestD && k === state.lastRegime))) {
      bestD = d;
      best = k;
    }
  }
  return best;
}

/** Verdict of a window: run it, or withhold the prediction for data quality. */
export const W_OK = 0;
export const W_TOO_MUCH_IMPUTED = 1;
export const W_ROW_IMPUTED = 2;
export const W_LOST_FEATURES = 3;
/** Names of the window verdicts (status messages). */
export const WINDOW_VERDICTS = ["ok", "window-imputed", "row-imputed", "features-lost"] as const;

/**
 * The window rules: given the imputed feature values summed over the window's real rows
 * (`realRows` of them; padding rows are not counted) and the newest row's imputed and lost
 * counts, returns W_OK or the reason the window must not be run.
 */
export function windowQuality(
  spec: QualitySpec,
  features: number,
  imputedInWindow: number,
  realRows: number,
  newestImputed: number,
  newestLost: number,
): number {
  if (newestLost > spec.maxLostFeatures) return W_LOST_FEATURES;
  if (newestImputed > spec.maxImputedFractionRow * features) return W_ROW_IMPUTED;
  if (imputedInWindow > spec.maxImputedFraction * features * realRows) return W_TOO_MUCH_IMPUTED;
  return W_OK;
}

const compiled = new WeakMap<Normalizer, QualitySpec>();

/**
 * createQuality, memoised per normaliser: what DeviceWindow falls back to for a model that did not
 * come from the registry (which compiles the spec at load time: `LoadedModel.quality`).
 */
export function qualityFor(manifest: ModelManifest, norm: Normalizer): QualitySpec {
  let spec = compiled.get(norm);
  if (spec === undefined) {
    spec = createQuality(manifest, norm);
    compiled.set(norm, spec);
  }
  return spec;
}
