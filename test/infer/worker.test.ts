// Runners (worker.ts): the worker-thread session gives the inline session's results bit for bit
// and leaves the main-thread session alone; the tick policy splits a tick into maxBatch calls.
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { REPO_ROOT } from "../../models/eval/cmapss.ts";
import { loadCmapss, type CmapssUnit } from "../../gateway/src/infer/features/cmapss.ts";
import { InferenceLoop, type LeafRecord, type InferenceResult } from "../../gateway/src/infer/loop.ts";
import { loadModel, ModelRegistry, type LoadedModel } from "../../gateway/src/infer/registry.ts";
import { InlineRunner, WorkerRunner, type BatchRunner } from "../../gateway/src/infer/worker.ts";
import { FakeClock } from "../../gateway/src/core/clock.ts";
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

function run(
  runner: "inline" | "worker",
  devices: number,
  extra: Partial<ConstructorParameters<typeof InferenceLoop>[0]> = {},
): { loop: InferenceLoop; results: InferenceResult[]; leaves: LeafRecord[]; feed: () => void } {
  const results: InferenceResult[] = [];
  const leaves: LeafRecord[] = [];
  const loop = new InferenceLoop({
    registry,
    profileOf: () => "cmapss-fd001",
    clock: new FakeClock(),
    onResult: (r) => results.push(r),
    onLeaf: (l) => leaves.push(l),
    runner,
    ...extra,
  });
  const feed = (): void => {
    for (let d = 0; d < devices; d++) {
      const u = units[d % units.length]!;
      for (let r = 0; r < u.cycles; r++) loop.onFrame(...frame(1 + d, r, row(u, r)));
    }
  };
  return { loop, results, leaves, feed };
}

describe("batch runners", () => {
  it("behavior: the worker runner gives the inline runner's outputs, window hashes and leaves exactly", async () => {
    const inline = run("inline", 12);
    inline.feed();
    await inline.loop.tick();
    const worker = run("worker", 12);
    const spy = vi.spyOn(model.session!, "run");
    try {
      await worker.loop.ready();
      worker.feed();
      await worker.loop.tick();
      // The main-thread session is not used: the model runs in the worker.
      expect(spy).not.toHaveBeenCalled();
    } finally {
      spy.mockRestore();
      await worker.loop.close();
    }
    expect(worker.results).toHaveLength(12);
    expect(worker.loop.counters).toMatchObject({ windowsRun: 12, batches: 1, runErrors: 0 });
    worker.results.forEach((r, i) => {
      const ref = inline.results[i]!;
      expect(r.deviceId).toBe(ref.deviceId);
      expect(Array.from(r.allOutputs)).toEqual(Array.from(ref.allOutputs));
      expect(Buffer.from(r.windowHash).equals(Buffer.from(ref.windowHash))).toBe(true);
      expect(Buffer.from(r.inferenceLeaf).equals(Buffer.from(ref.inferenceLeaf))).toBe(true);
    });
    expect(worker.leaves.map((l) => Buffer.from(l.hash).toString("hex"))).toEqual(
      inline.leaves.map((l) => Buffer.from(l.hash).toString("hex")),
    );
  });

  it("behavior: a closed worker fails its runs (counted, windows lost), and close is idempotent", async () => {
    const errors: unknown[] = [];
    const w = run("worker", 3, { onError: (e) => errors.push(e) });
    await w.loop.close();
    await w.loop.close();
    w.loop.start(); // a stopped loop feeds no frames; started again, its runs reach the closed worker
    w.feed();
    await w.loop.tick();
    expect(w.results).toHaveLength(0);
    expect(w.loop.counters).toMatchObject({ runErrors: 1, failedWindows: 3, windowsRun: 0 });
    expect(String(errors[0])).toMatch(/closed/);
  });

  it("error: a worker that dies while idle (out of memory, a native crash) fails the next run at once instead of hanging; the run after the respawn wait starts a new worker with the same outputs", async () => {
    const r = new WorkerRunner(model, 4);
    const post = vi.spyOn(Worker.prototype, "postMessage");
    try {
      r.input.fill(0.5, 0, model.windowValues);
      const first = (await r.run(1)).map((o) => Array.from(o));
      const worker = post.mock.contexts[0] as Worker;
      await worker.terminate();
      await expect(r.run(1)).rejects.toThrow(/inference worker exited/);
      // Due 1 s after the death: until then the same error, then a new worker answers.
      await vi.waitFor(async () => expect((await r.run(1)).map((o) => Array.from(o))).toEqual(first), {
        timeout: 10_000,
        interval: 100,
      });
      expect(r.respawns).toBe(1);
    } finally {
      post.mockRestore();
      await r.close();
    }
  });

  it("error: a worker whose session cannot be created rejects `ready`", async () => {
    const broken: LoadedModel = { ...model, bytes: new Uint8Array([1, 2, 3, 4]) };
    const r = new WorkerRunner(broken, 4);
    await expect(r.ready).rejects.toThrow(/the inference worker could not load it/);
    await r.close();
  });

  it("behavior: a model loaded with deferSession has no main-thread session and runs in the worker with the same outputs", async () => {
    const deferred = await loadModel(FD001_MANIFEST, { deferSession: true });
    expect(deferred.session).toBeUndefined();
    expect(deferred.sha256).toBe(model.sha256);
    const inline = run("inline", 5);
    inline.feed();
    await inline.loop.tick();
    const results: InferenceResult[] = [];
    const loop = new InferenceLoop({
      registry: new ModelRegistry([deferred]),
      profileOf: () => "cmapss-fd001",
      clock: new FakeClock(),
      onResult: (r) => results.push(r),
      runner: "worker",
    });
    try {
      await loop.ready();
      for (let d = 0; d < 5; d++) {
        const u = units[d % units.length]!;
        for (let r = 0; r < u.cycles; r++) loop.onFrame(...frame(1 + d, r, row(u, r)));
      }
      await loop.tick();
    } finally {
      await loop.close();
    }
    expect(results.map((r) => Array.from(r.allOutputs))).toEqual(
      inline.results.map((r) => Array.from(r.allOutputs)),
    );
  });

  it("behavior: the worker runner reports its session.run() time apart from the call's, which adds the message round trip (the cost a shadow is judged by)", async () => {
    const r = new WorkerRunner(model, 8);
    try {
      await r.ready;
      expect(r.lastRunUs).toBeUndefined();
      const t0 = performance.now();
      await r.run(4);
      const wallUs = (performance.now() - t0) * 1000;
      expect(r.lastRunUs).toBeGreaterThan(0);
      expect(r.lastRunUs!).toBeLessThanOrEqual(wallUs);
    } finally {
      await r.close();
    }
    const inline: BatchRunner = new InlineRunner(model, 8);
    expect(inline.lastRunUs).toBeUndefined(); // inline: the call's time is it
  });

  it("error: a deferred model whose manifest names an input the file lacks fails in the worker, naming it", async () => {
    const deferred = await loadModel(FD001_MANIFEST, { deferSession: true });
    const wrong: LoadedModel = {
      ...deferred,
      manifest: { ...deferred.manifest, inputs: { ...deferred.manifest.inputs, tensor: "no_such_input" } },
    };
    const r = new WorkerRunner(wrong, 4);
    await expect(r.ready).rejects.toThrow(/has no input "no_such_input"/);
    await r.close();
  });

  it("error: the inline runner of a model without a main-thread session fails its run with a typed error", async () => {
    const deferred = await loadModel(FD001_MANIFEST, { deferSession: true });
    const r = new InlineRunner(deferred, 4);
    await expect(r.run(1)).rejects.toMatchObject({ code: "MODEL_RUN_FAILED" });
  });

  it("behavior: tick policy — one tick runs every ready window in calls of at most maxBatch (default 128)", async () => {
    const p = run("inline", 300);
    const spy = vi.spyOn(model.session!, "run");
    try {
      p.feed();
      await p.loop.tick();
      const sizes = spy.mock.calls.map((c) => {
        const t = (c[0] as Record<string, { dims: readonly number[] }>)[model.manifest.inputs.tensor]!;
        return t.dims[0];
      });
      expect(sizes).toEqual([128, 128, 44]);
    } finally {
      spy.mockRestore();
    }
    expect(p.loop.counters).toMatchObject({ ticks: 1, batches: 3, windowsRun: 300 });
    expect(p.results.map((r) => r.deviceId)).toEqual(Array.from({ length: 300 }, (_, i) => i + 1));
  });
});
