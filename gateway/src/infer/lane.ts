/**
 * An inference lane: one loaded model with its runner, its ready queue and its counters. The
 * loop routes each device to one **live** lane (by HELLO profile) and, while an update is being
 * evaluated, to **shadow** lanes beside it: a shadow sees the same frames and computes its own
 * windows with its own feature pipeline, runs in the same ticks, and its outputs are compared
 * with the live lane's but never published or attested. A shadow is promoted atomically
 * (loop.ts `promote`), after which the old live lane is retired and can be unloaded.
 */
import { LatencyHistogram } from "../core/histogram.ts";
import type { LoadedModel } from "./registry.ts";
import type { DeviceWindow, WindowMeta } from "./window.ts";
import { emptyMeta } from "./window.ts";
import { createRunner, type BatchRunner, type RunnerKind } from "./worker.ts";

export type LaneRole = "live" | "shadow" | "retired";

/**
 * The least a shadow batch may be planned to take, µs. A batch runs synchronously on its runner's
 * thread (worker.ts): inline, nothing else runs meanwhile, so a candidate far slower than the live
 * model must not get the live lane's batch size.
 */
export const SHADOW_BATCH_BUDGET_US = 50_000;
/** A shadow batch may also take this × its live lane's median batch (a candidate within the cost limit keeps its batches). */
export const SHADOW_BATCH_LIVE_FACTOR = 4;

/** How a shadow compares with the live lane it shadows, over the windows both ran. */
export interface ShadowStats {
  /** Windows the shadow ran. */
  windows: number;
  /** Windows of which the live lane's output for the same device and last frame is known. */
  compared: number;
  /** Mean and largest |shadow − live| of the first output. */
  meanAbsDiff: number;
  maxAbsDiff: number;
  /** Shadow output values (every element of every output) that were NaN/±Inf, or outside the manifest's declared [min, max]. */
  nonFinite: number;
  outOfRange: number;
  /** Shadow windows whose run failed (onnxruntime threw). */
  failedWindows: number;
  /** Mean run time per window, µs, of the shadow and of the live lane (same ticks). */
  usPerWindow: number;
  liveUsPerWindow: number;
  /**
   * Median run time per window, µs, of the shadow and of the live lane: what the update agent
   * judges the cost by. A median, so one slow run (a new session's first, a GC pause, a busy
   * core) among the few windows of a shadow phase does not refuse a model.
   */
  medianUsPerWindow: number;
  liveMedianUsPerWindow: number;
}

export interface LaneCounters {
  windowsReady: number;
  windowsRun: number;
  skippedWindows: number;
  failedWindows: number;
  batches: number;
  runErrors: number;
  /** Wall time of run() per window, summed (µs): per-window cost of this lane. */
  runUs: number;
}

export class Lane {
  readonly model: LoadedModel;
  readonly runner: BatchRunner;
  role: LaneRole;
  /** For a shadow: the live lane it is compared with. */
  shadowOf: Lane | undefined;
  queue: DeviceWindow[] = [];
  spare: DeviceWindow[] = [];
  readonly batch: DeviceWindow[];
  readonly metas: WindowMeta[];
  readonly counters: LaneCounters = {
    windowsReady: 0,
    windowsRun: 0,
    skippedWindows: 0,
    failedWindows: 0,
    batches: 0,
    runErrors: 0,
    runUs: 0,
  };
  readonly runLatency = new LatencyHistogram();
  /** Run time per window (a run's time ÷ its windows), µs. */
  readonly windowCost = new LatencyHistogram();
  /** Shadow lanes only: comparison with the live lane. */
  readonly shadow = { compared: 0, sumAbsDiff: 0, maxAbsDiff: 0, nonFinite: 0, outOfRange: 0 };

  constructor(model: LoadedModel, role: LaneRole, runner: RunnerKind, maxBatch: number) {
    this.model = model;
    this.role = role;
    this.shadowOf = undefined;
    this.runner = createRunner(runner, model, maxBatch);
    this.batch = new Array<DeviceWindow>(maxBatch);
    this.metas = Array.from({ length: maxBatch }, emptyMeta);
  }

  get name(): string {
    return this.model.manifest.name;
  }

  /** Per-window cost so far, µs (0 before the first run). */
  usPerWindow(): number {
    const c = this.counters;
    return c.windowsRun === 0 ? 0 : c.runUs / c.windowsRun;
  }

  /**
   * Windows this shadow may run in one batch: as many as its median cost per window so far fits
   * in max({@link SHADOW_BATCH_BUDGET_US}, {@link SHADOW_BATCH_LIVE_FACTOR} × its live lane's
   * median batch), between 1 and `maxBatch`; 1 before its first run (its cost is not known yet).
   * A 1000× slower candidate then holds its runner's thread (inline: the main thread) and the
   * tick one window at a time, with I/O between its batches, until the update agent judges it
   * (model-agent.ts), instead of a whole batch at once.
   */
  shadowBatchSize(maxBatch: number): number {
    const per = this.windowCost.quantile(0.5);
    if (this.counters.windowsRun === 0 || per <= 0) return 1;
    const live = this.shadowOf?.runLatency.quantile(0.5) ?? 0;
    const budget = Math.max(SHADOW_BATCH_BUDGET_US, SHADOW_BATCH_LIVE_FACTOR * live);
    return Math.max(1, Math.min(maxBatch, Math.floor(budget / per)));
  }

  shadowStats(): ShadowStats {
    const s = this.shadow;
    return {
      windows: this.counters.windowsRun,
      compared: s.compared,
      meanAbsDiff: s.compared === 0 ? 0 : s.sumAbsDiff / s.compared,
      maxAbsDiff: s.maxAbsDiff,
      nonFinite: s.nonFinite,
      outOfRange: s.outOfRange,
      failedWindows: this.counters.failedWindows,
      usPerWindow: this.usPerWindow(),
      liveUsPerWindow: this.shadowOf?.usPerWindow() ?? 0,
      medianUsPerWindow: this.windowCost.quantile(0.5),
      liveMedianUsPerWindow: this.shadowOf?.windowCost.quantile(0.5) ?? 0,
    };
  }
}
