// The data-quality stage inside the real inference loop (real FD001 model, real onnxruntime): frames
// carrying NaN/Inf or absurd values, as ingest hands them over (frames with bad channels are stored and
// acknowledged, protocol revision 1.2).
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../../models/eval/cmapss.ts";
import { CMAPSS_CHANNELS, loadCmapss, type CmapssUnit } from "../../gateway/src/infer/features/cmapss.ts";
import { InferenceLoop, type InferenceResult } from "../../gateway/src/infer/loop.ts";
import { loadModel, ModelRegistry, type LoadedModel } from "../../gateway/src/infer/registry.ts";
import { FakeClock } from "../../gateway/src/core/clock.ts";
import { W_OK } from "../../gateway/src/infer/features/quality.ts";
import { FD001_MANIFEST, frame, row } from "./helpers.ts";

let model: LoadedModel;
let registry: ModelRegistry;
let units: CmapssUnit[];

beforeAll(async () => {
  model = await loadModel(FD001_MANIFEST);
  registry = new ModelRegistry([model]);
  units = loadCmapss(join(REPO_ROOT, model.manifest.metrics.testFile));
});
afterAll(() => registry.release());

async function run(
  edit: (values: Float64Array, r: number) => void,
  n = 4,
): Promise<{ results: InferenceResult[]; loop: InferenceLoop }> {
  const results: InferenceResult[] = [];
  const loop = new InferenceLoop({
    registry,
    profileOf: () => "cmapss-fd001",
    clock: new FakeClock(),
    onResult: (r) => results.push(r),
  });
  for (let i = 0; i < n; i++) {
    const u = units[i]!;
    for (let r = 0; r < u.cycles; r++) {
      const v = Float64Array.from(row(u, r));
      edit(v, r);
      loop.onFrame(...frame(10 + i, r, v));
    }
  }
  await loop.tick();
  return { results, loop };
}

const ch = (name: string): number => CMAPSS_CHANNELS.indexOf(name);

describe("data quality in the inference loop", () => {
  it("NaN/Inf in channels the model does not use never cost a prediction nor change it", async () => {
    const clean = await run(() => undefined);
    const dirty = await run((v, r) => {
      v[ch("setting3")] = NaN; // FD001 has one operating regime: the settings are unused
      v[ch("s1")] = r % 2 ? Infinity : NaN; // not a feature
    });
    expect(dirty.results.map((r) => r.outputs[0])).toEqual(clean.results.map((r) => r.outputs[0]));
    expect(dirty.results.map((r) => Buffer.from(r.windowHash).toString("hex"))).toEqual(
      clean.results.map((r) => Buffer.from(r.windowHash).toString("hex")),
    );
  });

  it("missing and absurd values of used features are imputed: finite RUL close to the clean one", async () => {
    const clean = await run(() => undefined);
    const dirty = await run((v, r) => {
      if (r % 7 === 3) v[ch("s7")] = NaN;
      if (r % 11 === 5) v[ch("s8")] = 3e38;
    });
    expect(dirty.results.length).toBe(clean.results.length);
    dirty.results.forEach((r, i) => {
      expect(Number.isFinite(r.outputs[0])).toBe(true);
      expect(Math.abs(r.outputs[0]! - clean.results[i]!.outputs[0]!)).toBeLessThan(5);
      expect(r.window.imputed).toBeGreaterThan(0);
    });
    for (const id of [10, 11, 12, 13]) {
      const dev = dirty.loop.liveWindow(id)!;
      expect(dev.qualityState.faulted.every((f) => f === 0)).toBe(true);
    }
  });

  it("a stuck sensor is reported as a sensor fault of that channel, and predictions go on", async () => {
    const { results, loop } = await run((v, r) => {
      if (r >= 5) v[ch("s11")] = 47.5;
    }, 1);
    const dev = loop.liveWindow(10)!;
    const u = dev.quality.names.indexOf("s11");
    expect(dev.qualityState.faulted[u]).toBe(1);
    expect(dev.quality.names.filter((_, k) => dev.qualityState.faulted[k] === 1)).toEqual(["s11"]);
    expect(results).toHaveLength(1);
  });

  it("frames lost in transit (a seq gap) raise no sensor fault: the cycle counter moved with the frames the device sent", async () => {
    const u = units.find((x) => x.cycles >= 200)!;
    const loop = new InferenceLoop({ registry, profileOf: () => "cmapss-fd001", clock: new FakeClock() });
    // Frames 50..149 never reached the gateway.
    for (let r = 0; r < u.cycles; r++) if (r < 50 || r >= 150) loop.onFrame(...frame(20, r, row(u, r)));
    await loop.tick();
    const dev = loop.liveWindow(20)!;
    expect(dev.quality.names.filter((_, k) => dev.qualityState.faulted[k] === 1)).toEqual([]);
    expect(loop.counters.sensorFaultsRaised).toBe(0);
  });

  it("an outage of most sensors withholds the window: no prediction for it, a data-quality verdict", async () => {
    const u = units[0]!;
    const { results, loop } = await run((v, r) => {
      if (r === u.cycles - 1) for (const f of model.manifest.inputs.features.slice(0, 10)) v[ch(f)] = NaN;
    }, 1);
    // the newest window (ending at the outage) is withheld; the one before it, ready and untaken, still
    // runs (stale-window policy: it was valid), so no prediction covers the outage frame
    expect(results.map((r) => r.window.lastSeq)).toEqual([u.cycles - 2]);
    const dev = loop.liveWindow(10)!;
    expect(dev.withheldLast).toBe(true);
    expect(dev.windowVerdict).not.toBe(W_OK);
  });
});
