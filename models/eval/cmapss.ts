// C-MAPSS evaluation helpers shared by `npm run models:eval`, test/models and (for the normalisation and
// windowing) the gateway's inference loop. Everything here is a pure function over typed arrays; the
// per-row functions write into caller-provided buffers and do not allocate.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { gunzipSync } from "node:zlib";
import * as ort from "onnxruntime-node";

// ------------------------------------------------------------------------------------------ manifest

export interface ManifestAlert {
  id: string;
  output: string;
  severity: "info" | "warning" | "critical";
  op: "<=" | ">=";
  threshold: number;
  clear: number;
  description?: string;
}

export interface ModelManifest {
  $schema?: string;
  schemaVersion: 1;
  name: string;
  version: string;
  task: "rul" | "anomaly" | "failure-horizon";
  description?: string;
  devices: { profiles: string[] };
  model: {
    file: string;
    sha256: string;
    bytes: number;
    format: "onnx";
    opset?: number;
    params: number;
    macsPerWindow: number;
    architecture?: string;
  };
  inputs: {
    tensor: string;
    dtype: "float32";
    shape: ["batch", number, number];
    channels: string[];
    features: string[];
    window: number;
    stride: number;
    padding: { policy: "repeat-first" | "none"; description?: string };
    /** Optional per-device baseline deviations appended after the features (see applyBaseline). */
    baseline?: { rows: number; features: string[]; description?: string };
  };
  normalization: {
    method: "regime-zscore";
    description?: string;
    regime: { channels: string[]; centroids: number[][] };
    mean: number[][];
    std: number[][];
  };
  outputs: {
    name: string;
    shape: (string | number)[];
    unit: string;
    meaning: string;
    min?: number;
    max?: number;
  }[];
  alerts: ManifestAlert[];
  training: {
    command: string;
    seed: number;
    data: { file: string; sha256: string; hashOf?: string }[];
    [key: string]: unknown;
  };
  metrics: {
    testFile: string;
    rulFile?: string;
    units: number;
    rmse: number;
    score: number;
    /** the same predictions against min(truth, cap) */
    cappedTruth?: { rmse: number; score: number; description?: string };
    [key: string]: unknown;
  };
  references?: Record<string, string>;
}

/** Repository root (this file lives in models/eval). */
export const REPO_ROOT = resolve(dirname(new URL(import.meta.url).pathname), "..", "..");

export function loadManifest(path: string): ModelManifest {
  return JSON.parse(readFileSync(path, "utf8")) as ModelManifest;
}

/** Absolute path of the manifest's ONNX file (model.file is relative to the manifest). */
export function modelPath(manifestPath: string, manifest: ModelManifest): string {
  return join(dirname(manifestPath), manifest.model.file);
}

export function sha256Hex(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

// ------------------------------------------------------------------------------------------ data files

/** Reads a file, gunzipping it when it starts with the gzip magic bytes. */
export function readMaybeGzip(path: string): Buffer {
  const raw = readFileSync(path);
  return raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b ? gunzipSync(raw) : raw;
}

/**
 * The channels of a C-MAPSS device frame (manifest `inputs.channels`, profile `cmapss-v2`): the 3
 * operational settings and 21 sensors in file order, then the engine's own cycle counter (the
 * file's second column: cycles since the engine entered service, 1, 2, 3, …).
 */
export const CMAPSS_CHANNELS: readonly string[] = [
  "setting1",
  "setting2",
  "setting3",
  ...Array.from({ length: 21 }, (_, i) => `s${i + 1}`),
  "cycle",
];
/** Channels per row: 25. */
export const CMAPSS_WIDTH = CMAPSS_CHANNELS.length;

/** One engine trajectory: `cycles` rows of the 25 channels (CMAPSS_CHANNELS), row-major. */
export interface CmapssUnit {
  unit: number;
  cycles: number;
  /** length cycles * CMAPSS_WIDTH, row r channel c at r * CMAPSS_WIDTH + c */
  data: Float64Array;
}

/**
 * Parses a C-MAPSS train/test text (26 whitespace-separated fields per row: unit, cycle, 3 settings,
 * 21 sensors) into rows of CMAPSS_CHANNELS (the cycle moves to the end). Rows must be grouped by
 * unit with cycles 1, 2, 3, ...; returns units in file order.
 */
const FIELDS = 26;

export function parseCmapss(text: string): CmapssUnit[] {
  const width = CMAPSS_CHANNELS.length;
  const units: CmapssUnit[] = [];
  let cur: { unit: number; rows: number[] } | undefined;
  const flush = (): void => {
    if (cur)
      units.push({ unit: cur.unit, cycles: cur.rows.length / width, data: Float64Array.from(cur.rows) });
  };
  let lineNo = 0;
  for (const line of text.split("\n")) {
    lineNo++;
    const t = line.trim();
    if (t === "") continue;
    const f = t.split(/\s+/);
    if (f.length !== FIELDS) throw new Error(`line ${lineNo}: expected ${FIELDS} fields, got ${f.length}`);
    const unit = Number(f[0]);
    const cycle = Number(f[1]);
    if (!cur || cur.unit !== unit) {
      flush();
      if (units.some((u) => u.unit === unit))
        throw new Error(`line ${lineNo}: unit ${unit} is not contiguous`);
      cur = { unit, rows: [] };
    }
    if (cycle !== cur.rows.length / width + 1)
      throw new Error(`line ${lineNo}: unit ${unit} cycle ${cycle} out of order`);
    for (let c = 2; c < f.length; c++) {
      const v = Number(f[c]);
      if (!Number.isFinite(v)) throw new Error(`line ${lineNo}: field ${c + 1} is not a number`);
      cur.rows.push(v);
    }
    cur.rows.push(cycle);
  }
  flush();
  return units;
}

export function loadCmapss(path: string): CmapssUnit[] {
  return parseCmapss(readMaybeGzip(path).toString("ascii"));
}

/** RUL_FD00x.txt: one true RUL per test unit, in unit order. */
export function loadRul(path: string): Float64Array {
  const vals = readMaybeGzip(path)
    .toString("ascii")
    .split(/\s+/)
    .filter((s) => s !== "")
    .map(Number);
  if (vals.some((v) => !Number.isFinite(v))) throw new Error(`${path}: not a list of numbers`);
  return Float64Array.from(vals);
}

// ------------------------------------------------------------------------------------------ normalisation

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

function indexOfAll(names: readonly string[], channels: readonly string[], what: string): Int32Array {
  return Int32Array.from(
    names.map((n) => {
      const i = channels.indexOf(n);
      if (i < 0) throw new Error(`${what} "${n}" is not one of the input channels`);
      return i;
    }),
  );
}

/** Values per window row in the input tensor: the features, then the baseline deviations if any. */
export function tensorWidth(manifest: ModelManifest): number {
  return manifest.inputs.features.length + (manifest.inputs.baseline?.features.length ?? 0);
}

export function createNormalizer(manifest: ModelManifest): Normalizer {
  const { inputs, normalization: n } = manifest;
  if (n.method !== "regime-zscore") throw new Error(`unsupported normalisation ${String(n.method)}`);
  const featureIndex = indexOfAll(inputs.features, inputs.channels, "feature");
  const regimeIndex = indexOfAll(n.regime.channels, inputs.channels, "regime channel");
  const regimes = n.regime.centroids.length;
  const F = featureIndex.length;
  const R = regimeIndex.length;
  if (n.mean.length !== regimes || n.std.length !== regimes)
    throw new Error("mean/std must have one row per regime");
  const flat = (rows: number[][], width: number, what: string): Float64Array => {
    const out = new Float64Array(rows.length * width);
    rows.forEach((row, r) => {
      if (row.length !== width) throw new Error(`${what}[${r}] has ${row.length} values, expected ${width}`);
      out.set(row, r * width);
    });
    return out;
  };
  const std = flat(n.std, F, "std");
  if (std.some((s) => !(s > 0))) throw new Error("std values must be > 0");
  const bl = inputs.baseline;
  if (bl && !(Number.isInteger(bl.rows) && bl.rows >= 1))
    throw new Error(`baseline.rows must be a positive integer, got ${bl.rows}`);
  const baselineIndex = bl ? indexOfAll(bl.features, inputs.features, "baseline feature") : new Int32Array(0);
  return {
    channels: inputs.channels.length,
    features: F + baselineIndex.length,
    direct: F,
    baselineRows: bl?.rows ?? 0,
    baselineIndex,
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

/** A device's (unit's) baseline so far: the sum of its first rows' baseline features. */
export interface BaselineState {
  /** rows summed so far (at most `norm.baselineRows`) */
  rows: number;
  /** float64 sums, one per baseline feature */
  sum: Float64Array;
}

export function newBaseline(norm: Normalizer): BaselineState {
  return { rows: 0, sum: new Float64Array(norm.baselineIndex.length) };
}

/**
 * Completes a row written by normalizeRow at `out[offset]`: while the device has had fewer than
 * `norm.baselineRows` rows, adds this row to its baseline; then writes, after the direct features,
 * each baseline feature minus the baseline mean (float64, stored as float32; models/cmapss/train.py
 * Norm.apply). The first row's deviations are 0. No allocation; a no-op without a baseline.
 */
export function applyBaseline(
  norm: Normalizer,
  state: BaselineState,
  out: Float32Array,
  offset: number,
): void {
  const B = norm.baselineIndex.length;
  if (B === 0) return;
  const add = state.rows < norm.baselineRows;
  if (add) state.rows++;
  for (let j = 0; j < B; j++) {
    const v = out[offset + norm.baselineIndex[j]!]!;
    if (add) state.sum[j]! += v;
    out[offset + norm.direct + j] = v - state.sum[j]! / state.rows;
  }
}

/** Normalises all rows of a unit (with its baseline): returns cycles * features float32 values. */
export function normalizeUnit(norm: Normalizer, unit: CmapssUnit): Float32Array {
  const out = new Float32Array(unit.cycles * norm.features);
  const base = newBaseline(norm);
  for (let r = 0; r < unit.cycles; r++) {
    normalizeRow(norm, unit.data, r * norm.channels, out, r * norm.features);
    applyBaseline(norm, base, out, r * norm.features);
  }
  return out;
}

/**
 * Copies the window of `window` normalised rows ending at row `end` (inclusive) of `rows`
 * (row-major, `features` per row) into `out[outOffset]`. Rows before the first are the first row
 * repeated (padding policy "repeat-first").
 */
export function fillWindow(
  rows: Float32Array,
  features: number,
  end: number,
  window: number,
  out: Float32Array,
  outOffset: number,
): void {
  const start = end - window + 1;
  for (let w = 0; w < window; w++) {
    const src = Math.max(start + w, 0) * features;
    out.set(rows.subarray(src, src + features), outOffset + w * features);
  }
}

/** One window per unit: its last `window` cycles (the standard C-MAPSS test protocol). */
export function lastWindows(norm: Normalizer, units: readonly CmapssUnit[], window: number): Float32Array {
  const F = norm.features;
  const out = new Float32Array(units.length * window * F);
  units.forEach((u, i) => {
    if (u.cycles < 1) throw new Error(`unit ${u.unit} is empty`);
    fillWindow(normalizeUnit(norm, u), F, u.cycles - 1, window, out, i * window * F);
  });
  return out;
}

// ------------------------------------------------------------------------------------------ inference

export async function createSession(path: string, threads = 1): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(path, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: "sequential",
    graphOptimizationLevel: "all",
  });
}

/** Runs `count` windows ([count, window, features] float32) through the session in batches. */
export async function runBatched(
  session: ort.InferenceSession,
  manifest: ModelManifest,
  windows: Float32Array,
  count: number,
  batchSize = 512,
): Promise<Float32Array> {
  const { window, tensor } = manifest.inputs;
  const width = tensorWidth(manifest);
  const per = window * width;
  if (windows.length !== count * per)
    throw new Error(`expected ${count * per} values, got ${windows.length}`);
  const outName = manifest.outputs[0]?.name;
  if (outName === undefined) throw new Error("manifest has no outputs");
  const result = new Float32Array(count);
  for (let i = 0; i < count; i += batchSize) {
    const n = Math.min(batchSize, count - i);
    const input = new ort.Tensor("float32", windows.subarray(i * per, (i + n) * per), [n, window, width]);
    const out = await session.run({ [tensor]: input });
    const t = out[outName];
    if (!t || t.data.length !== n) throw new Error(`output ${outName} missing or wrong size`);
    result.set(t.data as Float32Array, i);
  }
  return result;
}

// ------------------------------------------------------------------------------------------ metrics

export function rmse(pred: ArrayLike<number>, truth: ArrayLike<number>): number {
  if (pred.length !== truth.length || pred.length === 0) throw new Error("rmse: length mismatch or empty");
  let s = 0;
  for (let i = 0; i < pred.length; i++) {
    const d = (pred[i] as number) - (truth[i] as number);
    s += d * d;
  }
  return Math.sqrt(s / pred.length);
}

/** PHM08 score: sum over units of exp(-d/13)-1 (early, d<0) or exp(d/10)-1 (late), d = pred - truth. */
export function phm08Score(pred: ArrayLike<number>, truth: ArrayLike<number>): number {
  if (pred.length !== truth.length) throw new Error("score: length mismatch");
  let s = 0;
  for (let i = 0; i < pred.length; i++) {
    const d = (pred[i] as number) - (truth[i] as number);
    s += d < 0 ? Math.exp(-d / 13) - 1 : Math.exp(d / 10) - 1;
  }
  return s;
}

// ------------------------------------------------------------------------------------------ whole-model evaluation

export interface CmapssEvaluation {
  name: string;
  units: number;
  rmse: number;
  score: number;
  /** RMSE / score against min(truth, outputs[0].max): the literature's usual convention for FD002/FD004 */
  rmseCappedTruth: number;
  scoreCappedTruth: number;
  predictions: Float32Array;
  truth: Float64Array;
}

/** Recomputes a manifest's test metrics: last window per test unit vs the RUL file. */
export async function evaluateManifest(
  manifestPath: string,
  manifest: ModelManifest = loadManifest(manifestPath),
  session?: ort.InferenceSession,
): Promise<CmapssEvaluation> {
  const { testFile, rulFile } = manifest.metrics;
  if (rulFile === undefined) throw new Error(`${manifest.name}: metrics.rulFile missing`);
  const units = loadCmapss(join(REPO_ROOT, testFile));
  const truth = loadRul(join(REPO_ROOT, rulFile));
  if (truth.length !== units.length)
    throw new Error(`${rulFile}: ${truth.length} values for ${units.length} units`);
  const norm = createNormalizer(manifest);
  const windows = lastWindows(norm, units, manifest.inputs.window);
  const s = session ?? (await createSession(modelPath(manifestPath, manifest)));
  const predictions = await runBatched(s, manifest, windows, units.length);
  const cap = manifest.outputs[0]?.max ?? Infinity;
  const capped = truth.map((t) => Math.min(t, cap));
  return {
    name: manifest.name,
    units: units.length,
    rmse: rmse(predictions, truth),
    score: phm08Score(predictions, truth),
    rmseCappedTruth: rmse(predictions, capped),
    scoreCappedTruth: phm08Score(predictions, capped),
    predictions,
    truth,
  };
}
