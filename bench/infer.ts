/**
 * `npm run bench -- infer [--seconds S] [--rate FPS]`
 * Model: C-MAPSS FD001 (models/cmapss/fd001.manifest.json, the committed C-MAPSS model; window
 * 40 × 14 features, ≈ 2.65 M MACs per window), one intra-op thread.
 * 1. Runtime floor: onnxruntime's own best per-row cost, session.run() on a prebuilt tensor at
 *    batch 64/256/512/1000 (median of runs), no gateway code.
 * 2. RSS with 200 devices: rings filled, steady ticks (the whole process: node + tsx + ort +
 *    model), measured first, before the large floor batches grow onnxruntime's arena.
 * 3. Per-tick latency p50/p99 at 1, 10, 100, 1,000 devices: each tick one new frame per device
 *    (hot path: normalise into the ring), then one loop tick (copy windows, one run, window
 *    sha256, INFERENCE leaf, alert rules, result objects). Windows/s = devices / mean tick.
 *    Per-window cost of the loop at 1,000 devices vs the runtime floor.
 * 4. Frame-to-alert at 10,000 frames/s: 100 devices × 100 Hz replaying FD001 train units in a
 *    loop (so they degrade, alert, restart and clear), frames encoded, decoded and handed to
 *    Ingest (MemorySink) at that rate; latency = alert handed to the embedded aedes broker −
 *    gateway arrival of the window's last frame. Also frame-to-result for every window.
 * Last line: one JSON object.
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import * as ort from "onnxruntime-node";
import { REPO_ROOT, loadCmapss } from "../models/eval/cmapss.ts";
import { EmbeddedPublisher } from "../gateway/src/alerts/embedded-publisher.ts";
import { AlertService } from "../gateway/src/alerts/service.ts";
import { FakePublisher } from "../gateway/src/alerts/publisher.ts";
import { createInference } from "../gateway/src/infer/index.ts";
import { InferenceLoop } from "../gateway/src/infer/loop.ts";
import { loadModel, ModelRegistry } from "../gateway/src/infer/registry.ts";
import { Ingest } from "../gateway/src/ingest/ingest.ts";
import { MemorySink } from "../gateway/src/ingest/memory-sink.ts";
import { EmbeddedBroker } from "../gateway/src/ingest/mqtt/embedded-broker.ts";
import type { FrameRecord } from "../gateway/src/ingest/sink.ts";
import { decodeFrame, encodeFrame, FrameType, Unit, type DataFrame } from "../gateway/src/protocol/frame.ts";
import { systemClock } from "../gateway/src/util/clock.ts";

const { values: a } = parseArgs({ options: { seconds: { type: "string" }, rate: { type: "string" } } });
const SECONDS = Number(a.seconds ?? 8);
const RATE = Number(a.rate ?? 10_000);
const MANIFEST = join(REPO_ROOT, "models", "cmapss", "fd001.manifest.json");

const pct = (xs: number[], q: number): number => {
  const s = Float64Array.from(xs).sort();
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] ?? NaN;
};
const r2 = (x: number): number => Math.round(x * 100) / 100;
const mb = (): number => r2(process.memoryUsage().rss / 2 ** 20);
const rssStart = mb();

const model = await loadModel(MANIFEST, { threads: 1 });
const registry = new ModelRegistry([model]);
const { window: W, features } = model.manifest.inputs;
const F = features.length;
const train = loadCmapss(join(REPO_ROOT, "models", "data", "cmapss", "train_FD001.txt.gz"));
const row = (unit: number, cycle: number): Float64Array => {
  const u = train[unit % train.length]!;
  const c = cycle % u.cycles;
  return u.data.subarray(c * 24, (c + 1) * 24);
};

// ---- helpers for 2 and 3 ---------------------------------------------------------------
function loopWith(devices: number): { loop: InferenceLoop; step: (seq: number) => void } {
  const alerts = new AlertService({
    publisher: new FakePublisher(),
    site: "bench",
    gatewayId: "gw",
    models: [model],
    healthIntervalMs: 1e9,
  });
  const loop = new InferenceLoop({
    registry,
    profileOf: () => "cmapss-v1",
    onResult: alerts.onResult,
    onLeaf: () => undefined,
    maxBatch: 1000,
  });
  const records: FrameRecord[] = [];
  const frames: DataFrame[] = [];
  for (let d = 0; d < devices; d++) {
    records.push({ deviceId: d + 1, seq: 0, receivedUs: 0, timestampUs: 0, raw: Buffer.alloc(0) });
    frames.push({
      type: FrameType.Data,
      deviceId: d + 1,
      seq: 0,
      timestampUs: 0,
      flags: 0,
      values: new Float32Array(24),
    });
  }
  const step = (seq: number): void => {
    const now = systemClock.nowUs();
    for (let d = 0; d < devices; d++) {
      const rec = records[d]!;
      const f = frames[d]!;
      f.values.set(row(d, seq));
      rec.seq = seq;
      rec.receivedUs = rec.timestampUs = now;
      loop.onFrame(rec, f);
    }
  };
  return { loop, step };
}

// ---- 2. RSS with 200 devices -----------------------------------------------------------
const rssModel = mb();
{
  const { loop, step } = loopWith(200);
  for (let s = 0; s < 300; s++) {
    step(s);
    await loop.tick();
  }
}
const rss200 = mb();

// ---- 1. runtime floor ------------------------------------------------------------------
const floor: Record<number, number> = {};
for (const b of [64, 256, 512, 1000]) {
  const t = new ort.Tensor(
    "float32",
    new Float32Array(b * W * F).map((_, i) => Math.sin(i) * 0.5),
    [b, W, F],
  );
  for (let i = 0; i < 3; i++) await model.session.run({ window: t });
  const times: number[] = [];
  for (let i = 0; i < (b >= 512 ? 8 : 20); i++) {
    const t0 = performance.now();
    await model.session.run({ window: t });
    times.push(performance.now() - t0);
  }
  floor[b] = (pct(times, 0.5) * 1000) / b;
}
const floorUs = Math.min(...Object.values(floor));

// ---- 3. per-tick latency ---------------------------------------------------------------
const ticks: Array<{
  devices: number;
  p50Ms: number;
  p99Ms: number;
  windowsPerS: number;
  perWindowUs: number;
}> = [];
for (const n of [1, 10, 100, 1000]) {
  const { loop, step } = loopWith(n);
  const reps = n >= 1000 ? 40 : n >= 100 ? 150 : 400;
  for (let s = 0; s < W; s++) step(s); // fill the rings
  await loop.tick();
  const times: number[] = [];
  for (let s = W; s < W + reps; s++) {
    const t0 = performance.now();
    step(s);
    await loop.tick();
    times.push(performance.now() - t0);
  }
  const mean = times.reduce((x, y) => x + y, 0) / times.length;
  ticks.push({
    devices: n,
    p50Ms: r2(pct(times, 0.5)),
    p99Ms: r2(pct(times, 0.99)),
    windowsPerS: Math.round((n / mean) * 1000),
    perWindowUs: r2((pct(times, 0.5) * 1000) / n),
  });
}
const loopPerWindowUs = ticks.at(-1)!.perWindowUs;

// ---- 4. frame-to-alert at RATE frames/s ------------------------------------------------
const DEVICES = 100;
const sink = new MemorySink();
const ingest = new Ingest({ sink });
const broker = new EmbeddedBroker(ingest, { port: 0 });
await broker.start();
const alertLat: number[] = [];
const inference = await createInference({
  modelsDir: join(REPO_ROOT, "models", "cmapss"),
  ingest,
  publisher: new EmbeddedPublisher(broker),
  site: "bench",
  gatewayId: "gw",
  healthIntervalMs: 1000,
  onAlert: (p) => alertLat.push((systemClock.nowUs() - p.window.lastTimestampUs) / 1000),
});
await inference.start();
const hello = (id: number): Buffer =>
  encodeFrame({
    type: FrameType.Hello,
    deviceId: id,
    bootId: 1,
    firmware: { major: 1, minor: 0, patch: 0 },
    profile: "cmapss-v1",
    channels: model.manifest.inputs.channels.map((name) => ({ name, unit: Unit.none })),
  });
for (let d = 1; d <= DEVICES; d++) {
  const raw = hello(d);
  await ingest.handle({ frame: decodeFrame(raw), raw }, "mqtt");
}
// Offsets spread the units over their life so alerts are continuous.
const offset = Array.from({ length: DEVICES }, (_, d) => (d * 37) % 150);
const values = new Float32Array(24);
let sent = 0;
const t0 = performance.now();
const total = RATE * SECONDS;
await new Promise<void>((done) => {
  const pump = (): void => {
    const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * RATE));
    for (; sent < due; sent++) {
      const d = sent % DEVICES;
      const seq = Math.floor(sent / DEVICES);
      values.set(row(d, seq + offset[d]!));
      const raw = encodeFrame({
        type: FrameType.Data,
        deviceId: d + 1,
        seq,
        timestampUs: 0,
        flags: 0,
        values,
      });
      void ingest.handle({ frame: decodeFrame(raw), raw }, "mqtt");
    }
    if (sent >= total) done();
    else setTimeout(pump, 1);
  };
  pump();
});
const elapsedS = (performance.now() - t0) / 1000;
await new Promise((r) => setTimeout(r, 200));
const lc = inference.counters.loop;
const f2r = lc.frameToResult.snapshot();
const snap = {
  windowsRun: lc.windowsRun,
  skipped: lc.skippedWindows,
  batches: lc.batches,
  alerts: inference.counters.alerts.alertsPublished,
};
await inference.stop();
await broker.stop();
const frameToAlert = {
  rateFps: Math.round(sent / elapsedS),
  alerts: alertLat.length,
  p50Ms: r2(pct(alertLat, 0.5)),
  p99Ms: r2(pct(alertLat, 0.99)),
  maxMs: r2(Math.max(...alertLat)),
};

// ---- report ----------------------------------------------------------------------------
console.log(
  `model: ${model.manifest.name} ${model.manifest.version} (${model.manifest.model.macsPerWindow} MACs/window, window ${W}×${F}), 1 intra-op thread`,
);
console.log("\nonnxruntime floor (session.run only), µs per row:");
for (const [b, us] of Object.entries(floor)) console.log(`  batch ${b.padStart(4)}  ${us.toFixed(1)}`);
console.log("\ndevices  tick p50 ms  tick p99 ms  windows/s  µs/window");
for (const t of ticks)
  console.log(
    `${String(t.devices).padStart(7)}  ${String(t.p50Ms).padStart(11)}  ${String(t.p99Ms).padStart(11)}  ${String(t.windowsPerS).padStart(9)}  ${String(t.perWindowUs).padStart(9)}`,
  );
const ratio = r2(loopPerWindowUs / floorUs);
console.log(
  `\nper-window cost at 1000 devices: loop ${loopPerWindowUs} µs vs runtime floor ${r2(floorUs)} µs = ${ratio}× (target ≤ 2×)`,
);
console.log(
  `frame-to-alert at ${frameToAlert.rateFps} frames/s (${DEVICES} devices): ${frameToAlert.alerts} alerts, p50 ${frameToAlert.p50Ms} ms, p99 ${frameToAlert.p99Ms} ms, max ${frameToAlert.maxMs} ms (target p99 ≤ 10 ms)`,
);
console.log(
  `  every window: frame-to-result p50 ${r2(f2r.p50Us / 1000)} ms, p99 ${r2(f2r.p99Us / 1000)} ms; windows run ${snap.windowsRun}, skipped ${snap.skipped}, batches ${snap.batches}`,
);
console.log(
  `RSS: start ${rssStart} MB, model loaded ${rssModel} MB, 200 devices ${rss200} MB (target ≤ 150 MB)`,
);
console.log(
  JSON.stringify({
    bench: "infer",
    model: `${model.manifest.name}@${model.manifest.version}`,
    sha256: model.sha256,
    threads: 1,
    floorUsPerRow: r2(floorUs),
    floorByBatch: Object.fromEntries(Object.entries(floor).map(([k, v]) => [k, r2(v)])),
    ticks,
    loopUsPerWindow: loopPerWindowUs,
    perWindowVsFloor: ratio,
    frameToAlert: { ...frameToAlert, frameToResultP99Ms: r2(f2r.p99Us / 1000), ...snap },
    rssMb: { start: rssStart, modelLoaded: rssModel, devices200: rss200 },
    targets: { frameToAlertP99Ms: 10, perWindowVsFloor: 2, rss200Mb: 150 },
    pass: { frameToAlert: frameToAlert.p99Ms <= 10, perWindow: ratio <= 2, rss: rss200 <= 150 },
  }),
);
await registry.release();
