/**
 * The values a probe device sends, derived from its model's manifest so that the gateway's
 * data-quality stage accepts them and every window is run (a probe whose windows are all withheld
 * measures an idle model, not inference).
 *
 * A model's channels are not its features: C-MAPSS manifests list 25 raw channels (operating
 * settings, 21 sensors, the cycle counter) of which 15 are features, and `normalization.mean` /
 * `std` are indexed by feature within a regime. So each channel gets:
 * - a feature: the regime-0 mean plus one standard deviation of slow sine (in range, never
 *   stuck, no spikes; for a model whose channels are its features, such as the rotating one,
 *   what the probe always sent); the baseline's origin (the cycle counter) counts up from 1;
 * - a regime channel that is not a feature: regime 0's centroid (every row in one regime);
 * - any other channel: 0 (the model does not read it).
 */
import type { ModelManifest } from "../../gateway/src/infer/features/manifest.ts";

/** Fills `out` (one value per `manifest.inputs.channels`) for device `device` at step `step`. */
export function probeRow(manifest: ModelManifest, device: number, step: number, out: Float32Array): void {
  const { channels, features } = manifest.inputs;
  const n = manifest.normalization;
  const mean = n.mean[0]!;
  const std = n.std[0]!;
  const cycle = manifest.inputs.baseline?.origin?.feature;
  channels.forEach((name, c) => {
    const f = features.indexOf(name);
    const r = n.regime.channels.indexOf(name);
    if (name === cycle) out[c] = step + 1;
    else if (f >= 0) out[c] = mean[f]! + std[f]! * Math.sin(step * 0.1 + f + device);
    else if (r >= 0) out[c] = n.regime.centroids[0]![r]!;
    else out[c] = 0;
  });
}
