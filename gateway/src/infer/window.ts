/**
 * Per-device ring buffer of normalised rows, shaped by the model's manifest.
 *
 * Each stored DATA frame is normalised once on arrival (models/eval `normalizeRow`: nearest
 * operating-regime centroid, then per-regime z-score in float64, stored as float32) straight
 * into the ring: no allocation per frame. When the manifest has `inputs.baseline`, the row's
 * deviations from the device's baseline (the mean of its first `rows` rows, kept per device;
 * values the data-quality stage could only guess are left out of it) follow (models/eval
 * `applyBaseline`). Ring and baseline live in memory; `warm()` refills both from the frame log
 * when the loop first sees a device (history.ts), so they survive a restart. A window ends every
 * `stride` rows, starting with the first row when the padding policy is `repeat-first` (rows
 * before the first frame repeat it, exactly like models/eval `fillWindow`) or with row
 * `window - 1` when it is `none`.
 *
 * Backlog: up to `backlog` ready windows per device wait to be taken, oldest first, so a device
 * whose next window became ready while inference was running loses nothing. The ring holds
 * `window + backlog × stride - 1` rows, so the oldest waiting window is still intact while newer
 * rows arrive. Beyond the backlog (inference fell behind for longer) the oldest waiting window is
 * skipped and counted, never queued without bound: its frames are stored and acknowledged anyway,
 * and the newer windows contain the newer data. A waiting window whose rows were overwritten
 * (withheld windows in between stretch the gap) is skipped the same way. `backlog` 1 runs only
 * the newest window.
 *
 * Data quality (features/quality.ts): every frame is checked channel by channel before it is
 * normalised (missing, out of range, stuck, spike); flagged feature values are imputed, and the
 * verdict is left in `frameQuality` for the loop (sensor faults raised or cleared, per channel and
 * reason). A window with too much imputed data does not become ready: `windowVerdict` says why and
 * `withheld` counts them.
 */
import { commissioningMode, type Commissioning } from "./features/commissioning.ts";
import { applyBaseline, newBaseline, type BaselineState } from "./features/normalize.ts";
import {
  checkRow,
  newFrameQuality,
  qualityFor,
  QualityState,
  W_OK,
  windowQuality,
  type FrameQuality,
  type QualitySpec,
} from "./features/quality.ts";
import type { HistoryRow } from "./history.ts";
import type { LoadedModel } from "./registry.ts";

/** Largest seq step taken as frames lost (2^24, ingest's SEQ_OUT_OF_RANGE bound); beyond it, 1. */
const MAX_SEQ_STEP = 2 ** 24;

/** Where a window came from: enough to find its frames (and their receipts) in the log. */
export interface WindowMeta {
  /** Extended seq of the window's first real frame (padding rows repeat it). */
  firstSeq: number;
  /** Extended seq of the window's last frame. */
  lastSeq: number;
  /** Real frames in the window: min(rows so far, window). */
  frames: number;
  firstTimestampUs: number;
  lastTimestampUs: number;
  /** Gateway arrival time of the last frame (for frame-to-alert latency). */
  lastReceivedUs: number;
  /** Normalised rows pushed so far (index of the last row + 1). */
  rows: number;
  /** Feature values imputed by the data-quality stage over the window's real rows (0: all measured; always set by take()). */
  imputed?: number;
}

export class DeviceWindow {
  readonly deviceId: number;
  readonly model: LoadedModel;
  readonly profile: string;
  readonly #window: number;
  readonly #stride: number;
  readonly #features: number;
  readonly #cap: number;
  readonly #firstEnd: number;
  /** The device's baseline (first rows' mean) when the model has baseline deviations. */
  readonly #baseline: BaselineState;
  /** The model's compiled data-quality rules (channel names of `frameQuality.codes`: `quality.names`). */
  readonly quality: QualitySpec;
  /** The device's data-quality state (last good values, stuck runs, sensor faults per used channel). */
  readonly qualityState: QualityState;
  /** Verdict on the last pushed frame (overwritten by every push; read it right after push). */
  readonly frameQuality: FrameQuality;
  /** Imputed feature values and lost features per ring row. */
  readonly #imputed: Uint16Array;
  readonly #lost: Uint16Array;
  /** Imputed values in the last `window` rows. */
  #imputedSum = 0;
  /** Verdict of the last window that completed (quality.ts W_OK or the reason it was withheld). */
  windowVerdict = W_OK;
  /** Windows withheld for data quality (no prediction), and whether the last push withheld one. */
  withheld = 0;
  withheldLast = false;
  /**
   * Frame channel and direct-feature index of the baseline's origin feature (the machine's age),
   * -1 without; its raw value at commissioning (see #noteAge).
   */
  readonly #ageChannel: number;
  readonly #ageFeature: number;
  #firstAge = NaN;
  #ageMeasured = false;
  /** cap × features normalised float32 rows (tensor width: features, then baseline deviations). */
  readonly #rows: Float32Array;
  readonly #seq: Float64Array;
  readonly #ts: Float64Array;
  readonly #recv: Float64Array;
  #count = 0;
  /** Last-row indices of the ready windows not yet taken, oldest first (a ring of `backlog`). */
  readonly #ends: Float64Array;
  #head = 0;
  #waiting = 0;
  /** Ready windows dropped (backlog full, rows overwritten) since the last take. */
  #dropped = 0;
  /** Set by the loop while the device sits in its model's ready queue. */
  queued = false;
  /** Live frames held while the window is warmed from history (loop-owned); undefined otherwise. */
  pending: HistoryRow[] | undefined = undefined;
  /** The HELLO channel names last checked against the manifest, and the verdict (loop-owned). */
  announced: readonly string[] | undefined = undefined;
  namesMatch = true;
  lastSeq = -1;
  lastTimestampUs = 0;
  lastReceivedUs = 0;
  /** The window verdict and baseline completeness last reported as device status (loop-owned; -1: never). */
  statusVerdict = -1;
  statusBaselineDone = false;

  /**
   * @param backlog ready windows kept per device until taken (see the file comment). Default 1:
   *   only the newest window runs.
   */
  constructor(deviceId: number, model: LoadedModel, profile: string, backlog = 1) {
    if (!Number.isInteger(backlog) || backlog < 1)
      throw new RangeError(`backlog must be a positive integer, got ${backlog}`);
    const { window, stride, padding } = model.manifest.inputs;
    this.deviceId = deviceId;
    this.model = model;
    this.profile = profile;
    this.#window = window;
    this.#stride = stride;
    this.#features = model.normalizer.features;
    this.#baseline = newBaseline(model.normalizer);
    // Compiled once per model by the registry; a hand-built model (tests) compiles it here.
    this.quality = model.quality ?? qualityFor(model.manifest, model.normalizer);
    const oi = model.normalizer.originIndex;
    this.#ageChannel = oi >= 0 ? model.normalizer.featureIndex[oi]! : -1;
    this.#ageFeature = oi;
    this.qualityState = new QualityState(this.quality);
    this.frameQuality = newFrameQuality(this.quality);
    this.#cap = window + backlog * stride - 1;
    this.#ends = new Float64Array(backlog);
    this.#firstEnd = padding.policy === "repeat-first" ? 0 : window - 1;
    this.#rows = new Float32Array(this.#cap * this.#features);
    this.#seq = new Float64Array(this.#cap);
    this.#ts = new Float64Array(this.#cap);
    this.#recv = new Float64Array(this.#cap);
    this.#imputed = new Uint16Array(this.#cap);
    this.#lost = new Uint16Array(this.#cap);
  }

  get rows(): number {
    return this.#count;
  }

  /** Ready windows not yet taken, waiting or dropped since the last take. */
  get readyWindows(): number {
    return this.#waiting + this.#dropped;
  }

  /**
   * When the gateway met this device relative to the machine's life (features/commissioning.ts):
   * the mode, the age in the first frame, and the baseline's progress. Allocates: call it for
   * status, not per frame.
   */
  get commissioning(): Commissioning {
    return {
      mode: commissioningMode(this.model.manifest, this.#firstAge),
      age: this.#firstAge,
      baselineRows: this.#baseline.rows,
      baselineNeeds: this.model.normalizer.baselineRows,
    };
  }

  /**
   * Records the machine's age at commissioning from a checked row, before applyBaseline counts it:
   * the first age among the baseline rows that was not a guess (as applyBaseline takes the origin),
   * the first row's raw value until there is one.
   */
  #noteAge(values: ArrayLike<number>, guessed: Uint8Array): void {
    if (
      this.#ageChannel < 0 ||
      this.#ageMeasured ||
      this.#baseline.rows >= this.model.normalizer.baselineRows
    )
      return;
    const ok = guessed[this.#ageFeature] === 0;
    if (ok || this.#baseline.rows === 0) this.#firstAge = values[this.#ageChannel] as number;
    this.#ageMeasured = ok;
  }

  /** True when the device's baseline has all its rows (always true for a model without one). */
  get baselineComplete(): boolean {
    return this.#baseline.rows >= this.model.normalizer.baselineRows;
  }

  /** True when a window is ready and not yet taken. */
  get ready(): boolean {
    return this.#waiting > 0;
  }

  /** Drops waiting windows whose oldest row is no longer in the ring (row `idx` was just written). */
  #dropOverwritten(idx: number): void {
    while (this.#waiting > 0) {
      const end = this.#ends[this.#head]!;
      if (Math.max(end - this.#window + 1, 0) > idx - this.#cap) return;
      this.#dropOldest();
    }
  }

  /** Removes the oldest waiting window without running it (counted as skipped at the next take). */
  #dropOldest(): void {
    this.#head = (this.#head + 1) % this.#ends.length;
    this.#waiting--;
    this.#dropped++;
  }

  /**
   * Checks one frame's values (all manifest channels, frame order, raw: NaN/Inf allowed) and
   * normalises them into the ring, flagged values imputed; `frameQuality` holds the verdict.
   * Returns true when this row completes a window that may run (a window withheld for data
   * quality returns false and sets `windowVerdict`). Allocation-free.
   */
  push(values: ArrayLike<number>, seq: number, timestampUs: number, receivedUs: number): boolean {
    const idx = this.#count++;
    const slot = idx % this.#cap;
    const norm = this.model.normalizer;
    const q = this.frameQuality;
    // Frames lost between two rows of one boot count in the rate checks (seq step); across a
    // reboot (the extended seq jumps to the next 2^32) or out of order, one frame.
    const step = this.lastSeq < 0 ? 1 : seq - this.lastSeq;
    const frames = step >= 1 && step <= MAX_SEQ_STEP ? step : 1;
    checkRow(this.quality, norm, this.qualityState, values, 0, this.#rows, slot * this.#features, q, frames);
    for (let k = 0; k < q.changedCount; k++) {
      const u = q.changed[k]!;
      if (this.qualityState.faulted[u] === 1) this.qualityState.raisedRxUs[u] = receivedUs;
    }
    this.#noteAge(values, q.guessed);
    applyBaseline(norm, this.#baseline, this.#rows, slot * this.#features, q.guessed);
    // running sum of imputed values over the last `window` rows (the row leaving is read before its
    // slot is overwritten: with stride 1 it is the same slot)
    if (idx >= this.#window) this.#imputedSum -= this.#imputed[(idx - this.#window) % this.#cap]!;
    this.#imputed[slot] = q.imputed;
    this.#imputedSum += q.imputed;
    this.#lost[slot] = q.lost;
    this.withheldLast = false;
    this.#seq[slot] = seq;
    this.#ts[slot] = timestampUs;
    this.#recv[slot] = receivedUs;
    this.lastSeq = seq;
    this.lastTimestampUs = timestampUs;
    this.lastReceivedUs = receivedUs;
    if (idx >= this.#cap) this.#dropOverwritten(idx);
    if (idx < this.#firstEnd || (idx - this.#firstEnd) % this.#stride !== 0) return false;
    const real = Math.min(idx + 1, this.#window);
    this.windowVerdict = windowQuality(this.quality, norm.direct, this.#imputedSum, real, q.imputed, q.lost);
    if (this.windowVerdict !== W_OK) {
      this.withheld++;
      this.withheldLast = true;
      return false;
    }
    const n = this.#ends.length;
    if (this.#waiting === n) this.#dropOldest();
    this.#ends[(this.#head + this.#waiting) % n] = idx;
    this.#waiting++;
    return true;
  }

  /** Imputed values over the `real` rows ending at row `end`. */
  #imputedIn(end: number, real: number): number {
    let n = 0;
    for (let r = end - real + 1; r <= end; r++) n += this.#imputed[r % this.#cap]!;
    return n;
  }

  /**
   * Warms a new window from the device's stored history (history.ts) before its live frames:
   * `first` are its earliest rows, `last` the rows just before the first live one. When they
   * overlap (a young device), their union is replayed in order; otherwise the baseline is seeded
   * from `first` and `last` refills the ring. No window becomes ready from history. Returns the
   * rows used. Precondition: nothing pushed yet.
   */
  warm(allFirst: readonly HistoryRow[], allLast: readonly HistoryRow[]): number {
    const norm = this.model.normalizer;
    // Rows of another channel layout (stored under an earlier profile) cannot be normalised.
    const fits = (r: HistoryRow): boolean => r.values.length === norm.channels;
    const first = allFirst.filter(fits);
    const last = allLast.filter(fits);
    let replay: readonly HistoryRow[] = last;
    let seeded = 0;
    const lastFirst = first.at(-1);
    if (lastFirst !== undefined && last.length > 0 && last[0]!.seq <= lastFirst.seq) {
      const bySeq = new Map<number, HistoryRow>();
      for (const r of [...first, ...last]) bySeq.set(r.seq, r);
      replay = [...bySeq.values()].sort((a, b) => a.seq - b.seq);
    } else if (norm.baselineRows > 0) {
      // A baseline of fewer than baselineRows rows keeps growing with the live rows, as it would have.
      // The same data-quality stage as live rows, with its own state (these rows are old).
      const scratch = new Float32Array(norm.features);
      const state = new QualityState(this.quality);
      const verdict = newFrameQuality(this.quality);
      for (const r of first.slice(0, norm.baselineRows)) {
        checkRow(this.quality, norm, state, r.values, 0, scratch, 0, verdict);
        this.#noteAge(r.values, verdict.guessed);
        applyBaseline(norm, this.#baseline, scratch, 0, verdict.guessed);
        seeded++;
      }
    }
    for (const r of replay) this.push(r.values, r.seq, r.timestampUs, r.receivedUs);
    this.#waiting = 0;
    this.#dropped = 0;
    this.withheld = 0;
    this.withheldLast = false;
    this.windowVerdict = W_OK;
    return replay.length + seeded;
  }

  /** Returns (and resets) the count of ready windows skipped since the last take; for a device with none waiting. */
  takeSkipped(): number {
    const n = this.#dropped;
    this.#dropped = 0;
    return n;
  }

  /**
   * Copies the oldest waiting window (window × features float32, oldest row first) into `out` at
   * `offset`, fills `meta` and marks it taken. Returns the number of ready windows skipped since
   * the last take (backlog full, rows overwritten). Precondition: `ready`.
   */
  take(out: Float32Array, offset: number, meta: WindowMeta): number {
    const end = this.#ends[this.#head]!;
    this.#head = (this.#head + 1) % this.#ends.length;
    this.#waiting--;
    const W = this.#window;
    const F = this.#features;
    const start = end - W + 1;
    // Padding rows (before the first frame) repeat row 0; the real rows are at most two
    // contiguous runs of the ring, copied with TypedArray.set (memcpy).
    let w = 0;
    for (; start + w < 0; w++) out.set(this.#rows.subarray(0, F), offset + w * F);
    while (w < W) {
      const slot = (start + w) % this.#cap;
      const run = Math.min(W - w, this.#cap - slot);
      out.set(this.#rows.subarray(slot * F, (slot + run) * F), offset + w * F);
      w += run;
    }
    const first = (start < 0 ? 0 : start) % this.#cap;
    const last = end % this.#cap;
    meta.firstSeq = this.#seq[first]!;
    meta.lastSeq = this.#seq[last]!;
    meta.frames = start < 0 ? end + 1 : W;
    meta.firstTimestampUs = this.#ts[first]!;
    meta.lastTimestampUs = this.#ts[last]!;
    meta.lastReceivedUs = this.#recv[last]!;
    meta.rows = end + 1;
    meta.imputed = this.#imputedIn(end, meta.frames);
    const skipped = this.#dropped;
    this.#dropped = 0;
    return skipped;
  }
}

export function emptyMeta(): WindowMeta {
  return {
    firstSeq: 0,
    lastSeq: 0,
    frames: 0,
    firstTimestampUs: 0,
    lastTimestampUs: 0,
    lastReceivedUs: 0,
    rows: 0,
    imputed: 0,
  };
}
