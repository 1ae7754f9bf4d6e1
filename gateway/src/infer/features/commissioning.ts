/**
 * Commissioning: when did the gateway first meet a machine, relative to the machine's life?
 *
 * A model with a per-device baseline (`inputs.baseline`) compares every row with the device's
 * first rows. Observed from its first cycle, that baseline is the machine's initial state; a
 * gateway installed next to a machine that has already run for years takes its baseline in
 * mid-life instead. A model with `inputs.baseline.origin` is trained for both (it sees the age at
 * which its baseline was taken); this module names the mode a device is in so the gateway can show
 * it per device.
 */
import type { ModelManifest } from "./manifest.ts";

/**
 * - `first-cycle`: the device's first frame carried an age ≤ `baseline.origin.firstCycleMax`;
 * - `mid-life`: it carried a higher age (or none: NaN); the baseline is the state at commissioning;
 * - `assumed-first-cycle`: the model has a baseline but no origin, so it assumes its first frame is
 *   the machine's first cycle (a mid-life device gets biased predictions: use a model with an origin);
 * - `not-needed`: the model has no baseline; predictions do not depend on when observation began.
 */
export type CommissioningMode = "first-cycle" | "mid-life" | "assumed-first-cycle" | "not-needed";

export interface Commissioning {
  mode: CommissioningMode;
  /** Raw value of the origin feature (the machine's age) in the device's first frame; NaN when none. */
  age: number;
  /** Rows in the device's baseline so far, and the rows it needs (0 without a baseline). */
  baselineRows: number;
  baselineNeeds: number;
}

/** The mode of a device whose first frame carried `firstAge` (raw origin feature value; NaN if unknown). */
export function commissioningMode(manifest: ModelManifest, firstAge: number): CommissioningMode {
  const bl = manifest.inputs.baseline;
  if (!bl) return "not-needed";
  if (!bl.origin) return "assumed-first-cycle";
  return firstAge <= bl.origin.firstCycleMax ? "first-cycle" : "mid-life";
}
