// Warm start: after a gateway restart, a device's window and baseline continue from the frame log,
// so the first results equal those of a gateway that never stopped (real MemoryFrameStore index).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../../models/eval/cmapss.ts";
import { CMAPSS_CHANNELS, loadCmapss, type CmapssUnit } from "../../gateway/src/infer/features/cmapss.ts";
import { storeHistory, type DeviceHistory, type HistoryRow } from "../../gateway/src/infer/history.ts";
import { InferenceLoop, type InferenceResult } from "../../gateway/src/infer/loop.ts";
import type { SensorFaultTransition } from "../../gateway/src/infer/quality-events.ts";
import {
  loadModel,
  ModelRegistry,
  releaseModel,
  type LoadedModel,
} from "../../gateway/src/infer/registry.ts";
import { encodeFrame, FrameType } from "../../gateway/src/protocol/frame.ts";
import { LevelFrameStore } from "../../gateway/src/store/level.ts";
import { MemoryFrameStore } from "../../gateway/src/store/memory.ts";
import type { FrameStore } from "../../gateway/src/store/types.ts";
import { FD001_MANIFEST, T0_US, frame, row } from "./helpers.ts";

let model: LoadedModel;
let registry: ModelRegistry;
let unit: CmapssUnit;

beforeAll(async () => {
  model = await loadModel(FD001_MANIFEST);
  registry = new ModelRegistry([model]);
  const units = loadCmapss(join(REPO_ROOT, model.manifest.metrics.testFile));
  unit = units.find((u) => u.cycles >= 150)!;
});
afterAll(() => registry.release());

const DEV = 42;

function loop(history?: DeviceHistory): {
  loop: InferenceLoop;
  results: InferenceResult[];
  faults: SensorFaultTransition[];
} {
  const results: InferenceResult[] = [];
  const faults: SensorFaultTransition[] = [];
  const l = new InferenceLoop({
    registry,
    profileOf: () => "cmapss-fd001",
    onResult: (r) => results.push(r),
    onSensorFault: (t) => faults.push(t),
    ...(history ? { history } : {}),
  });
  return { loop: l, results, faults };
}

/** Feeds rows [from, to) one tick each; returns the RUL after each. */
async function run(l: ReturnType<typeof loop>, from: number, to: number): Promise<number[]> {
  const out: number[] = [];
  for (let r = from; r < to; r++) {
    l.loop.onFrame(...frame(DEV, r, row(unit, r), T0_US + r * 1000));
    await l.loop.warmed();
    await l.loop.tick();
    out.push(l.results.at(-1)!.outputs[0]!);
  }
  return out;
}

type Kind = "memory" | "level";
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/**
 * Stores cycle `r` of the test unit as device DEV's DATA frame with extended seq `extSeq` (the
 * frame's own 32-bit seq is its low part); `damaged` breaks its CRC, as a damaged store would.
 */
async function appendRow(
  store: FrameStore,
  r: number,
  extSeq: number,
  values: Float32Array,
  damaged = false,
) {
  const ts = T0_US + r * 1000;
  const raw = encodeFrame({
    type: FrameType.Data,
    deviceId: DEV,
    seq: extSeq % 2 ** 32,
    timestampUs: ts,
    flags: 0,
    values,
  });
  if (damaged) raw[raw.length - 1]! ^= 0xff; // the CRC no longer matches
  await store.append({ deviceId: DEV, seq: extSeq, receivedUs: ts, timestampUs: ts, raw });
}

/** The unit's rows as a frame log, in the in-memory store or a real LevelDB one. */
async function storeOf(
  rows: number,
  kind: Kind = "memory",
  damage: readonly number[] = [],
  edit?: (values: Float32Array, r: number) => void,
): Promise<FrameStore> {
  let store: FrameStore;
  if (kind === "memory") store = new MemoryFrameStore();
  else {
    const dir = mkdtempSync(join(tmpdir(), "vigil-history-"));
    dirs.push(dir);
    store = new LevelFrameStore({ dir, reserveBytes: 4096, freeBytes: () => Promise.resolve(2 ** 40) });
  }
  await store.open();
  for (let r = 0; r < rows; r++) {
    const values = Float32Array.from(row(unit, r));
    edit?.(values, r);
    await appendRow(store, r, r, values, damage.includes(r));
  }
  return store;
}

describe.each<Kind>(["memory", "level"])("storeHistory over the %s frame store", (kind) => {
  it("behavior: returns the earliest rows and the rows just before, decoded, oldest first", async () => {
    const store = await storeOf(100, kind);
    const h = await storeHistory(store).read(DEV, 80, 10, 59);
    expect(h.first.map((r) => r.seq)).toEqual(Array.from({ length: 10 }, (_, i) => i));
    expect(h.last.map((r) => r.seq)).toEqual(Array.from({ length: 59 }, (_, i) => 21 + i));
    expect(Array.from(h.last[0]!.values)).toEqual(Array.from(Float32Array.from(row(unit, 21))));
    expect(h.last[0]).toMatchObject({ timestampUs: T0_US + 21_000, receivedUs: T0_US + 21_000 });
    // A device with no earlier frames, and another device, have no history.
    expect(await storeHistory(store).read(DEV, 0, 10, 59)).toEqual({ first: [], last: [] });
    expect(await storeHistory(store).read(7, 80, 10, 59)).toEqual({ first: [], last: [] });
    await store.close();
  });

  it("behavior: the rows just before reach across a device reboot's seq gap (a new boot starts at the next multiple of 2^32)", async () => {
    const store = await storeOf(50, kind); // boot 0: seqs 0..49
    const boot1 = 2 ** 32;
    for (let r = 0; r < 5; r++)
      await appendRow(store, 50 + r, boot1 + r, Float32Array.from(row(unit, 50 + r)));
    const h = await storeHistory(store).read(DEV, boot1 + 5, 10, 20);
    expect(h.first.map((r) => r.seq)).toEqual(Array.from({ length: 10 }, (_, i) => i));
    expect(h.last.map((r) => r.seq)).toEqual([
      ...Array.from({ length: 15 }, (_, i) => 35 + i),
      ...Array.from({ length: 5 }, (_, i) => boot1 + i),
    ]);
    // Before the new boot's first frame: the previous boot's last rows.
    expect((await storeHistory(store).read(DEV, boot1, 10, 3)).last.map((r) => r.seq)).toEqual([47, 48, 49]);
    await store.close();
  });

  it("behavior: a restarted loop warmed from the store gives the never-stopped loop's outputs exactly", async () => {
    const cut = 120; // the gateway restarts before row `cut`
    const steady = loop();
    await run(steady, 0, cut);
    const expected = await run(steady, cut, cut + 5);

    const store = await storeOf(cut, kind);
    const warmed = loop(storeHistory(store));
    expect(await run(warmed, cut, cut + 5)).toEqual(expected);
    expect(warmed.loop.counters).toMatchObject({ warmups: 1, warmupRows: 10 + 59, warmupErrors: 0 });
    expect(warmed.results[0]!.window).toMatchObject({ firstSeq: cut - 59, lastSeq: cut, frames: 60 });

    // Without history the same frames read as a new engine: baseline from these rows, padded window.
    const cold = loop();
    const coldOut = await run(cold, cut, cut + 5);
    expect(Math.max(...coldOut.map((v, i) => Math.abs(v - expected[i]!)))).toBeGreaterThan(1);
    await store.close();
  });

  it("error: stored frames that no longer decode are skipped, counted once each and reported as HISTORY_DAMAGED", async () => {
    const store = await storeOf(100, kind, [3, 70]);
    const h = await storeHistory(store).read(DEV, 80, 10, 59);
    expect(h.first.map((r) => r.seq)).toEqual([0, 1, 2, 4, 5, 6, 7, 8, 9, 10]);
    expect(h.last.map((r) => r.seq)).not.toContain(70);
    expect(h.damaged).toBe(2);
    // A young device: both ranges cover seq 3, which is counted once.
    expect((await storeHistory(store).read(DEV, 6, 10, 59)).damaged).toBe(1);

    const errors: unknown[] = [];
    const l = new InferenceLoop({
      registry,
      profileOf: () => "cmapss-fd001",
      onResult: () => undefined,
      onError: (e) => errors.push(e),
      history: storeHistory(store),
    });
    l.onFrame(...frame(DEV, 80, row(unit, 80)));
    await l.warmed();
    expect(l.counters).toMatchObject({ warmups: 1, warmupDamaged: 2, warmupErrors: 0 });
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ code: "HISTORY_DAMAGED" });
    expect((errors[0] as Error).message).toMatch(/2 stored frame\(s\) of device 42/);
    await store.close();
  });
});

describe("warm start from the frame log", () => {
  it("behavior: a sensor fault raised before a restart is cleared after it under the same episode (raisedAtUs from the replayed frame)", async () => {
    const s11 = CMAPSS_CHANNELS.indexOf("s11");
    const stuck = (v: Float32Array | Float64Array, r: number): void => {
      if (r >= 80) v[s11] = 47.5;
    };
    // The gateway before the restart sees s11 stuck from row 80 and raises the fault.
    const before = loop();
    for (let r = 0; r < 100; r++) {
      const v = Float64Array.from(row(unit, r));
      stuck(v, r);
      before.loop.onFrame(...frame(DEV, r, v));
      await before.loop.tick();
    }
    const raised = before.faults.find((t) => t.channel === "s11" && t.state === "raised")!;
    expect(raised.raisedAtUs).toBe(raised.receivedUs);
    // Restarted, warmed from the same frames; s11 is good again from row 100.
    const store = await storeOf(100, "memory", [], stuck);
    const after = loop(storeHistory(store));
    for (let r = 100; r < 115; r++) {
      after.loop.onFrame(...frame(DEV, r, row(unit, r)));
      await after.loop.warmed();
      await after.loop.tick();
    }
    expect(after.faults.map((t) => [t.channel, t.state, t.raisedAtUs])).toEqual([
      ["s11", "cleared", raised.raisedAtUs],
    ]);
    await store.close();
  });

  it("behavior: a young device (history shorter than baseline + window) replays all of it once", async () => {
    const cut = 6;
    const steady = loop();
    await run(steady, 0, cut);
    const expected = await run(steady, cut, cut + 3);
    const store = await storeOf(cut);
    const warmed = loop(storeHistory(store));
    expect(await run(warmed, cut, cut + 3)).toEqual(expected);
    expect(warmed.loop.counters.warmupRows).toBe(cut);
    await store.close();
  });

  it("error: a failing history read is counted and the device starts from its live frames; frames are held meanwhile", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const failing: DeviceHistory = {
      read: async () => {
        await gate;
        throw new Error("store down");
      },
    };
    const errors: unknown[] = [];
    const results: InferenceResult[] = [];
    const l = new InferenceLoop({
      registry,
      profileOf: () => "cmapss-fd001",
      onResult: (r) => results.push(r),
      onError: (e) => errors.push(e),
      history: failing,
      maxPending: 2,
    });
    for (let r = 50; r < 53; r++) l.onFrame(...frame(DEV, r, row(unit, r)));
    await l.tick();
    expect(results).toHaveLength(0); // held while the read is in flight
    release();
    await l.warmed();
    await l.tick();
    expect(l.counters).toMatchObject({ warmups: 0, warmupErrors: 1, warmupDropped: 1 });
    expect(errors).toHaveLength(1);
    // The two frames kept (51, 52) ran; the oldest was dropped by maxPending.
    expect(results.map((r) => [r.window.firstSeq, r.window.lastSeq])).toEqual([[51, 52]]);
  });

  it("behavior: a device that re-announces another profile starts a fresh window (the frames stored before are the previous profile's); a first frame is warmed", async () => {
    const fd3 = await loadModel(join(REPO_ROOT, "models", "cmapss", "fd003.manifest.json"));
    const reg = new ModelRegistry([model, fd3]);
    try {
      const reads: number[] = [];
      const h: DeviceHistory = {
        read: (_d, before) => {
          reads.push(before);
          const rows = Array.from({ length: 20 }, (_, r) => ({
            seq: r,
            timestampUs: T0_US + r * 1000,
            receivedUs: T0_US + r * 1000,
            values: Float32Array.from(row(unit, r)),
          }));
          return Promise.resolve({ first: rows.slice(0, 10), last: rows.slice(-10) });
        },
      };
      let profile = "cmapss-fd001";
      const l = new InferenceLoop({
        registry: reg,
        profileOf: () => profile,
        history: h,
        onResult: () => undefined,
      });
      l.onFrame(...frame(DEV, 20, row(unit, 20), T0_US + 20_000));
      await l.warmed();
      expect(reads).toEqual([20]); // the first frame: warmed
      expect(l.counters.warmups).toBe(1);
      profile = "cmapss-fd003"; // same 25 channels, another machine's model
      l.onFrame(...frame(DEV, 21, row(unit, 21), T0_US + 21_000));
      await l.warmed();
      expect(reads).toEqual([20]); // not warmed from the FD001-profile frames
      expect(l.counters).toMatchObject({ warmups: 1, devices: 1 });
      expect(l.deviceStatuses()[0]?.commissioning.baselineRows).toBe(1);
    } finally {
      await releaseModel(fd3); // not reg.release(): the FD001 model is shared by the other tests
    }
  });

  it("behavior: history rows of another channel layout are ignored", async () => {
    const odd: HistoryRow = { seq: 0, timestampUs: T0_US, receivedUs: T0_US, values: new Float32Array(24) };
    const h: DeviceHistory = { read: () => Promise.resolve({ first: [odd], last: [odd] }) };
    const warmed = loop(h);
    await run(warmed, 1, 2);
    expect(warmed.loop.counters).toMatchObject({ warmups: 0, warmupRows: 0 });
  });
});
