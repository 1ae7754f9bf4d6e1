/**
 * The model manifest (models/manifest.schema.json): what a model expects as input (channels,
 * features, window, normalisation, optional baseline), what it outputs and which alert rules
 * apply. One home for the types, used by the gateway's registry and loop, the simulator and
 * models/eval.
 */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";

export interface ManifestAlert {
  id: string;
  output: string;
  severity: "info" | "warning" | "critical";
  op: "<=" | ">=";
  threshold: number;
  clear: number;
  description?: string;
}

export type ModelPrecision = "float32" | "int8";

/** Another ONNX file of the same model at another precision (manifest `model.variants[]`). */
export interface ModelVariant {
  precision: ModelPrecision;
  /** relative to the manifest */
  file: string;
  sha256: string;
  bytes: number;
  /** how it was made (e.g. the quantization tool and calibration) */
  quantization?: string;
}

/** Data-quality rules of one channel (manifest `inputs.quality.channels[name]`; see quality.ts). */
export interface QualityChannelSpec {
  /** Valid range, raw units (inclusive). */
  min?: number;
  max?: number;
  /** Largest change from the last good value, raw units per frame since it. */
  maxStep?: number;
  /** Largest change from the last good normalised value, in standard deviations (features only). */
  maxStepSd?: number;
  /** This many identical values in a row mean the sensor is stuck (≥ 2). */
  stuckFrames?: number;
  /**
   * How a flagged value is replaced: hold the last good normalised value, continue a counter, or
   * estimate it from the row's other features (`regression`). Default last-good.
   */
  impute?: "last-good" | "counter" | "regress";
  description?: string;
}

/** Manifest `inputs.quality`: per-channel checks, imputation limits, fault reporting and window rules. */
export interface QualitySpecJson {
  description?: string;
  /** One entry per used channel (every feature, and every regime channel of a multi-regime model). */
  channels: Record<string, QualityChannelSpec>;
  /** A feature imputed for more frames in a row than this is "lost" (default 30). */
  maxImputeFrames?: number;
  /** Flagged frames in a row that raise a sensor fault (default 3). */
  faultFrames?: number;
  /** Good frames in a row that clear it (default 10). */
  clearFrames?: number;
  /**
   * Linear regression for `impute: "regress"`: a flagged feature f becomes
   * intercept[f] + Σ_k weights[f][k] · z_k over the row's normalised features (imputed ones as
   * imputed by last-good/counter first); `features` repeats inputs.features.
   */
  regression?: { features: string[]; weights: number[][]; intercept: number[]; description?: string };
  window: {
    /** Largest fraction of imputed feature values over the window's real rows. */
    maxImputedFraction: number;
    /** Largest fraction of imputed feature values in the window's newest row. */
    maxImputedFractionRow: number;
    /** Most lost features allowed in the newest row. */
    maxLostFeatures: number;
  };
}

export interface ModelManifest {
  $schema?: string;
  schemaVersion: 1;
  name: string;
  version: string;
  task: "rul" | "anomaly" | "failure-horizon" | "fault-diagnosis";
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
    /** Precision of `file` (default float32). */
    precision?: ModelPrecision;
    /** Other files computing the same function at another precision (e.g. int8-quantized), same input and outputs. */
    variants?: ModelVariant[];
    /**
     * Which precision to run per CPU architecture (Node's `process.arch`: x64, arm64, …), from
     * measurements recorded in the manifest; `default` for any other. Missing: the main file.
     */
    prefer?: Record<string, ModelPrecision>;
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
    baseline?: {
      rows: number;
      features: string[];
      /**
       * The baseline's origin: feature (the machine's age, e.g. its cycle counter) whose normalised
       * value in the device's first row ends every row, so a baseline taken in mid-life is told
       * from one taken new. A device whose first row has `feature ≤ firstCycleMax` (raw) was
       * commissioned at its first cycle; otherwise in mid-life (see commissioningOf).
       */
      origin?: { feature: string; firstCycleMax: number; description?: string };
      description?: string;
    };
    /** Optional data-quality rules (quality.ts); without them a non-finite used value withholds the window. */
    quality?: QualitySpecJson;
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

/** Reads a manifest (JSON) without validating it (the registry validates against the schema). */
export function loadManifest(path: string): ModelManifest {
  return JSON.parse(readFileSync(path, "utf8")) as ModelManifest;
}

/** Absolute path of the manifest's ONNX file (model.file is relative to the manifest). */
export function modelPath(manifestPath: string, manifest: ModelManifest): string {
  return join(dirname(manifestPath), manifest.model.file);
}

/** The file to run: `file`, `sha256`, `bytes` and precision of the main model or of one variant. */
export interface ModelFileChoice {
  precision: ModelPrecision;
  file: string;
  sha256: string;
  bytes: number;
}

/**
 * Picks the model file for a CPU architecture: the precision `override` (one the operator asked
 * for) if given, else `model.prefer[arch]`, else `model.prefer.default`; the main file when the
 * manifest does not provide that precision (never the next choice).
 */
export function selectModelFile(
  manifest: ModelManifest,
  arch: string,
  override?: ModelPrecision,
): ModelFileChoice {
  const m = manifest.model;
  const main: ModelFileChoice = {
    precision: m.precision ?? "float32",
    file: m.file,
    sha256: m.sha256,
    bytes: m.bytes,
  };
  const want = override ?? m.prefer?.[arch] ?? m.prefer?.["default"] ?? main.precision;
  if (want === main.precision) return main;
  const v = m.variants?.find((x) => x.precision === want);
  return v ? { precision: v.precision, file: v.file, sha256: v.sha256, bytes: v.bytes } : main;
}

/** Values per window row in the input tensor: the features, the baseline deviations, the baseline's origin. */
export function tensorWidth(manifest: ModelManifest): number {
  const bl = manifest.inputs.baseline;
  return manifest.inputs.features.length + (bl?.features.length ?? 0) + (bl?.origin ? 1 : 0);
}
