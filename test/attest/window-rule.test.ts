/**
 * RECEIPTS.md, "The input window": an auditor rebuilds the model input of an INFERENCE (or ALERT)
 * leaf from the device's frame receipts by taking the frames in arrival order and keeping each one
 * whose seq is greater than every seq kept before it. This runs the real gateway (ingest → store →
 * inference, FD001 model with its baseline deviations) with late frames, then follows that rule on
 * the stored log and feeds the kept frames to a fresh inference loop: every window hash must equal
 * the one committed in the gateway's leaves. The naive rule (every stored frame, late ones
 * included) must not.
 */
import { join } from "node:path";
import { afterAll, beforeAll, expect, it, vi } from "vitest";
import { REPO_ROOT } from "../../models/eval/cmapss.ts";
import { resolveConfig } from "../../gateway/src/config/config.ts";
import { Runtime } from "../../gateway/src/runtime.ts";
import { MemoryFrameStore } from "../../gateway/src/store/memory.ts";
import { isStoredLeaf, type StoredFrame, type StoredLeaf } from "../../gateway/src/store/types.ts";
import { decodeFrame, encodeFrame, FrameType, type DataFrame } from "../../gateway/src/protocol/frame.ts";
import { FakeClock } from "../../gateway/src/core/clock.ts";
import { decodeModelLeaf } from "../../gateway/src/core/leaf.ts";
import { CMAPSS_CHANNELS, loadCmapss, type CmapssUnit } from "../../gateway/src/infer/features/cmapss.ts";
import { InferenceLoop, type InferenceResult } from "../../gateway/src/infer/loop.ts";
import { loadModel, ModelRegistry } from "../../gateway/src/infer/registry.ts";
import { FD001_MANIFEST, row, tempModels } from "../infer/helpers.ts";

let registry: ModelRegistry;
let unit: CmapssUnit;

beforeAll(async () => {
  const model = await loadModel(FD001_MANIFEST);
  registry = new ModelRegistry([model]);
  unit = loadCmapss(join(REPO_ROOT, model.manifest.metrics.testFile))[0]!;
});
afterAll(() => registry.release());

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

/** Window hashes a fresh loop computes for `frames`, fed in the given order. */
async function windowHashes(frames: StoredFrame[]): Promise<string[]> {
  const results: InferenceResult[] = [];
  const loop = new InferenceLoop({
    registry,
    profileOf: () => "cmapss-fd001",
    clock: new FakeClock(),
    onResult: (r) => results.push(r),
  });
  for (const f of frames) {
    loop.onFrame(f, decodeFrame(f.raw) as DataFrame);
    await loop.tick();
  }
  return results.map((r) => hex(r.windowHash));
}

it("behavior: the kept frames of the arrival-ordered log rebuild every committed window (baseline included); all stored frames do not", async () => {
  const clock = new FakeClock();
  const store = new MemoryFrameStore({ groupCommit: { flushIntervalMs: 0 } });
  const rt = new Runtime({
    config: resolveConfig({
      http: { port: 0 }, // never the default 9479: another gateway may hold it
      dataDir: "/nonexistent-vigil-test",
      mqtt: { embedded: { enabled: false } },
      attest: { enabled: false },
      models: { dir: tempModels() },
      log: { statsIntervalMs: 0 },
    }),
    store,
    clock,
  });
  await rt.start();
  const t0 = clock.nowUs();
  const send = (raw: Buffer) => rt.ingest.handle({ frame: decodeFrame(raw), raw }, "serial");
  try {
    await send(
      encodeFrame({
        type: FrameType.Hello,
        deviceId: 7,
        bootId: 1,
        firmware: { major: 1, minor: 0, patch: 0 },
        profile: "cmapss-fd001",
        channels: CMAPSS_CHANNELS.map((name) => ({ name, unit: 0 })),
      }),
    );
    // Arrival order with late frames: 4 arrives after 5 (inside the 10-row baseline), 14 after 15.
    const order = [0, 1, 2, 3, 5, 4, 6, 7, 8, 9, 10, 11, 12, 13, 15, 14, 16, 17];
    for (const seq of order) {
      const ack = await send(
        encodeFrame({
          type: FrameType.Data,
          deviceId: 7,
          seq,
          timestampUs: t0 + seq * 1000,
          flags: 0,
          values: Float32Array.from(row(unit, seq)),
        }),
      );
      expect(ack).toMatchObject({ kind: "ack" });
    }
    // One inference per frame fed (stride 1, repeat-first padding): 16 of the 18.
    await vi.waitFor(() => expect(rt.leaves.inference).toBe(16), { timeout: 20_000, interval: 20 });
    await vi.waitFor(() => expect(store.stats().lastIndex).toBe(order.length + 16), { timeout: 20_000 });

    const frames: StoredFrame[] = [];
    const leaves: StoredLeaf[] = [];
    for await (const chunk of store.entryChunks(1, store.stats().lastIndex))
      for (const e of chunk) (isStoredLeaf(e) ? leaves : frames).push(e as never);
    expect(frames.map((f) => f.seq)).toEqual(order);
    const committed = leaves
      .filter((l) => l.kind === "inference")
      .map((l) => hex(decodeModelLeaf(l.preimage).inputWindowHash));
    expect(committed).toHaveLength(16);

    // RECEIPTS.md: keep each frame whose seq is greater than every seq kept before it.
    const kept: StoredFrame[] = [];
    for (const f of frames) if (kept.length === 0 || f.seq > kept[kept.length - 1]!.seq) kept.push(f);
    expect(kept.map((f) => f.seq)).toEqual([0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15, 16, 17]);
    expect(await windowHashes(kept)).toEqual(committed);

    // The naive rule (every stored frame, in seq order) gives other windows from the late frame on.
    const naive = await windowHashes([...frames].sort((a, b) => a.seq - b.seq));
    expect(naive.slice(0, 4)).toEqual(committed.slice(0, 4));
    expect(naive[4]).not.toBe(committed[4]);
  } finally {
    await rt.stop();
  }
});
