// How much a test RMSE would move with a different draw of test units: a percentile bootstrap over
// units (Efron & Tibshirani, "An Introduction to the Bootstrap", 1993, ch. 13). C-MAPSS test sets have
// 100–259 units, so a goal a few tenths away from the measured figure can lie inside the interval;
// models/README.md reads the first-cycle goals against it. Seeded (device-sim's Rng), so every run
// prints the same interval for the same predictions.
import { Rng } from "../../device-sim/src/rng.ts";
import { rmse } from "./cmapss.ts";

/** A bootstrap interval of the RMSE and the share of resamples at or below a threshold. */
export interface RmseInterval {
  /** lower bound of the central interval */
  lo: number;
  /** upper bound of the central interval */
  hi: number;
  /** central coverage of [lo, hi], e.g. 0.9 */
  level: number;
  resamples: number;
  /** share of resamples whose RMSE is ≤ `threshold` (undefined without a threshold) */
  atOrBelow?: number;
  threshold?: number;
}

/**
 * Percentile bootstrap of rmse(pred, truth): `resamples` draws of n units with replacement.
 * Defaults: 10,000 resamples, level 0.9, seed 14 (the number, fixed so runs agree).
 */
export function bootstrapRmse(
  pred: ArrayLike<number>,
  truth: ArrayLike<number>,
  opts: { resamples?: number; level?: number; seed?: number; threshold?: number } = {},
): RmseInterval {
  const n = pred.length;
  if (n === 0 || truth.length !== n) throw new Error("bootstrapRmse: length mismatch or empty");
  const resamples = opts.resamples ?? 10_000;
  const level = opts.level ?? 0.9;
  if (!(level > 0 && level < 1)) throw new Error(`bootstrapRmse: level ${level} not in (0, 1)`);
  const rng = new Rng(opts.seed ?? 14);
  const p = new Float64Array(n);
  const t = new Float64Array(n);
  const values = new Float64Array(resamples);
  for (let b = 0; b < resamples; b++) {
    for (let i = 0; i < n; i++) {
      const j = rng.int(0, n - 1);
      p[i] = pred[j] as number;
      t[i] = truth[j] as number;
    }
    values[b] = rmse(p, t);
  }
  values.sort();
  const at = (q: number): number => values[Math.round(q * (resamples - 1))] as number;
  const tail = (1 - level) / 2;
  const out: RmseInterval = { lo: at(tail), hi: at(1 - tail), level, resamples };
  if (opts.threshold !== undefined) {
    const g = opts.threshold;
    out.threshold = g;
    out.atOrBelow = values.filter((v) => v <= g).length / resamples;
  }
  return out;
}
