/**
 * Sections of `npm run bench -- infer` for issue 14 (imported by bench/infer.ts; not a benchmark of
 * its own):
 * - data quality: the per-frame cost of the data-quality stage (features/quality.ts `checkRow`:
 *   checks, regime, normalisation, imputation) per used channel, on clean frames and on frames
 *   with 5 % missing values and a stuck sensor, against `normalizeRow` (what a row cost before)
 *   measured in the same run; goal ≤ 1 µs per channel;
 * - int8: each C-MAPSS model's int8 variant (manifest model.variants) against its float32 file,
 *   onnxruntime per-window cost at batch 1 and 256, interleaved in the same run, as a ratio.
 */
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import * as ort from "onnxruntime-node";
import { CMAPSS_WIDTH, loadCmapss } from "../../gateway/src/infer/features/cmapss.ts";
import {
  loadManifest,
  modelPath,
  tensorWidth,
  type ModelManifest,
} from "../../gateway/src/infer/features/manifest.ts";
import { createNormalizer, normalizeRow } from "../../gateway/src/infer/features/normalize.ts";
import {
  checkRow,
  createQuality,
  newFrameQuality,
  QualityState,
} from "../../gateway/src/infer/features/quality.ts";
import { Rng } from "../../device-sim/src/rng.ts";

const r3 = (x: number): number => Math.round(x * 1000) / 1000;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

export const QUALITY_GOAL_US_PER_CHANNEL = 1;

/**
 * ns per frame of `fn` over `frames` frames, median of `reps` passes after a warm-up pass;
 * `reset` runs before each pass, untimed (fresh device states: replaying a device's frames through
 * its old state would flag the jump back to its first frame).
 */
function timeFrames(
  frames: number,
  reps: number,
  fn: (i: number) => void,
  reset = (): void => undefined,
): number {
  reset();
  for (let i = 0; i < frames; i++) fn(i);
  const times: number[] = [];
  for (let k = 0; k < reps; k++) {
    reset();
    const t0 = performance.now();
    for (let i = 0; i < frames; i++) fn(i);
    times.push(((performance.now() - t0) * 1e6) / frames);
  }
  return median(times);
}

export interface QualityBench {
  model: string;
  usedChannels: number;
  frames: number;
  normalizeNsPerFrame: number;
  cleanNsPerFrame: number;
  faultyNsPerFrame: number;
  /** data-quality stage per used channel (clean / faulty frames), µs */
  cleanUsPerChannel: number;
  faultyUsPerChannel: number;
  /** checkRow (checks + normalisation) / normalizeRow alone */
  cleanVsNormalize: number;
  pass: boolean;
}

/** The data-quality stage on one C-MAPSS model's test frames (all of them, every device its own state). */
export function benchQuality(manifestPath: string, dataDir: string): QualityBench {
  const m = loadManifest(manifestPath);
  const norm = createNormalizer(m);
  const spec = createQuality(m, norm);
  const units = loadCmapss(join(dataDir, m.metrics.testFile.split("/").pop()!));
  const rows = units.reduce((s, u) => s + u.cycles, 0);
  const clean = new Float32Array(rows * CMAPSS_WIDTH);
  let at = 0;
  for (const u of units) {
    clean.set(u.data, at);
    at += u.data.length;
  }
  const faulty = Float32Array.from(clean);
  const rng = new Rng(14003);
  for (let r = 0; r < rows; r++)
    for (const c of spec.channel) if (rng.chance(0.05)) faulty[r * CMAPSS_WIDTH + c] = NaN;
  const stuck = spec.channel[0]!;
  for (let r = Math.floor(rows / 2); r < rows; r++)
    faulty[r * CMAPSS_WIDTH + stuck] = faulty[(rows >> 1) * CMAPSS_WIDTH + stuck]!;
  const out = new Float32Array(norm.features);
  const res = newFrameQuality(spec);
  // one state per unit, as per device in the gateway
  let states: QualityState[] = [];
  const reset = (): void => {
    states = units.map(() => new QualityState(spec));
  };
  const unitOf = new Int32Array(rows);
  at = 0;
  units.forEach((u, i) => unitOf.fill(i, at, (at += u.cycles)));
  const reps = 9;
  const normalizeNs = timeFrames(rows, reps, (i) => normalizeRow(norm, clean, i * CMAPSS_WIDTH, out, 0));
  let flagged = 0;
  const cleanNs = timeFrames(
    rows,
    reps,
    (i) => {
      checkRow(spec, norm, states[unitOf[i]!]!, clean, i * CMAPSS_WIDTH, out, 0, res);
      flagged += res.flagged;
    },
    reset,
  );
  if (flagged !== 0) throw new Error(`${m.name}: clean test frames were flagged ${flagged} times`);
  const faultyNs = timeFrames(
    rows,
    reps,
    (i) => checkRow(spec, norm, states[unitOf[i]!]!, faulty, i * CMAPSS_WIDTH, out, 0, res),
    reset,
  );
  const U = spec.channel.length;
  return {
    model: m.name,
    usedChannels: U,
    frames: rows,
    normalizeNsPerFrame: r3(normalizeNs),
    cleanNsPerFrame: r3(cleanNs),
    faultyNsPerFrame: r3(faultyNs),
    cleanUsPerChannel: r3(cleanNs / 1000 / U),
    faultyUsPerChannel: r3(faultyNs / 1000 / U),
    cleanVsNormalize: r3(cleanNs / normalizeNs),
    pass: Math.max(cleanNs, faultyNs) / 1000 / U <= QUALITY_GOAL_US_PER_CHANNEL,
  };
}

export interface Int8Bench {
  model: string;
  floatBytes: number;
  int8Bytes: number;
  floatUsPerWindowB1: number;
  int8UsPerWindowB1: number;
  floatUsPerWindowB256: number;
  int8UsPerWindowB256: number;
  ratioB1: number;
  ratioB256: number;
}

/** float32 vs int8 per-window cost of one manifest's files, interleaved runs, 1 intra-op thread. */
export async function benchInt8(manifestPath: string): Promise<Int8Bench | undefined> {
  const m: ModelManifest = loadManifest(manifestPath);
  const v = m.model.variants?.find((x) => x.precision === "int8");
  if (!v) return undefined;
  const opts: ort.InferenceSession.SessionOptions = {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    executionMode: "sequential",
    graphOptimizationLevel: "all",
  };
  const f32 = await ort.InferenceSession.create(modelPath(manifestPath, m), opts);
  const i8 = await ort.InferenceSession.create(join(manifestPath, "..", v.file), opts);
  const { window, tensor } = m.inputs;
  const width = tensorWidth(m);
  const perWindow = async (b: number, runs: number): Promise<[number, number]> => {
    const data = new Float32Array(b * window * width).map((_, i) => Math.sin(i) * 0.5);
    const feeds = { [tensor]: new ort.Tensor("float32", data, [b, window, width]) };
    for (let i = 0; i < 5; i++) {
      await f32.run(feeds);
      await i8.run(feeds);
    }
    const a: number[] = [];
    const q: number[] = [];
    for (let i = 0; i < runs; i++) {
      let t0 = performance.now();
      await f32.run(feeds);
      a.push(((performance.now() - t0) * 1000) / b);
      t0 = performance.now();
      await i8.run(feeds);
      q.push(((performance.now() - t0) * 1000) / b);
    }
    return [median(a), median(q)];
  };
  const [f1, q1] = await perWindow(1, 200);
  const [f256, q256] = await perWindow(256, 20);
  await f32.release();
  await i8.release();
  return {
    model: m.name,
    floatBytes: m.model.bytes,
    int8Bytes: v.bytes,
    floatUsPerWindowB1: r3(f1),
    int8UsPerWindowB1: r3(q1),
    floatUsPerWindowB256: r3(f256),
    int8UsPerWindowB256: r3(q256),
    ratioB1: r3(q1 / f1),
    ratioB256: r3(q256 / f256),
  };
}

/** Both sections over every C-MAPSS manifest; prints a table, returns the JSON figures. */
export async function qualityAndInt8Sections(
  modelsDir: string,
  dataDir: string,
): Promise<Record<string, unknown>> {
  const manifests = readdirSync(modelsDir)
    .filter((f) => f.endsWith(".manifest.json"))
    .sort()
    .map((f) => join(modelsDir, f));
  const quality = manifests.map((p) => benchQuality(p, dataDir));
  console.log(
    `\n== data-quality stage per frame (features/quality.ts checkRow vs normalizeRow alone, same run; goal ≤ ${QUALITY_GOAL_US_PER_CHANNEL} µs per used channel)`,
  );
  console.log(
    "model               channels  frames  normalize ns  clean ns  5%-missing+stuck ns  µs/channel clean/faulty  vs normalize  pass",
  );
  for (const q of quality)
    console.log(
      `${q.model.padEnd(18)} ${String(q.usedChannels).padStart(9)} ${String(q.frames).padStart(7)} ${String(q.normalizeNsPerFrame).padStart(13)} ${String(q.cleanNsPerFrame).padStart(9)} ${String(q.faultyNsPerFrame).padStart(20)} ${`${q.cleanUsPerChannel} / ${q.faultyUsPerChannel}`.padStart(25)} ${String(q.cleanVsNormalize).padStart(13)}  ${q.pass}`,
    );
  const int8: Int8Bench[] = [];
  for (const p of manifests) {
    const r = await benchInt8(p);
    if (r) int8.push(r);
  }
  console.log(
    "\n== int8 variant vs float32 (onnxruntime, 1 intra-op thread, interleaved runs, µs per window)",
  );
  if (int8.length === 0) console.log("no manifest has an int8 variant");
  else {
    console.log("model               bytes f32/int8    batch 1 f32/int8  ratio   batch 256 f32/int8  ratio");
    for (const q of int8)
      console.log(
        `${q.model.padEnd(18)} ${`${q.floatBytes}/${q.int8Bytes}`.padStart(16)} ${`${q.floatUsPerWindowB1}/${q.int8UsPerWindowB1}`.padStart(19)} ${String(q.ratioB1).padStart(6)} ${`${q.floatUsPerWindowB256}/${q.int8UsPerWindowB256}`.padStart(20)} ${String(q.ratioB256).padStart(6)}`,
      );
  }
  return { quality, int8 };
}
