/**
 * The shadow lane's judgement (infer/loop.ts, lane.ts ShadowStats), which the model update agent
 * promotes on: every value of every output is checked against the manifest's range (a vector
 * output's later elements as much as its first), and windows whose run failed are counted. Real
 * inference loop and ONNX model; the candidate's session is wrapped to add a vector output or to
 * fail (an operator that fails on some inputs), since no committed model does either.
 */
import { afterEach, describe, expect, it } from "vitest";
import { loadModel, type LoadedModel } from "../../gateway/src/infer/registry.ts";
import type * as ort from "../../gateway/src/infer/ort.ts";
import { LoopRig, liveModel, releaseFolder } from "../updates/rig.ts";

let rig: LoopRig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

type Session = { run: (feeds: Record<string, ort.Tensor>) => Promise<Record<string, ort.Tensor>> };

async function candidate(
  profile: string,
  wrap: (run: Session["run"]) => Session["run"],
): Promise<LoadedModel> {
  const rel = releaseFolder({ profile, version: "3.1.0", precision: "float32" });
  const cand = await loadModel(rel.manifest);
  const sess = cand.session as unknown as Session;
  sess.run = wrap(sess.run.bind(sess));
  return cand;
}

async function shadowOf(profile: string, cand: LoadedModel) {
  const live = await liveModel(profile, "3.0.0");
  rig = new LoopRig(live, profile);
  for (let i = 0; i < 3; i++) await rig.feed();
  await rig.loop.addShadow(cand, live);
  for (let i = 0; i < 12; i++) await rig.feed();
  return rig.loop.lanes().find((l) => l.model === cand)!.shadow!;
}

describe("shadow judgement", () => {
  it("input: NaN and out-of-range values beyond the first element of a vector output are counted", async () => {
    const { Tensor } = await import("../../gateway/src/infer/ort.ts");
    const cand = await candidate("shadow-vec", (run) => async (feeds) => {
      const r = await run(feeds);
      const n = Object.values(feeds)[0]!.dims[0] as number;
      const p = new Float32Array(n * 3);
      for (let i = 0; i < n; i++) p.set([0.5, NaN, 7], i * 3); // element 0 looks fine
      return { ...r, probs: new Tensor("float32", p, [n, 3]) };
    });
    cand.manifest.outputs.push({ name: "probs", shape: ["batch", 3], min: 0, max: 1 } as never);
    (cand as unknown as { outputNames: string[] }).outputNames = [...cand.outputNames, "probs"];
    const s = await shadowOf("shadow-vec", cand);
    expect(s.windows).toBeGreaterThan(0);
    expect(s.nonFinite).toBe(s.windows);
    expect(s.outOfRange).toBe(s.windows);
    expect(s.failedWindows).toBe(0);
  }, 60_000);

  it("input: windows whose run failed are counted in the shadow's stats", async () => {
    let calls = 0;
    const cand = await candidate("shadow-fail", (run) => async (feeds) => {
      if (++calls % 2 === 0) throw new Error("Non-zero status code returned while running GRU node");
      return run(feeds);
    });
    const s = await shadowOf("shadow-fail", cand);
    expect(s.failedWindows).toBeGreaterThan(0);
    expect(s.nonFinite + s.outOfRange).toBe(0);
  }, 60_000);

  it("behavior: the cost judged is the median per window: one slow run (a new session's first, a GC pause) moves the mean, not the median", async () => {
    let calls = 0;
    const cand = await candidate("shadow-slow", (run) => async (feeds) => {
      if (++calls === 1) {
        const until = performance.now() + 200; // one 200 ms run, then the model's own speed
        while (performance.now() < until);
      }
      return run(feeds);
    });
    const s = await shadowOf("shadow-slow", cand);
    expect(s.windows).toBeGreaterThanOrEqual(5);
    expect(s.usPerWindow).toBeGreaterThan(3 * s.medianUsPerWindow); // the mean carries the slow run…
    expect(s.medianUsPerWindow).toBeLessThan(2_000); // …the median does not
    expect(s.liveMedianUsPerWindow).toBeGreaterThan(0);
  }, 60_000);
});
