// C-MAPSS evaluation for `npm run models:eval` and test/models: onnxruntime sessions, batched runs,
// RMSE and the PHM08 score, and a whole-manifest evaluation. The feature pipeline (manifest types,
// normalisation, baseline, windows, the C-MAPSS parser) lives in the gateway, gateway/src/infer/features/,
// so the gateway, the simulator and this evaluation compute exactly the same inputs.
import { createHash } from "node:crypto";
import { dirname, join, resolve } from "node:path";
import * as ort from "../../gateway/src/infer/ort.ts";
import { loadCmapss, loadRul } from "../../gateway/src/infer/features/cmapss.ts";
import {
  loadManifest,
  modelPath,
  tensorWidth,
  type ModelManifest,
} from "../../gateway/src/infer/features/manifest.ts";
import { createNormalizer } from "../../gateway/src/infer/features/normalize.ts";
import { lastWindows } from "../../gateway/src/infer/features/windows.ts";

/** Repository root (this file lives in models/eval). */
export const REPO_ROOT = resolve(dirname(new URL(import.meta.url).pathname), "..", "..");

export function sha256Hex(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
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
  /** min(truth, outputs[0].max) */
  cappedTruth: Float64Array;
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
    cappedTruth: capped,
  };
}
