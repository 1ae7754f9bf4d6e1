// Rotating-machine health model evaluation (profile rotating-v1), shared by
// models/eval/evaluate-rotating.ts and test/models/rotating.test.ts. It regenerates the held-out simulator
// trajectories from their seeds, streams every device's frames through a per-device ring buffer exactly
// as the gateway does (normalise each frame on arrival, window of `inputs.window` rows oldest first,
// `inputs.stride`, `inputs.padding`), micro-batches the ready windows of all devices into one
// onnxruntime call per tick, runs the manifest's alert rules with their hysteresis and scores them
// against the simulator's ground truth (failureStep, degradation(t)).
//
// Definitions (per device; "frame t" is the window's last frame, F the machine's failureStep, the first
// frame that does not exist):
//   healthy frame   a scored frame with ground-truth degradation 0 (before the seeded onset, or any frame
//                   of a machine built with degrade: false)
//   false alarm     an alert raised (inactive -> active) at a healthy frame
//   detection       the first scored frame after onset (degradation > 0) at which the alert is active
//   true positive   a degrading machine with a detection (necessarily before F); lead = F - t_detection
//   precision       TP / (TP + false alarms)          recall  TP / degrading machines
import * as ort from "../../gateway/src/infer/ort.ts";
import { generateSplit, SPLITS, type SplitSpec, type Trajectory } from "../rotating/generate.ts";
import { createSession } from "./cmapss.ts";
import {
  createNormalizer,
  normalizeRow,
  type Normalizer,
} from "../../gateway/src/infer/features/normalize.ts";
import {
  loadManifest,
  modelPath,
  type ManifestAlert,
  type ModelManifest,
} from "../../gateway/src/infer/features/manifest.ts";

// ------------------------------------------------------------------------------------------ streaming

/** Per-device ring of normalised rows; `fill` writes the current window oldest row first. */
export class WindowRing {
  readonly window: number;
  readonly features: number;
  readonly #rows: Float32Array;
  readonly #first: Float32Array;
  readonly #repeatFirst: boolean;
  /** frames pushed so far */
  count = 0;

  constructor(norm: Normalizer, window: number, padding: "repeat-first" | "none") {
    this.window = window;
    this.features = norm.features;
    this.#rows = new Float32Array(window * norm.features);
    this.#first = new Float32Array(norm.features);
    this.#repeatFirst = padding === "repeat-first";
  }

  /** Normalises the frame at `frame[offset]` (all channels) into the ring. */
  push(norm: Normalizer, frame: ArrayLike<number>, offset: number): void {
    const slot = (this.count % this.window) * this.features;
    normalizeRow(norm, frame, offset, this.#rows, slot);
    if (this.count === 0) this.#first.set(this.#rows.subarray(slot, slot + this.features));
    this.count++;
  }

  /** A window is available: a full one, or any frame at all with repeat-first padding. */
  get ready(): boolean {
    return this.count >= this.window || (this.#repeatFirst && this.count > 0);
  }

  /** Copies the window ending at the latest frame into `out[offset]`, [window, features] oldest first. */
  fill(out: Float32Array, offset: number): void {
    const F = this.features;
    const W = this.window;
    const have = Math.min(this.count, W);
    const pad = W - have;
    for (let w = 0; w < pad; w++) out.set(this.#first, offset + w * F);
    // oldest stored row: index (count - have) in frame order
    const start = (this.count - have) % W;
    const firstPart = Math.min(have, W - start);
    out.set(this.#rows.subarray(start * F, (start + firstPart) * F), offset + pad * F);
    if (firstPart < have)
      out.set(this.#rows.subarray(0, (have - firstPart) * F), offset + (pad + firstPart) * F);
  }
}

/**
 * Streams the trajectories through the model tick by tick (tick t carries frame t of every device still
 * running) and returns, per device, the model output at every frame (NaN where no window was run: before
 * the first full window with padding "none", or between strides).
 */
export async function streamOutputs(
  session: ort.InferenceSession,
  manifest: ModelManifest,
  trajs: readonly Trajectory[],
): Promise<Float32Array[]> {
  const { window: W, stride, tensor, padding } = manifest.inputs;
  const norm = createNormalizer(manifest);
  const F = norm.features;
  const C = norm.channels;
  const outName = manifest.outputs[0]?.name;
  if (outName === undefined) throw new Error("manifest has no outputs");
  const rings = trajs.map(() => new WindowRing(norm, W, padding.policy));
  const outputs = trajs.map((t) => new Float32Array(t.frames).fill(NaN));
  const batch = new Float32Array(trajs.length * W * F);
  const who = new Int32Array(trajs.length);
  const ticks = trajs.reduce((m, t) => Math.max(m, t.frames), 0);
  for (let t = 0; t < ticks; t++) {
    let n = 0;
    for (let d = 0; d < trajs.length; d++) {
      const tr = trajs[d]!;
      if (t >= tr.frames) continue;
      const ring = rings[d]!;
      if (tr.values.length !== tr.frames * C)
        throw new Error("trajectory width differs from manifest channels");
      ring.push(norm, tr.values, t * C);
      if (!ring.ready || (ring.count - 1) % stride !== 0) continue;
      ring.fill(batch, n * W * F);
      who[n++] = d;
    }
    if (n === 0) continue;
    const input = new ort.Tensor("float32", batch.subarray(0, n * W * F), [n, W, F]);
    const res = await session.run({ [tensor]: input });
    const out = res[outName];
    if (!out || out.data.length !== n) throw new Error(`output ${outName} missing or wrong size`);
    const data = out.data as Float32Array;
    for (let i = 0; i < n; i++) outputs[who[i]!]![t] = data[i]!;
  }
  return outputs;
}

// ------------------------------------------------------------------------------------------ alert rule

/** One hysteresis step: raise when `value op threshold`; clear once strictly past `clear` on the other side. */
export function nextAlertState(rule: ManifestAlert, active: boolean, value: number): boolean {
  if (!active) return rule.op === ">=" ? value >= rule.threshold : value <= rule.threshold;
  return rule.op === ">=" ? !(value < rule.clear) : !(value > rule.clear);
}

export interface DeviceResult {
  seed: number;
  index: number;
  degrade: boolean;
  failureStep: number | undefined;
  frames: number;
  scoredFrames: number;
  healthyFrames: number;
  /** inactive -> active transitions, all of them */
  raises: number;
  falseAlarms: number;
  /** frame of detection (see file header) or undefined */
  detectedAt: number | undefined;
  /** failureStep - detectedAt */
  lead: number | undefined;
}

export interface RuleResult {
  rule: string;
  threshold: number;
  clear: number;
  degradingMachines: number;
  healthyMachines: number;
  truePositives: number;
  falseNegatives: number;
  falseAlarms: number;
  /** false alarms on degrade:false machines */
  falseAlarmsOnHealthyMachines: number;
  healthyFrames: number;
  precision: number;
  recall: number;
  medianLeadFrames: number;
  leadP25Frames: number;
  leadP75Frames: number;
  minLeadFrames: number;
  falseAlarmsPer1000HealthyFrames: number;
  devices: DeviceResult[];
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export function scoreRule(
  rule: ManifestAlert,
  trajs: readonly Trajectory[],
  outputs: readonly Float32Array[],
): RuleResult {
  const devices: DeviceResult[] = trajs.map((tr, d) => {
    const out = outputs[d]!;
    let active = false;
    let raises = 0;
    let falseAlarms = 0;
    let scored = 0;
    let healthy = 0;
    let detectedAt: number | undefined;
    for (let t = 0; t < tr.frames; t++) {
      const v = out[t]!;
      if (Number.isNaN(v)) continue;
      scored++;
      const was = active;
      active = nextAlertState(rule, active, v);
      const raised = active && !was;
      if (raised) raises++;
      if (tr.degradation[t] === 0) {
        healthy++;
        if (raised) falseAlarms++;
      } else if (active && detectedAt === undefined) detectedAt = t;
    }
    const lead =
      tr.failureStep !== undefined && detectedAt !== undefined ? tr.failureStep - detectedAt : undefined;
    return {
      seed: tr.seed,
      index: tr.index,
      degrade: tr.degrade,
      failureStep: tr.failureStep,
      frames: tr.frames,
      scoredFrames: scored,
      healthyFrames: healthy,
      raises,
      falseAlarms,
      detectedAt: tr.failureStep !== undefined ? detectedAt : undefined,
      lead,
    };
  });
  const degrading = devices.filter((d) => d.failureStep !== undefined);
  const tp = degrading.filter((d) => d.lead !== undefined).length;
  const fa = devices.reduce((s, d) => s + d.falseAlarms, 0);
  const healthyFrames = devices.reduce((s, d) => s + d.healthyFrames, 0);
  const leads = degrading.flatMap((d) => (d.lead !== undefined ? [d.lead] : [])).sort((a, b) => a - b);
  return {
    rule: rule.id,
    threshold: rule.threshold,
    clear: rule.clear,
    degradingMachines: degrading.length,
    healthyMachines: devices.length - degrading.length,
    truePositives: tp,
    falseNegatives: degrading.length - tp,
    falseAlarms: fa,
    falseAlarmsOnHealthyMachines: devices.filter((d) => !d.degrade).reduce((s, d) => s + d.falseAlarms, 0),
    healthyFrames,
    precision: tp + fa > 0 ? tp / (tp + fa) : 1,
    recall: degrading.length > 0 ? tp / degrading.length : 0,
    medianLeadFrames: quantile(leads, 0.5),
    leadP25Frames: quantile(leads, 0.25),
    leadP75Frames: quantile(leads, 0.75),
    minLeadFrames: leads[0] ?? 0,
    falseAlarmsPer1000HealthyFrames: healthyFrames > 0 ? (1000 * fa) / healthyFrames : 0,
    devices,
  };
}

/** Root Brier score and mean log loss of the probability output against failure-within-horizon labels. */
export function probabilityScores(
  trajs: readonly Trajectory[],
  outputs: readonly Float32Array[],
  horizon: number,
): { windows: number; positives: number; rootBrier: number; logLoss: number } {
  let n = 0;
  let pos = 0;
  let se = 0;
  let ll = 0;
  const eps = 1e-7;
  trajs.forEach((tr, d) => {
    const out = outputs[d]!;
    for (let t = 0; t < tr.frames; t++) {
      const p = out[t]!;
      if (Number.isNaN(p)) continue;
      const y = tr.failureStep !== undefined && tr.failureStep - t <= horizon ? 1 : 0;
      n++;
      pos += y;
      se += (p - y) * (p - y);
      const q = Math.min(Math.max(p, eps), 1 - eps);
      ll -= y === 1 ? Math.log(q) : Math.log(1 - q);
    }
  });
  return { windows: n, positives: pos, rootBrier: Math.sqrt(se / n), logLoss: ll / n };
}

// ------------------------------------------------------------------------------------------ whole model

export interface RotatingEvaluation {
  name: string;
  /** machines evaluated (degrading + healthy) */
  units: number;
  horizon: number;
  /** the rule the headline metrics use (manifest metrics.alertRule, else the first alert) */
  headline: RuleResult;
  rules: RuleResult[];
  windows: number;
  positives: number;
  rootBrier: number;
  logLoss: number;
  outputs: Float32Array[];
  trajectories: Trajectory[];
}

export function horizonOf(manifest: ModelManifest): number {
  const h =
    manifest.metrics["horizonFrames"] ??
    (manifest.training["target"] as { horizonFrames?: unknown } | undefined)?.horizonFrames;
  if (typeof h !== "number" || !(h > 0))
    throw new Error(`${manifest.name}: no horizonFrames in metrics or training.target`);
  return h;
}

/** The held-out split the manifest was evaluated on (metrics.split, default "eval"). */
export function evalSpec(manifest: ModelManifest): SplitSpec {
  const split = manifest.metrics["split"] ?? "eval";
  if (split !== "eval" && split !== "train") throw new Error(`unknown split ${String(split)}`);
  return SPLITS[split];
}

export function scoreOutputs(
  manifest: ModelManifest,
  trajs: Trajectory[],
  outputs: Float32Array[],
): Omit<RotatingEvaluation, "name" | "units" | "trajectories" | "outputs"> {
  const horizon = horizonOf(manifest);
  const rules = manifest.alerts.map((a) => scoreRule(a, trajs, outputs));
  const want = manifest.metrics["alertRule"];
  const headline = rules.find((r) => r.rule === want) ?? rules[0];
  if (headline === undefined) throw new Error(`${manifest.name}: no alert rules`);
  return { horizon, headline, rules, ...probabilityScores(trajs, outputs, horizon) };
}

export async function evaluateRotating(
  manifestPath: string,
  manifest: ModelManifest = loadManifest(manifestPath),
  opts: { session?: ort.InferenceSession; spec?: SplitSpec; trajectories?: Trajectory[] } = {},
): Promise<RotatingEvaluation> {
  const trajectories = opts.trajectories ?? generateSplit(opts.spec ?? evalSpec(manifest));
  const session = opts.session ?? (await createSession(modelPath(manifestPath, manifest)));
  try {
    const outputs = await streamOutputs(session, manifest, trajectories);
    return {
      name: manifest.name,
      units: trajectories.length,
      ...scoreOutputs(manifest, trajectories, outputs),
      outputs,
      trajectories,
    };
  } finally {
    if (!opts.session) await session.release();
  }
}

/** Absolute tolerance for the integer-ratio metrics; relative for the probability scores. */
export const ABS_TOL = 1e-9;
export const REL_TOL = 1e-3;

/** Headline metrics the manifest records (metrics.*), all recomputed by evaluateRotating. */
export interface ClaimedMetrics {
  units: number;
  rmse: number;
  score: number;
  alertRule: string;
  precision: number;
  recall: number;
  medianLeadFrames: number;
  falseAlarmsPer1000HealthyFrames: number;
}

export function claimedMetrics(ev: RotatingEvaluation): ClaimedMetrics {
  const h = ev.headline;
  return {
    units: ev.units,
    rmse: Number(ev.rootBrier.toFixed(6)),
    score: Number(ev.logLoss.toFixed(6)),
    alertRule: h.rule,
    precision: Number(h.precision.toFixed(6)),
    recall: Number(h.recall.toFixed(6)),
    medianLeadFrames: h.medianLeadFrames,
    falseAlarmsPer1000HealthyFrames: Number(h.falseAlarmsPer1000HealthyFrames.toFixed(6)),
  };
}

/**
 * Ways the recomputed evaluation is worse than the manifest's claims (empty = not worse). Precision,
 * recall and lead are ratios/medians of integers (exact); rmse (root Brier) and score (log loss) get
 * REL_TOL for float noise between PyTorch and onnxruntime; claims are rounded to 6 decimals.
 */
export function worseThanClaimed(ev: RotatingEvaluation, m: ModelManifest): string[] {
  const c = m.metrics;
  const h = ev.headline;
  const bad: string[] = [];
  const num = (k: string): number => {
    const v = c[k];
    if (typeof v !== "number") throw new Error(`${m.name}: metrics.${k} missing`);
    return v;
  };
  const round = 5e-7;
  if (ev.units !== c.units) bad.push(`units ${ev.units} != ${c.units}`);
  if (h.precision < num("precision") - round - ABS_TOL)
    bad.push(`precision ${h.precision} < ${num("precision")}`);
  if (h.recall < num("recall") - round - ABS_TOL) bad.push(`recall ${h.recall} < ${num("recall")}`);
  if (h.medianLeadFrames < num("medianLeadFrames") - ABS_TOL)
    bad.push(`median lead ${h.medianLeadFrames} < ${num("medianLeadFrames")}`);
  if (h.falseAlarmsPer1000HealthyFrames > num("falseAlarmsPer1000HealthyFrames") + round + ABS_TOL)
    bad.push(
      `false alarms/1000 ${h.falseAlarmsPer1000HealthyFrames} > ${num("falseAlarmsPer1000HealthyFrames")}`,
    );
  if (ev.rootBrier > c.rmse * (1 + REL_TOL)) bad.push(`root Brier ${ev.rootBrier} > ${c.rmse}`);
  if (ev.logLoss > c.score * (1 + REL_TOL)) bad.push(`log loss ${ev.logLoss} > ${c.score}`);
  return bad;
}
