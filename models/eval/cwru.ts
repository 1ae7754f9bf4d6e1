// Evaluation of the CWRU bearing-fault model (models/cwru): every class's held-out block streamed frame by
// frame through the gateway's own DeviceWindow (data-quality stage, normalisation, ring), windows run in
// batches with onnxruntime-node, scored as 10-class diagnosis and as fault detection (p_fault).
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import {
  CWRU_CHANNELS,
  CWRU_CLASSES,
  CWRU_SPLIT,
  cwruBlock,
  loadCwru,
  type CwruRecording,
} from "../../gateway/src/infer/features/cwru.ts";
import { tensorWidth, type ModelManifest } from "../../gateway/src/infer/features/manifest.ts";
import { createNormalizer } from "../../gateway/src/infer/features/normalize.ts";
import type { LoadedModel } from "../../gateway/src/infer/registry.ts";
import { DeviceWindow, emptyMeta } from "../../gateway/src/infer/window.ts";
import { Rng } from "../../device-sim/src/rng.ts";
import { REPO_ROOT } from "./cmapss.ts";
import { METRIC_TOLERANCE } from "./conditions.ts";

/** The committed CWRU manifest (evaluate-cwru.ts, test/models/cwru.test.ts). */
export const CWRU_MANIFEST = join(REPO_ROOT, "models", "cwru", "cwru-bearing-v1.manifest.json");

export interface CwruScores {
  windows: number;
  accuracy: number;
  macroF1: number;
  perClassRecall: Record<string, number>;
  /** fault detection at p_fault ≥ 0.5 */
  detection: { precision: number; recall: number; falseAlarmRate: number; auroc: number };
  /** root Brier score of p_fault vs "any fault", and mean 10-class log loss (both lower is better) */
  rootBrier: number;
  logLoss: number;
  /** windows withheld by the data-quality stage */
  withheld: number;
  confusion: number[][];
}

/** Streams blocks through DeviceWindows (one device per block) and returns every runnable window. */
export function streamBlocks(
  manifest: ModelManifest,
  blocks: readonly CwruRecording[],
): { windows: Float32Array; labels: Int32Array; withheld: number } {
  const norm = createNormalizer(manifest);
  const per = manifest.inputs.window * norm.features;
  const C = CWRU_CHANNELS.length;
  const out: Float32Array[] = [];
  const labels: number[] = [];
  let withheld = 0;
  const model = { manifest, normalizer: norm } as unknown as LoadedModel;
  blocks.forEach((b, i) => {
    const w = new DeviceWindow(i + 1, model, manifest.devices.profiles[0]!);
    for (let r = 0; r < b.rows; r++) {
      if (w.push(b.data.subarray(r * C, (r + 1) * C), r, r, r)) {
        const buf = new Float32Array(per);
        w.take(buf, 0, emptyMeta());
        out.push(buf);
        labels.push(b.classIndex);
      }
    }
    withheld += w.withheld;
  });
  const windows = new Float32Array(out.length * per);
  out.forEach((b, i) => windows.set(b, i * per));
  return { windows, labels: Int32Array.from(labels), withheld };
}

/** The held-out blocks: rows [testFrom, 230) of each class. */
export function cwruTestBlocks(recordings: readonly CwruRecording[] = loadCwru()): CwruRecording[] {
  return recordings.map((r) => cwruBlock(r, CWRU_SPLIT.testFrom, r.rows));
}

/** The test blocks with 5 % of values NaN and one statistic stuck from the block's middle (seeded). */
export function faultyBlocks(blocks: readonly CwruRecording[], seed = 14004): CwruRecording[] {
  const rng = new Rng(seed);
  const C = CWRU_CHANNELS.length;
  return blocks.map((b) => {
    const r = rng.fork(b.label);
    const data = Float64Array.from(b.data);
    const stuck = r.int(0, C - 1);
    const from = Math.floor(b.rows / 2);
    for (let i = from; i < b.rows; i++) data[i * C + stuck] = data[from * C + stuck]!;
    for (let i = 0; i < data.length; i++) if (r.chance(0.05)) data[i] = NaN;
    return { ...b, data };
  });
}

export async function runCwru(
  session: ort.InferenceSession,
  manifest: ModelManifest,
  windows: Float32Array,
  count: number,
): Promise<{ pFault: Float32Array; probs: Float32Array }> {
  const { window, tensor } = manifest.inputs;
  const width = tensorWidth(manifest);
  const res = await session.run({ [tensor]: new ort.Tensor("float32", windows, [count, window, width]) });
  return { pFault: res["p_fault"]!.data as Float32Array, probs: res["class_probs"]!.data as Float32Array };
}

/** Area under the ROC curve (probability that a random positive scores above a random negative; ties ½). */
export function auroc(scores: ArrayLike<number>, positive: ArrayLike<boolean>): number {
  const pos: number[] = [];
  const neg: number[] = [];
  for (let i = 0; i < scores.length; i++) (positive[i] ? pos : neg).push(scores[i] as number);
  if (pos.length === 0 || neg.length === 0) return NaN;
  let s = 0;
  for (const p of pos) for (const n of neg) s += p > n ? 1 : p === n ? 0.5 : 0;
  return s / (pos.length * neg.length);
}

export async function scoreCwru(
  session: ort.InferenceSession,
  manifest: ModelManifest,
  blocks: readonly CwruRecording[],
): Promise<CwruScores> {
  const { windows, labels, withheld } = streamBlocks(manifest, blocks);
  const n = labels.length;
  const { pFault, probs } = await runCwru(session, manifest, windows, n);
  const K = 10;
  const confusion = Array.from({ length: K }, () => new Array<number>(K).fill(0));
  let correct = 0;
  let brier = 0;
  let logLoss = 0;
  let tp = 0;
  let fp = 0;
  let fn = 0;
  let normals = 0;
  const isFault: boolean[] = [];
  for (let i = 0; i < n; i++) {
    const row = probs.subarray(i * K, (i + 1) * K);
    let arg = 0;
    for (let k = 1; k < K; k++) if (row[k]! > row[arg]!) arg = k;
    const y = labels[i]!;
    confusion[y]![arg]!++;
    if (arg === y) correct++;
    logLoss -= Math.log(Math.max(row[y]!, 1e-12));
    const fault = y !== 0;
    isFault.push(fault);
    brier += (pFault[i]! - (fault ? 1 : 0)) ** 2;
    const alarm = pFault[i]! >= 0.5;
    if (alarm && fault) tp++;
    if (alarm && !fault) fp++;
    if (!alarm && fault) fn++;
    if (!fault) normals++;
  }
  const recall: Record<string, number> = {};
  let f1 = 0;
  for (let k = 0; k < K; k++) {
    const row = confusion[k]!.reduce((a, b) => a + b, 0);
    const col = confusion.reduce((a, r) => a + r[k]!, 0);
    const tpk = confusion[k]![k]!;
    const rec = row ? tpk / row : 0;
    const prec = col ? tpk / col : 0;
    recall[CWRU_CLASSES[k]!] = Number(rec.toFixed(4));
    f1 += prec + rec > 0 ? (2 * prec * rec) / (prec + rec) : 0;
  }
  return {
    windows: n,
    accuracy: correct / n,
    macroF1: f1 / K,
    perClassRecall: recall,
    detection: {
      precision: tp / Math.max(1, tp + fp),
      recall: tp / Math.max(1, tp + fn),
      falseAlarmRate: fp / Math.max(1, normals),
      auroc: auroc(pFault, isFault),
    },
    rootBrier: Math.sqrt(brier / n),
    logLoss: logLoss / n,
    withheld,
    confusion,
  };
}

/** Claimed figures that the recomputed ones are worse than (higher-is-better and lower-is-better alike). */
export function worseThanClaimed(got: CwruScores, claimed: Record<string, unknown> | undefined): string[] {
  if (!claimed) return [];
  const c = claimed as {
    accuracy?: number;
    macroF1?: number;
    rootBrier?: number;
    logLoss?: number;
    detection?: { recall?: number; auroc?: number; falseAlarmRate?: number };
  };
  const worse: string[] = [];
  const low = (g: number, v: number | undefined, k: string): void => {
    if (v !== undefined && g > v * (1 + METRIC_TOLERANCE) + 1e-9) worse.push(k);
  };
  const high = (g: number, v: number | undefined, k: string): void => {
    if (v !== undefined && g < v * (1 - METRIC_TOLERANCE) - 1e-9) worse.push(k);
  };
  high(got.accuracy, c.accuracy, "accuracy");
  high(got.macroF1, c.macroF1, "macroF1");
  high(got.detection.recall, c.detection?.recall, "detection.recall");
  high(got.detection.auroc, c.detection?.auroc, "detection.auroc");
  low(got.detection.falseAlarmRate, c.detection?.falseAlarmRate, "detection.falseAlarmRate");
  low(got.rootBrier, c.rootBrier, "rootBrier");
  low(got.logLoss, c.logLoss, "logLoss");
  return worse;
}
