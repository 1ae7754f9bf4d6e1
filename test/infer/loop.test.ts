// The inference loop against models/eval: same normalisation, same windows (byte for byte),
// same RUL; micro-batching; stale-window policy and backlog; provenance leaves.
import { createHash } from "node:crypto";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { REPO_ROOT, evaluateManifest, runBatched } from "../../models/eval/cmapss.ts";
import {
  CMAPSS_CHANNELS,
  CMAPSS_WIDTH,
  loadCmapss,
  type CmapssUnit,
} from "../../gateway/src/infer/features/cmapss.ts";
import { DeviceWindow } from "../../gateway/src/infer/window.ts";
import { fillWindow, lastWindows, normalizeUnit } from "../../gateway/src/infer/features/windows.ts";
import { createNormalizer } from "../../gateway/src/infer/features/normalize.ts";
import { inferenceLeafPreimage, leafFromPreimage } from "../../gateway/src/core/leaf.ts";
import { InferenceLoop, type LeafRecord, type InferenceResult } from "../../gateway/src/infer/loop.ts";
import { loadModel, ModelRegistry, type LoadedModel } from "../../gateway/src/infer/registry.ts";
import { FakeClock } from "../../gateway/src/core/clock.ts";
import { FD001_MANIFEST, frame, row, tempModels } from "./helpers.ts";

let model: LoadedModel;
let registry: ModelRegistry;
let units: CmapssUnit[];

beforeAll(async () => {
  model = await loadModel(FD001_MANIFEST);
  registry = new ModelRegistry([model]);
  units = loadCmapss(join(REPO_ROOT, model.manifest.metrics.testFile));
});
afterAll(() => registry.release());

/** What the gateway sees: the unit's values after the float32 trip through a DATA frame. */
function asFloat32(u: CmapssUnit): CmapssUnit {
  return { ...u, data: Float64Array.from(u.data, Math.fround) };
}

function newLoop(extra: Partial<ConstructorParameters<typeof InferenceLoop>[0]> = {}): {
  loop: InferenceLoop;
  results: InferenceResult[];
  leaves: LeafRecord[];
} {
  const results: InferenceResult[] = [];
  const leaves: LeafRecord[] = [];
  const loop = new InferenceLoop({
    registry,
    profileOf: () => "cmapss-fd001",
    clock: new FakeClock(),
    onResult: (r) => results.push(r),
    onLeaf: (l) => leaves.push(l),
    ...extra,
  });
  return { loop, results, leaves };
}

function feedUnit(loop: InferenceLoop, deviceId: number, u: CmapssUnit, upTo = u.cycles): void {
  for (let r = 0; r < upTo; r++) loop.onFrame(...frame(deviceId, r, row(u, r)));
}

const sha = (b: Float32Array): string =>
  createHash("sha256")
    .update(new Uint8Array(b.buffer, b.byteOffset, b.byteLength))
    .digest("hex");

describe("inference loop vs models/eval", () => {
  it("behavior: replayed C-MAPSS test units give models/eval's RUL, windows byte-identical", async () => {
    const n = 8;
    const { loop, results } = newLoop();
    for (let i = 0; i < n; i++) feedUnit(loop, 100 + i, units[i]!);
    await loop.tick();
    expect(results.map((r) => r.deviceId)).toEqual(Array.from({ length: n }, (_, i) => 100 + i));
    expect(loop.counters.batches).toBe(1);

    // Exact windows: models/eval on the same float32 values.
    const f32 = units.slice(0, n).map(asFloat32);
    const norm = createNormalizer(model.manifest);
    const W = model.manifest.inputs.window;
    const per = model.windowValues;
    const windows = lastWindows(norm, f32, W);
    const preds = await runBatched(model.session!, model.manifest, windows, n);
    results.forEach((r, i) => {
      expect(Buffer.from(r.windowHash).toString("hex")).toBe(sha(windows.subarray(i * per, (i + 1) * per)));
      expect(r.outputs[0]).toBeCloseTo(preds[i]!, 4);
      expect(r.window).toMatchObject({
        firstSeq: Math.max(0, units[i]!.cycles - W),
        lastSeq: units[i]!.cycles - 1,
        frames: Math.min(W, units[i]!.cycles),
      });
    });

    // And the published evaluation (float64 text values): float32 input rounding only, which
    // moves a prediction by at most a few hundredths of a cycle (0.052 seen with the v2 models).
    const ev = await evaluateManifest(FD001_MANIFEST, model.manifest, model.session!);
    results.forEach((r, i) => expect(Math.abs(r.outputs[0]! - ev.predictions[i]!)).toBeLessThan(0.1));
  });

  it("behavior: ticking after every frame yields every window of models/eval fillWindow, incl. repeat-first padding", async () => {
    const u = units[1]!;
    const { loop, results } = newLoop();
    const F = model.normalizer.features;
    const W = model.manifest.inputs.window;
    for (let r = 0; r < u.cycles; r++) {
      loop.onFrame(...frame(7, r, row(u, r)));
      await loop.tick();
    }
    expect(results).toHaveLength(u.cycles);
    expect(loop.counters.skippedWindows).toBe(0);
    const rows = normalizeUnit(createNormalizer(model.manifest), asFloat32(u));
    const out = new Float32Array(W * F);
    for (let e = 0; e < u.cycles; e++) {
      fillWindow(rows, F, e, W, out, 0);
      expect(Buffer.from(results[e]!.windowHash).toString("hex"), `window ending at ${e}`).toBe(sha(out));
    }
  });
});

describe("micro-batching and back-pressure", () => {
  it("behavior: N devices with ready windows → one onnxruntime run per tick (maxBatch splits)", async () => {
    const spy = vi.spyOn(model.session!, "run");
    try {
      const { loop, results } = newLoop();
      for (let d = 0; d < 50; d++) feedUnit(loop, d + 1, units[d]!, 3);
      await loop.tick();
      expect(spy).toHaveBeenCalledTimes(1);
      expect(results).toHaveLength(50);
      expect(loop.counters).toMatchObject({ windowsRun: 50, batches: 1, skippedWindows: 100, ticks: 1 });

      spy.mockClear();
      const small = newLoop({ maxBatch: 16 });
      for (let d = 0; d < 50; d++) feedUnit(small.loop, d + 1, units[d]!, 1);
      await small.loop.tick();
      expect(spy).toHaveBeenCalledTimes(4);
      expect(small.loop.counters).toMatchObject({ windowsRun: 50, batches: 4 });
      // The input buffer is reused: a second tick creates no new tensor for the same batch size.
      spy.mockClear();
      for (let d = 0; d < 16; d++) small.loop.onFrame(...frame(d + 1, 1, row(units[d]!, 1)));
      await small.loop.tick();
      expect(spy).toHaveBeenCalledTimes(1);
      const feeds = spy.mock.calls[0]![0] as Record<string, { data: Float32Array }>;
      const before = feeds.window!.data.buffer;
      for (let d = 0; d < 16; d++) small.loop.onFrame(...frame(d + 1, 2, row(units[d]!, 2)));
      await small.loop.tick();
      expect((spy.mock.calls[1]![0] as Record<string, { data: Float32Array }>).window!.data.buffer).toBe(
        before,
      );
    } finally {
      spy.mockRestore();
    }
  });

  it("behavior: stale windows: only the newest window per device runs, older ones are counted as skipped", async () => {
    const { loop, results } = newLoop();
    feedUnit(loop, 1, units[0]!, 10);
    feedUnit(loop, 2, units[1]!, 3);
    expect(loop.pending).toBe(2);
    await loop.tick();
    expect(results.map((r) => [r.deviceId, r.window.lastSeq])).toEqual([
      [1, 9],
      [2, 2],
    ]);
    expect(loop.counters).toMatchObject({ windowsReady: 13, windowsRun: 2, skippedWindows: 11 });
    await loop.tick();
    expect(loop.counters.ticks).toBe(2);
    expect(results).toHaveLength(2);
  });

  it("behavior: with a windowBacklog every waiting window runs, oldest first, one per device and tick, byte-identical to models/eval; beyond the backlog the oldest are skipped and counted", async () => {
    const u = units[0]!;
    const { loop, results } = newLoop({ windowBacklog: 8 });
    feedUnit(loop, 1, u, 10); // 10 windows ready: the 2 oldest are past the backlog
    feedUnit(loop, 2, units[1]!, 3);
    await loop.drain();
    const of = (d: number): number[] => results.filter((r) => r.deviceId === d).map((r) => r.window.lastSeq);
    expect(of(1)).toEqual([2, 3, 4, 5, 6, 7, 8, 9]);
    expect(of(2)).toEqual([0, 1, 2]);
    expect(loop.counters).toMatchObject({ windowsReady: 13, windowsRun: 11, skippedWindows: 2 });
    expect(loop.counters.batches).toBe(8); // device 2's windows share device 1's first three runs
    const F = model.normalizer.features;
    const W = model.manifest.inputs.window;
    const rows = normalizeUnit(createNormalizer(model.manifest), asFloat32(u));
    const out = new Float32Array(W * F);
    for (const r of results.filter((x) => x.deviceId === 1)) {
      fillWindow(rows, F, r.window.lastSeq, W, out, 0);
      expect(Buffer.from(r.windowHash).toString("hex"), `window ending at ${r.window.lastSeq}`).toBe(
        sha(out),
      );
    }
  });

  it("behavior: a waiting window whose rows the ring has overwritten (withheld windows in between) is skipped, never run on wrong rows", () => {
    const u = units[0]!;
    const dev = new DeviceWindow(1, model, "cmapss-fd001", 2);
    const W = model.manifest.inputs.window;
    const cap = W + 2 - 1; // window + backlog × stride − 1
    expect(dev.push(row(u, 0), 0, 0, 0)).toBe(true); // repeat-first padding: ready at once
    // An outage of most used sensors: every following window is withheld for data quality.
    const outage = (r: number): Float64Array => {
      const v = Float64Array.from(row(u, r));
      for (const f of model.manifest.inputs.features.slice(0, 10)) v[CMAPSS_CHANNELS.indexOf(f)] = NaN;
      return v;
    };
    for (let r = 1; r < cap; r++) expect(dev.push(outage(r), r, 0, 0)).toBe(false);
    expect(dev.ready).toBe(true); // row 0 is still in the ring
    dev.push(outage(cap), cap, 0, 0); // overwrites row 0
    expect(dev.ready).toBe(false);
    expect(dev.readyWindows).toBe(1);
    expect(dev.takeSkipped()).toBe(1);
    expect(dev.readyWindows).toBe(0);
  });

  it("behavior: frames arriving while a run is in flight go to the next tick; overlapping ticks coalesce", async () => {
    const { loop, results } = newLoop();
    feedUnit(loop, 1, units[0]!, 1);
    const first = loop.tick();
    loop.onFrame(...frame(1, 1, row(units[0]!, 1)));
    const second = loop.tick(); // coalesced into the running tick, then runs again
    expect(second).toBe(first);
    await first;
    // The coalesced second run starts when the first ends.
    await vi.waitFor(() => expect(results.map((r) => r.window.lastSeq)).toEqual([0, 1]));
    expect(loop.counters.overrunTicks).toBe(1);
  });

  it("behavior: frames of devices without profile, without model or with the wrong channel count are counted, not run", async () => {
    const profiles = new Map<number, string>([
      [1, "cmapss-fd001"],
      [2, "no-such-profile"],
    ]);
    const { loop, results } = newLoop({ profileOf: (id) => profiles.get(id) });
    // a plausible engine frame (an all-zero frame is out of range and withheld by the data-quality stage)
    loop.onFrame(...frame(1, 0, row(units[0]!, 0)));
    loop.onFrame(...frame(1, 1, new Float32Array(12)));
    loop.onFrame(...frame(2, 0, new Float32Array(CMAPSS_WIDTH)));
    loop.onFrame(...frame(3, 0, new Float32Array(CMAPSS_WIDTH)));
    await loop.tick();
    expect(results).toHaveLength(1);
    expect(loop.counters).toMatchObject({
      framesSeen: 4,
      framesUnmodelled: 2,
      framesSchemaMismatch: 1,
      devices: 1,
    });
  });

  it("error: a device whose HELLO channel names differ from the manifest is not run, and is re-checked on a new HELLO", async () => {
    const announced = new Map<number, readonly string[]>();
    const { loop, results } = newLoop({ channelsOf: (id) => announced.get(id) });
    const good = [...model.manifest.inputs.channels];
    const swapped = [...good];
    [swapped[3], swapped[4]] = [swapped[4]!, swapped[3]!]; // same count, s1 and s2 swapped
    announced.set(1, good);
    announced.set(2, swapped);
    loop.onFrame(...frame(1, 0, row(units[0]!, 0)));
    loop.onFrame(...frame(2, 0, row(units[1]!, 0)));
    await loop.tick();
    expect(results.map((r) => r.deviceId)).toEqual([1]);
    expect(loop.counters).toMatchObject({ framesSeen: 2, framesSchemaMismatch: 1 });
    // The device re-announces itself with the right names: its frames run again.
    announced.set(2, [...good]);
    loop.onFrame(...frame(2, 1, row(units[1]!, 1)));
    await loop.tick();
    expect(results.map((r) => r.deviceId)).toEqual([1, 2]);
    expect(loop.counters.framesSchemaMismatch).toBe(1);
  });

  it("behavior: stride and padding 'none' from the manifest", async () => {
    const dir = tempModels([
      (m) => {
        m.inputs.stride = 5;
        m.inputs.padding = { policy: "none" };
      },
    ]);
    const reg = await ModelRegistry.load(dir);
    try {
      const results: InferenceResult[] = [];
      const loop = new InferenceLoop({
        registry: reg,
        profileOf: () => "cmapss-v2",
        onResult: (r) => results.push(r),
      });
      const W = reg.models[0]!.manifest.inputs.window;
      const u = units.find((x) => x.cycles >= W + 30)!;
      for (let r = 0; r < W + 20; r++) {
        loop.onFrame(...frame(1, r, row(u, r)));
        await loop.tick();
      }
      // Windows end at rows W-1, W+4, W+9, W+14, W+19.
      expect(results.map((r) => r.window.lastSeq)).toEqual([W - 1, W + 4, W + 9, W + 14, W + 19]);
      const rows = normalizeUnit(createNormalizer(reg.models[0]!.manifest), asFloat32(u));
      const F = reg.models[0]!.normalizer.features;
      const out = new Float32Array(W * F);
      fillWindow(rows, F, W + 4, W, out, 0);
      expect(Buffer.from(results[1]!.windowHash).toString("hex")).toBe(sha(out));
      // With stride 5 the newest window stays intact while 4 newer rows are already in the ring.
      results.length = 0;
      for (let r = W + 20; r < W + 29; r++) loop.onFrame(...frame(1, r, row(u, r)));
      await loop.tick();
      fillWindow(rows, F, W + 24, W, out, 0);
      expect(results.map((r) => r.window.lastSeq)).toEqual([W + 24]);
      expect(Buffer.from(results[0]!.windowHash).toString("hex")).toBe(sha(out));
    } finally {
      await reg.release();
    }
  });
});

describe("stop", () => {
  // The runtime stops the loop first so that its last results reach the alert service before
  // that publishes held health and `offline` (runtime.ts STOP_ORDER). A clean stop with 1,500
  // devices lost 70 final healths in 2 of about 10 CI runs: stop() returned while the tick that
  // followed a coalesced one was still running, and windows queued by it never ran.
  it("behavior: stop() runs every window queued before it, including a device's backlog behind the running tick", async () => {
    const { loop, results } = newLoop({ windowBacklog: 8 });
    for (let d = 1; d <= 3; d++) feedUnit(loop, d, units[d]!, 3); // three windows each
    loop.start(); // schedules a tick: one window per device and tick
    await loop.stop();
    for (let d = 1; d <= 3; d++)
      expect(results.filter((r) => r.deviceId === d).map((r) => r.window.lastSeq)).toEqual([0, 1, 2]);
    expect(loop.pending).toBe(0);
  });

  it("behavior: stop() during a running tick waits for the ticks that follow it", async () => {
    const { loop, results } = newLoop({ windowBacklog: 8 });
    feedUnit(loop, 1, units[0]!, 4);
    loop.start();
    const running = loop.tick(); // runs the first window; the others are queued behind it
    await loop.stop();
    await running;
    expect(results.map((r) => r.window.lastSeq)).toEqual([0, 1, 2, 3]);
  });

  it("behavior: stop() waits for a warm-up in flight and runs the frames it held", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const { loop, results } = newLoop({
      history: {
        read: async () => {
          await gate;
          return { first: [], last: [] };
        },
      },
    });
    loop.start();
    feedUnit(loop, 1, units[0]!, 2);
    const stopped = loop.stop();
    release();
    await stopped;
    expect(results.map((r) => r.window.lastSeq)).toEqual([1]); // newest window (backlog 1)
  });

  it("behavior: frames that arrive after stop() are left to the store (the next start warms from them)", async () => {
    const { loop, results } = newLoop();
    feedUnit(loop, 1, units[0]!, 1);
    await loop.stop();
    expect(results).toHaveLength(1);
    loop.onFrame(...frame(1, 1, row(units[0]!, 1)));
    expect(loop.pending).toBe(0);
    await loop.stop();
    expect(results).toHaveLength(1);
  });
});

describe("provenance", () => {
  it("behavior: every result becomes an INFERENCE leaf committing to model sha256 and window sha256", async () => {
    const { loop, results, leaves } = newLoop();
    feedUnit(loop, 42, units[3]!, 45);
    await loop.tick();
    expect(leaves).toHaveLength(1);
    const r = results[0]!;
    const l = leaves[0]!;
    expect(l.kind).toBe("inference");
    expect(Buffer.from(model.modelHash).toString("hex")).toBe(model.manifest.model.sha256);
    const pre = inferenceLeafPreimage({
      modelHash: model.modelHash,
      inputWindowHash: r.windowHash,
      deviceId: 42,
      timestampUs: r.window.lastTimestampUs,
      outputs: r.allOutputs,
    });
    expect(Buffer.from(l.preimage)).toEqual(Buffer.from(pre));
    expect(Buffer.from(l.hash)).toEqual(Buffer.from(leafFromPreimage(pre)));
    expect(Buffer.from(r.inferenceLeaf)).toEqual(Buffer.from(l.hash));
  });
});
