/**
 * Replay of real bearing vibration data (CWRU Bearing Data Center; parser and citation in
 * gateway/src/infer/features/cwru.ts, data in models/data/cwru): profile `cwru-bearing-v1`, one DATA
 * frame per 2,048-sample accelerometer window carrying its 9 time-domain statistics, as the
 * `cwru-bearing-v1` model expects.
 *
 * Device i runs healthy first (the Normal_1 recording), then develops the fault of class
 * 1 + (i mod 9) (Ball / inner race / outer race, 7–21 mils) from a seeded frame on, and keeps
 * replaying that recording; `failureStep` is the first faulty frame (ground truth for the alert's
 * lead). Only the held-out rows (`CWRU_SPLIT.testFrom` on, never used in training) are replayed,
 * cycled when a phase is longer than them.
 */
import {
  CWRU_CHANNELS,
  CWRU_CLASSES,
  CWRU_SPLIT,
  cwruBlock,
  loadCwru,
  type CwruRecording,
} from "../../../gateway/src/infer/features/cwru.ts";
import { Unit, type ChannelDescriptor } from "../../../gateway/src/protocol/frame.ts";
import type { Rng } from "../rng.ts";
import type { SignalSource } from "./types.ts";

export const CWRU_PROFILE = "cwru-bearing-v1";

/** HELLO descriptors: max, min, mean, sd and rms in g; the shape statistics dimensionless. */
export const CWRU_DESCRIPTORS: readonly ChannelDescriptor[] = CWRU_CHANNELS.map((name) => ({
  name,
  unit: ["max", "min", "mean", "sd", "rms"].includes(name) ? Unit.g : Unit.none,
}));

export interface CwruReplayOptions {
  /** Frames of healthy operation before the fault; default seeded in [40, 120). */
  healthyFrames?: number;
  /** Frames in total (healthy + faulty); default healthy + 200. */
  frames?: number;
}

export class CwruReplay implements SignalSource {
  readonly profile = CWRU_PROFILE;
  readonly channels = CWRU_DESCRIPTORS;
  readonly failureStep: number;
  /** Label of the fault this device develops (CWRU_CLASSES). */
  readonly fault: string;
  readonly #normal: CwruRecording;
  readonly #faulty: CwruRecording;
  readonly #frames: number;

  constructor(recordings: readonly CwruRecording[], index: number, rng: Rng, opts: CwruReplayOptions = {}) {
    const held = (r: CwruRecording): CwruRecording => cwruBlock(r, CWRU_SPLIT.testFrom, r.rows);
    this.#normal = held(recordings[0]!);
    this.#faulty = held(recordings[1 + (index % (CWRU_CLASSES.length - 1))]!);
    this.fault = this.#faulty.label;
    this.failureStep = opts.healthyFrames ?? rng.int(40, 119);
    this.#frames = opts.frames ?? this.failureStep + 200;
  }

  sample(step: number): Float32Array | undefined {
    if (step >= this.#frames) return undefined;
    const rec = step < this.failureStep ? this.#normal : this.#faulty;
    const r = (step < this.failureStep ? step : step - this.failureStep) % rec.rows;
    const C = CWRU_CHANNELS.length;
    return Float32Array.from(rec.data.subarray(r * C, (r + 1) * C));
  }
}

/** Sources for `devices` simulated bearings, seeded (device i from `rng.fork(`cwru-${i}`)`). */
export function cwruSources(devices: number, rng: Rng, opts: CwruReplayOptions = {}): CwruReplay[] {
  const recordings = loadCwru();
  return Array.from(
    { length: devices },
    (_, i) => new CwruReplay(recordings, i, rng.fork(`cwru-${i}`), opts),
  );
}
