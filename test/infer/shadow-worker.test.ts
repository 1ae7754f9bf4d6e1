/**
 * A shadow lane in a worker (loop.addShadow's `runner`), as the update agent runs every candidate:
 * the candidate needs no session on the main thread, runs every window its live lane runs, keeps
 * its worker when promoted, and a stop while its worker loads it does not wait for the load. Real
 * loop, real ONNX model. (Its cost per window is the worker's own measure of `session.run()`:
 * test/infer/worker.test.ts.)
 */
import { afterEach, describe, expect, it } from "vitest";
import { loadModel } from "../../gateway/src/infer/registry.ts";
import { LoopRig, liveModel, releaseFolder } from "../updates/rig.ts";

let rig: LoopRig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

async function deferred(profile: string) {
  const live = await liveModel(profile, "3.0.0");
  const rel = releaseFolder({ profile, version: "3.1.0", precision: "float32" });
  const cand = await loadModel(rel.manifest, { deferSession: true });
  rig = new LoopRig(live, profile);
  for (let i = 0; i < 3; i++) await rig.feed();
  return { live, cand, rig };
}

describe("shadow lane in a worker", () => {
  it("behavior: a candidate with no main-thread session runs in its worker beside an inline live lane, its cost measured in the worker", async () => {
    const { live, cand, rig } = await deferred("shadow-worker-run");
    expect(cand.session).toBeUndefined();
    await rig.loop.addShadow(cand, live, "worker");
    for (let i = 0; i < 6; i++) await rig.feed();
    const lanes = rig.loop.lanes();
    expect(lanes.map((l) => [l.role, l.runner])).toEqual([
      ["live", "inline"],
      ["shadow", "worker"],
    ]);
    const s = lanes[1]!.shadow!;
    expect(s.windows).toBe(lanes[0]!.windowsRun - 9); // every window the live lane ran since
    expect(s.nonFinite + s.outOfRange + s.failedWindows).toBe(0);
    expect(s.maxAbsDiff).toBeLessThan(1e-3); // the same model: the same outputs
    expect(s.medianUsPerWindow).toBeGreaterThan(0);
    // Promoted, it keeps its worker.
    await rig.loop.promote(cand);
    expect(rig.loop.lanes().find((l) => l.model === cand)!.runner).toBe("worker");
  }, 60_000);

  it("behavior: a stop while the worker loads the candidate rejects at once with its reason and adds no lane", async () => {
    const { live, cand, rig } = await deferred("shadow-worker-abort");
    const ac = new AbortController();
    const adding = rig.loop.addShadow(cand, live, "worker", ac.signal);
    ac.abort(new Error("stopping"));
    await expect(adding).rejects.toThrow("stopping");
    expect(rig.loop.lanes().map((l) => l.role)).toEqual(["live"]);
    // Already aborted: refused before a worker starts.
    await expect(rig.loop.addShadow(cand, live, "worker", ac.signal)).rejects.toThrow("stopping");
  }, 60_000);
});
