/**
 * A shadow's batches are sized by its cost so far (lane.ts shadowBatchSize): a candidate far
 * slower than the live model runs one window per batch, so the thread that ingest shares (inline
 * runner) is never held for a whole batch of its windows, while a candidate as fast as the live
 * model keeps the live lane's batches. Real inference loop and ONNX model; the candidate's
 * session is wrapped to be slow (a busy wait per window), as no committed model is.
 */
import { afterEach, describe, expect, it } from "vitest";
import { SHADOW_BATCH_BUDGET_US } from "../../gateway/src/infer/lane.ts";
import { loadModel } from "../../gateway/src/infer/registry.ts";
import type * as ort from "../../gateway/src/infer/ort.ts";
import { LoopRig, liveModel, releaseFolder } from "../updates/rig.ts";

let rig: LoopRig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

type Run = (feeds: Record<string, ort.Tensor>) => Promise<Record<string, ort.Tensor>>;

/** Shadows FD001 with a candidate costing `msPerWindow` more per window; returns each run's batch size. */
async function shadowBatches(profile: string, msPerWindow: number, devices: number[]) {
  const live = await liveModel(profile, "3.0.0");
  const cand = await loadModel(releaseFolder({ profile, version: "3.1.0", precision: "float32" }).manifest);
  const sizes: number[] = [];
  const sess = cand.session as unknown as { run: Run };
  const run = sess.run.bind(sess);
  sess.run = async (feeds) => {
    const n = Object.values(feeds)[0]!.dims[0] as number;
    sizes.push(n);
    const until = performance.now() + n * msPerWindow;
    while (performance.now() < until);
    return run(feeds);
  };
  rig = new LoopRig(live, profile, devices);
  for (let i = 0; i < 3; i++) await rig.feed();
  const liveRun = (): number => rig!.loop.lanes().find((l) => l.model === live)!.windowsRun;
  const live0 = liveRun();
  await rig.loop.addShadow(cand, live);
  for (let i = 0; i < 8; i++) await rig.feed();
  const shadow = rig.loop.lanes().find((l) => l.model === cand)!.shadow!;
  return { sizes, shadow, liveWindows: liveRun() - live0 };
}

const DEVICES = Array.from({ length: 12 }, (_, i) => 40 + i);

describe("shadow batch size", () => {
  it("behavior: a candidate far slower than the live model runs one window per batch (its first batch, too), and runs every window", async () => {
    // 30 ms a window: two would pass the 50 ms budget, so every batch is one window.
    const { sizes, shadow, liveWindows } = await shadowBatches("shadow-batch-slow", 30, DEVICES);
    expect(SHADOW_BATCH_BUDGET_US).toBe(50_000);
    expect(sizes.length).toBeGreaterThan(DEVICES.length);
    expect(Math.max(...sizes)).toBe(1);
    // Nothing is lost for it: the shadow ran the windows the live lane ran in the same ticks.
    expect(shadow.windows).toBe(liveWindows);
  }, 60_000);

  it("behavior: a candidate as fast as the live model gets the live lane's batches after its first window", async () => {
    const { sizes } = await shadowBatches("shadow-batch-fast", 0, DEVICES);
    expect(sizes[0]).toBe(1); // its cost is not known before its first run
    expect(Math.max(...sizes)).toBe(DEVICES.length);
  }, 60_000);
});
