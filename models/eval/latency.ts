/**
 * Per-call latency of a model session in ms (median of `runs` after 20 warm-up runs), on a
 * deterministic input batch shaped by the manifest. Shared by the model evaluation scripts.
 */
import { performance } from "node:perf_hooks";
import * as ort from "../../gateway/src/infer/ort.ts";
import { tensorWidth, type ModelManifest } from "../../gateway/src/infer/features/manifest.ts";

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

export async function latencyMs(
  session: ort.InferenceSession,
  m: ModelManifest,
  batch: number,
  runs: number,
): Promise<number> {
  const { window, tensor } = m.inputs;
  const width = tensorWidth(m);
  const data = new Float32Array(batch * window * width).map((_, i) => Math.sin(i) * 0.5);
  const input = new ort.Tensor("float32", data, [batch, window, width]);
  for (let i = 0; i < 20; i++) await session.run({ [tensor]: input });
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await session.run({ [tensor]: input });
    times.push(performance.now() - t0);
  }
  return median(times);
}
