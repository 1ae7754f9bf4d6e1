/**
 * Synthetic rotating machine (motor + rolling bearing) that degrades along a seeded
 * trajectory to failure. Degradation d runs 0 → 1 (failure): a healthy phase, then an
 * exponential growth, the usual shape of bearing wear (vibration energy grows slowly, then
 * fast as spalls spread). Channels follow textbook symptoms: RMS and crest factor rise,
 * kurtosis rises from 3 as impacts appear, bearing temperature and motor current rise, speed
 * sags slightly. Sensor noise is Gaussian; load varies slowly (operating condition).
 */
import { Unit, type ChannelDescriptor } from "../../../gateway/src/protocol/frame.ts";
import type { Rng } from "../rng.ts";
import type { SignalSource } from "./types.ts";

export const ROTATING_PROFILE = "rotating-v1";

export const ROTATING_CHANNELS: readonly ChannelDescriptor[] = [
  { name: "vib_rms", unit: Unit.g },
  { name: "vib_peak", unit: Unit.g },
  { name: "vib_kurt", unit: Unit.none },
  { name: "bearing_temp", unit: Unit.degC },
  { name: "current", unit: Unit.A },
  { name: "speed", unit: Unit.rpm },
];

export interface RotatingOptions {
  /** Mean number of steps (frames) from start to failure. Default 600. */
  meanLife?: number;
  /** When false the machine never fails (healthy reference). Default true. */
  degrade?: boolean;
}

export class RotatingMachine implements SignalSource {
  readonly profile = ROTATING_PROFILE;
  readonly channels = ROTATING_CHANNELS;
  readonly failureStep: number | undefined;
  readonly #rng: Rng;
  readonly #onset: number;
  readonly #growth: number;
  readonly #loadPhase: number;
  readonly #loadPeriod: number;
  readonly #baseRms: number;
  readonly #ambient: number;
  #temp: number;

  constructor(rng: Rng, opts: RotatingOptions = {}) {
    this.#rng = rng;
    const meanLife = opts.meanLife ?? 600;
    // Life varies ±40% between machines; the healthy phase is 30–60% of it.
    const life = Math.max(20, Math.round(meanLife * rng.range(0.6, 1.4)));
    this.#onset = Math.round(life * rng.range(0.3, 0.6));
    // d(t) = (exp(g·(t-onset)) - 1) / (exp(g·span) - 1) reaches 1 at t = life.
    const span = life - this.#onset;
    this.#growth = rng.range(3, 6) / span;
    this.failureStep = opts.degrade === false ? undefined : life;
    this.#loadPhase = rng.range(0, 2 * Math.PI);
    this.#loadPeriod = rng.range(80, 240);
    this.#baseRms = rng.range(0.06, 0.1);
    this.#ambient = rng.range(28, 38);
    this.#temp = this.#ambient + 8;
  }

  /** Degradation 0..1 at `step`. */
  degradation(step: number): number {
    if (this.failureStep === undefined || step <= this.#onset) return 0;
    const span = this.failureStep - this.#onset;
    return Math.min(1, Math.expm1(this.#growth * (step - this.#onset)) / Math.expm1(this.#growth * span));
  }

  sample(step: number): Float32Array | undefined {
    if (this.failureStep !== undefined && step >= this.failureStep) return undefined;
    const r = this.#rng;
    const d = this.degradation(step);
    const load = 0.7 + 0.25 * Math.sin(this.#loadPhase + (2 * Math.PI * step) / this.#loadPeriod);
    const rms = this.#baseRms * (0.8 + 0.4 * load) * (1 + 6 * d * d) * (1 + 0.05 * r.normal());
    const crest = (3 + 3 * d) * (1 + 0.04 * r.normal());
    const kurt = 3 + 12 * Math.pow(d, 1.5) + 0.15 * r.normal();
    // First-order thermal lag towards the equilibrium temperature.
    const target = this.#ambient + 12 * load + 35 * d * d;
    this.#temp += 0.05 * (target - this.#temp) + 0.1 * r.normal();
    const current = 14 * load * (1 + 0.18 * d) * (1 + 0.01 * r.normal());
    const speed = 1480 * (1 - 0.03 * d) * (1 - 0.01 * (load - 0.7)) + 1.5 * r.normal();
    return new Float32Array([rms, rms * crest, kurt, this.#temp, current, speed]);
  }
}
