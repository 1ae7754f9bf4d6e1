/**
 * Whole-trajectory windows for evaluation and training checks: normalise a unit's rows (with its
 * baseline) and cut the window ending at a row, padding with the first row ("repeat-first").
 * The gateway's live ring (infer/window.ts) produces the same windows one row at a time.
 */
import { FeatureSpecError } from "../errors.ts";
import type { CmapssUnit } from "./cmapss.ts";
import { applyBaseline, newBaseline, normalizeRow, type Normalizer } from "./normalize.ts";

/** Normalises all rows of a unit (with its baseline): returns cycles * features float32 values. */
export function normalizeUnit(norm: Normalizer, unit: CmapssUnit): Float32Array {
  const out = new Float32Array(unit.cycles * norm.features);
  const base = newBaseline(norm);
  for (let r = 0; r < unit.cycles; r++) {
    normalizeRow(norm, unit.data, r * norm.channels, out, r * norm.features);
    applyBaseline(norm, base, out, r * norm.features);
  }
  return out;
}

/**
 * Copies the window of `window` normalised rows ending at row `end` (inclusive) of `rows`
 * (row-major, `features` per row) into `out[outOffset]`. Rows before the first are the first row
 * repeated (padding policy "repeat-first").
 */
export function fillWindow(
  rows: Float32Array,
  features: number,
  end: number,
  window: number,
  out: Float32Array,
  outOffset: number,
): void {
  const start = end - window + 1;
  for (let w = 0; w < window; w++) {
    const src = Math.max(start + w, 0) * features;
    out.set(rows.subarray(src, src + features), outOffset + w * features);
  }
}

/** One window per unit: its last `window` cycles (the standard C-MAPSS test protocol). */
export function lastWindows(norm: Normalizer, units: readonly CmapssUnit[], window: number): Float32Array {
  const F = norm.features;
  const out = new Float32Array(units.length * window * F);
  units.forEach((u, i) => {
    if (u.cycles < 1) throw new FeatureSpecError(`unit ${u.unit} is empty`);
    fillWindow(normalizeUnit(norm, u), F, u.cycles - 1, window, out, i * window * F);
  });
  return out;
}
