// Inference lanes under a steady stream of frames: load a candidate in shadow (warmed from the
// frame log), compare, promote atomically, unload the old model — without losing or repeating a
// window, and with alert episodes continuing across the promotion.
import { join } from "node:path";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { AlertService } from "../../gateway/src/alerts/service.ts";
import type { AlertEvent, GatewayEvent } from "../../gateway/src/alerts/events.ts";
import { FakeClock } from "../../gateway/src/core/clock.ts";
import type { FrameRecord } from "../../gateway/src/core/records.ts";
import { loadCmapss, type CmapssUnit } from "../../gateway/src/infer/features/cmapss.ts";
import { storeHistory } from "../../gateway/src/infer/history.ts";
import { InferenceLoop, type InferenceResult } from "../../gateway/src/infer/loop.ts";
import { LaneError } from "../../gateway/src/infer/errors.ts";
import { ModelRegistry, releaseModel, type LoadedModel } from "../../gateway/src/infer/registry.ts";
import { decodeFrame, encodeFrame, FrameType, type DataFrame } from "../../gateway/src/protocol/frame.ts";
import { MemoryFrameStore } from "../../gateway/src/store/memory.ts";
import { REPO_ROOT } from "../../models/eval/cmapss.ts";
import { T0_US, row, tempModels } from "./helpers.ts";

const DEVICES = [11, 12, 13];
let units: CmapssUnit[];
let live: LoadedModel;
let candidate: LoadedModel;
let other: LoadedModel;
const dirs: string[] = [];

beforeAll(() => {
  // The same ONNX bytes under three manifests: a live model, a candidate release of it (same
  // profiles, new version) and a model of another profile. Identical bytes and normalisation
  // make the shadow's outputs equal the live ones exactly, which the agreement check relies on.
  dirs.push(
    tempModels([(m) => (m.version = "2.0.0")]),
    tempModels([(m) => ((m.name = "cmapss-fd001-rul-int8"), (m.version = "2.1.0"))]),
    tempModels([(m) => ((m.name = "other"), (m.devices.profiles = ["other-v1"]))]),
  );
  // Train units run to failure: the shortest lives (128–137 cycles) raise both alerts.
  units = loadCmapss(join(REPO_ROOT, "models", "data", "cmapss", "train_FD001.txt.gz"))
    .sort((a, b) => a.cycles - b.cycles)
    .slice(0, DEVICES.length);
});

// Unloading a lane releases its session, so every test loads its own models.
beforeEach(async () => {
  const [a, b, c] = await Promise.all(dirs.map((d) => ModelRegistry.load(d)));
  [live, candidate, other] = [a!.models[0]!, b!.models[0]!, c!.models[0]!];
});

class Rig {
  readonly store = new MemoryFrameStore();
  readonly results: InferenceResult[] = [];
  readonly shadow: InferenceResult[] = [];
  readonly events: GatewayEvent[] = [];
  /** A fixed clock: alert ids (which carry the raise time) are comparable between rigs. */
  readonly clock = new FakeClock();
  readonly loop: InferenceLoop;
  readonly alerts: AlertService;
  step = 0;

  constructor(models: LoadedModel[]) {
    this.alerts = new AlertService({
      output: {
        open: () => Promise.resolve(),
        emit: (e) => (this.events.push(e), Promise.resolve()),
        close: () => Promise.resolve(),
      },
      models: () => this.loop.models,
      healthIntervalMs: 0,
      clock: this.clock,
    });
    this.loop = new InferenceLoop({
      registry: { models },
      profileOf: () => "cmapss-fd001",
      history: storeHistory(this.store),
      clock: this.clock,
      onResult: (r) => {
        this.results.push(r);
        this.alerts.onResult(r);
      },
      onShadowResult: (r) => this.shadow.push(r),
    });
  }

  /** One frame per device (stored, then fed, as ingest does), optionally followed by a tick. */
  async feed(tick = true): Promise<void> {
    if (this.step === 0) await this.store.open();
    const s = this.step++;
    for (const [i, id] of DEVICES.entries()) {
      const values = Float32Array.from(row(units[i]!, s));
      const raw = encodeFrame({
        type: FrameType.Data,
        deviceId: id,
        seq: s,
        timestampUs: T0_US + s * 1000,
        flags: 0,
        values,
      });
      const rec: FrameRecord = {
        deviceId: id,
        seq: s,
        receivedUs: T0_US + s * 1000,
        timestampUs: T0_US + s * 1000,
        raw,
      };
      await this.store.append(rec);
      this.loop.onFrame(rec, decodeFrame(raw) as DataFrame);
    }
    if (tick) {
      await this.loop.warmed();
      await this.loop.tick();
    }
  }

  liveSeqs(id: number): number[] {
    return this.results.filter((r) => r.deviceId === id).map((r) => r.window.lastSeq);
  }
}

let rigs: Rig[] = [];
afterEach(async () => {
  for (const r of rigs) await r.loop.close();
  rigs = [];
  for (const m of [live, candidate, other]) await releaseModel(m);
});

function rig(models: LoadedModel[]): Rig {
  const r = new Rig(models);
  rigs.push(r);
  return r;
}

describe("inference lanes", () => {
  it("behavior: shadow warms from the log and agrees exactly; promote switches atomically; no window lost or repeated", async () => {
    const r = rig([live]);
    for (let i = 0; i < 30; i++) await r.feed();
    await r.loop.addShadow(candidate, live);
    expect(r.loop.lanes().map((l) => [l.model.manifest.name, l.role])).toEqual([
      ["cmapss-fd001-rul", "live"],
      ["cmapss-fd001-rul-int8", "shadow"],
    ]);
    for (let i = 0; i < 30; i++) await r.feed();
    // Warmed from the frame log: the shadow ran the same windows with the same bytes.
    const s = r.loop.lanes()[1]!.shadow!;
    expect(s.windows).toBe(30 * DEVICES.length);
    expect(s.compared).toBe(30 * DEVICES.length);
    expect(s.maxAbsDiff).toBe(0);
    expect(s.nonFinite + s.outOfRange).toBe(0);
    expect(r.shadow.every((x) => x.inferenceLeaf.length === 0)).toBe(true);

    // Frames arrive, windows are queued but not yet run: promote now. The candidate's queued
    // windows become live work (the old lane's are superseded), so frame 60's window is run once.
    await r.feed(false);
    const old = await r.loop.promote(candidate);
    expect(old).toBe(live);
    expect(r.loop.models).toEqual([candidate]);
    await r.loop.tick();
    for (const id of DEVICES)
      expect(r.results.filter((x) => x.deviceId === id).at(-1)!.model).toBe(candidate);
    for (let i = 0; i < 10; i++) await r.feed();
    await r.loop.unload(old);
    for (let i = 0; i < 10; i++) await r.feed();

    for (const id of DEVICES) {
      // Exactly one live result per frame, strictly in order, across shadow, promotion and unload.
      expect(r.liveSeqs(id)).toEqual(Array.from({ length: r.step }, (_, i) => i));
      const after = r.results.filter((x) => x.deviceId === id && x.window.lastSeq >= 60);
      expect(after.every((x) => x.model === candidate)).toBe(true);
      expect(after.every((x) => x.inferenceLeaf.length === 32)).toBe(true);
    }
    const c = r.loop.counters;
    expect(c.windowsRun + c.skippedWindows + c.failedWindows).toBe(c.windowsReady);
    expect(c.promotions).toBe(1);
    expect(r.loop.lanes().map((l) => l.role)).toEqual(["live"]);
  });

  it("behavior: alert episodes continue across a promotion (same events as a gateway that never swapped)", async () => {
    const swapped = rig([live]);
    const plain = rig([live]);
    const steps = 128;
    for (let i = 0; i < steps; i++) {
      if (i === 40) await swapped.loop.addShadow(candidate, live);
      if (i === 100) await swapped.loop.promote(candidate);
      await swapped.feed();
      await plain.feed();
    }
    const key = (e: GatewayEvent): string | undefined =>
      e.kind === "alert"
        ? `${e.deviceId}:${e.rule.id}:${e.state}:${e.window.lastSeq}:${e.alertId}`
        : undefined;
    const a = swapped.events.map(key).filter(Boolean);
    const b = plain.events.map(key).filter(Boolean);
    expect(a.length).toBeGreaterThan(0);
    expect(a).toEqual(b);
    // Alerts after the promotion name the new model.
    const early = swapped.events.filter((e): e is AlertEvent => e.kind === "alert" && e.window.lastSeq < 100);
    const late = swapped.events.filter((e): e is AlertEvent => e.kind === "alert" && e.window.lastSeq >= 100);
    // The warnings raised by the old model stay raised (not raised again) while the new model
    // escalates the same episodes to critical.
    expect(early.length).toBeGreaterThan(0);
    expect(late.length).toBeGreaterThan(0);
    expect(early.every((e) => e.model.name === "cmapss-fd001-rul")).toBe(true);
    expect(late.every((e) => e.model.name === "cmapss-fd001-rul-int8")).toBe(true);
  });

  it("error: shadow of another profile set, promote of a live lane, unknown models, profile conflicts", async () => {
    const r = rig([live]);
    await expect(r.loop.addShadow(other, live)).rejects.toThrow(LaneError);
    await expect(r.loop.addShadow(candidate, other)).rejects.toThrow(/not loaded/);
    await expect(r.loop.promote(live)).rejects.toThrow(/not a shadow/);
    await expect(r.loop.unload(candidate)).rejects.toThrow(/not loaded/);
    await r.loop.addLive(other);
    expect(r.loop.forProfile("other-v1")).toBe(other);
    await expect(r.loop.addLive(candidate)).rejects.toThrow(/claimed by both/);
    // Unloading a live lane makes its devices unmodelled; its frames are counted, not run.
    await r.feed();
    await r.loop.unload(live);
    await r.feed();
    expect(r.loop.counters.framesUnmodelled).toBe(DEVICES.length);
  });
});
