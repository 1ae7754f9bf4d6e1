/**
 * `npm run bench -- infer [--seconds S] [--rate FPS] [--fd001 MANIFEST] [--no-rss] [--no-build] [--sections S]`
 *
 * Models: every run measures BOTH committed model families and reports each against the targets:
 *  - `rotating-v1-health` (models/rotating, 8 k params, 186 k MACs, window 64 × 6, stride 1),
 *    the model of the simulator's rotating machines;
 *  - C-MAPSS FD001 RUL (models/cmapss/fd001.manifest.json, or `--fd001 PATH`; the heavy one:
 *    ≈ 2.8 M MACs per window, stride 1, so at 10,000 frames/s it needs 10,000 windows/s).
 *    Skipped with a note when the file is absent.
 * Per model:
 * 1. Runtime floor: onnxruntime's own best per-row cost, session.run() on a prebuilt tensor at
 *    batch 64/256/512/1000 (median of runs), no gateway code.
 * 2. Per-tick latency p50/p99 at 1, 10, 100, 1,000 devices (inline runner): each tick one new
 *    frame per device (normalise into the ring), then one loop tick (copy windows, one run, window
 *    sha256, INFERENCE leaf, alert rules, result objects). Windows/s = devices / mean tick.
 *    Per-window cost of the loop at 1,000 devices vs the runtime floor.
 * 3. Frame-to-alert at RATE frames/s (100 devices × RATE/100 Hz; FD001 replays its train units,
 *    the rotating model replays simulator run-to-failure machines, so alerts raise and clear),
 *    frames encoded, decoded and handed to Ingest at that rate through the runtime's
 *    `wireInference` with the embedded aedes broker, once per runner ("inline": run() on the main
 *    thread, "worker": in a worker_thread). Latency of an alert = alert handed to the broker −
 *    the frame's **scheduled send time** (t0 + i / RATE; includes the time the frame waited
 *    because the event loop was busy and ≤ 1 ms of generator quantisation). Also reported: the
 *    same from the gateway's arrival stamp (what earlier versions measured), frame-to-result of
 *    every window, skipped windows, main-thread event-loop utilisation and delay, GC pauses.
 * 4. RSS as deployed: `npm run build`, then plain `node dist/bench/probes/infer-probe.js` in a
 *    child process per configuration (200 devices, the runtime's wireInference + Ingest + embedded
 *    broker): with Node's defaults, and with the Node flags of the Pi unit's NODE_OPTIONS
 *    (hardware/pi/vigil.service; the target), and a bare `node` process for the baseline, in the
 *    same run.
 * 5. Data quality (bench/lib/infer-quality.ts): the per-frame cost of the data-quality stage per
 *    used channel (clean frames, and frames with 5 % missing values + a stuck sensor) vs
 *    normalizeRow alone in the same run (goal ≤ 1 µs per channel); and every C-MAPSS model's int8
 *    variant vs its float32 file, per-window cost at batch 1 and 256 as a ratio, same run.
 * `--sections loop,rss,quality` picks sections (default all; `quality` is 5).
 * The host's load average is printed: the box is shared, and the figures move with it.
 * Last line: one JSON object with all figures and pass/fail per model and target.
 */
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { cpus, getPriority, loadavg, tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { monitorEventLoopDelay, PerformanceObserver } from "node:perf_hooks";
import * as ort from "../gateway/src/infer/ort.ts";
import { REPO_ROOT } from "../models/eval/cmapss.ts";
import { CMAPSS_WIDTH, loadCmapss } from "../gateway/src/infer/features/cmapss.ts";
import { generateMachine, SPLITS } from "../models/rotating/generate.ts";
import { EmbeddedPublisher } from "../gateway/src/alerts/embedded-publisher.ts";
import { AlertService } from "../gateway/src/alerts/service.ts";
import type { AlertPublisher } from "../gateway/src/alerts/publisher.ts";
import type { RunnerKind } from "../gateway/src/infer/worker.ts";
import { EncodedOutput } from "../gateway/src/alerts/output.ts";
import { VigilJsonEncoder } from "../gateway/src/alerts/vigil-json.ts";
import { wireInference } from "../gateway/src/runtime.ts";
import { InferenceLoop } from "../gateway/src/infer/loop.ts";
import { loadModel, ModelRegistry, type LoadedModel } from "../gateway/src/infer/registry.ts";
import { Ingest } from "../gateway/src/ingest/ingest.ts";
import { EmbeddedBroker } from "../gateway/src/ingest/mqtt/embedded-broker.ts";
import type { AppendOutcome, FrameRecord, FrameSink } from "../gateway/src/core/records.ts";
import { decodeFrame, encodeFrame, FrameType, Unit, type DataFrame } from "../gateway/src/protocol/frame.ts";
import { systemClock } from "../gateway/src/core/clock.ts";
import { qualityAndInt8Sections } from "./lib/infer-quality.ts";
import { unitNodeOptions } from "./lib/unit.ts";
import { benchOptions, oneOf, positive, UsageError } from "./lib/options.ts";

const ALL_SECTIONS = ["loop", "rss", "quality"] as const;
const a = benchOptions(
  import.meta.url,
  {
    seconds: { type: "string" },
    rate: { type: "string" },
    fd001: { type: "string" },
    "no-rss": { type: "boolean" },
    "no-build": { type: "boolean" },
    sections: { type: "string" },
  },
  (v) => {
    if (v.fd001 === "") throw new UsageError("--fd001 needs a manifest path");
    return {
      sections: (v.sections ?? ALL_SECTIONS.join(","))
        .split(",")
        .map((s) => oneOf("sections", s, ALL_SECTIONS, "loop")),
      seconds: positive("seconds", v.seconds, 8),
      rate: positive("rate", v.rate, 10_000),
      fd001: v.fd001,
      "no-rss": v["no-rss"] === true,
      "no-build": v["no-build"] === true,
    };
  },
);
const SECTIONS = new Set<string>(a.sections);
const SECONDS = a.seconds;
const RATE = a.rate;
const DEVICES = 100;
const RSS_DEVICES = 200;
/** The Node flags of the deployed gateway (the Pi unit's NODE_OPTIONS), for the "as deployed" RSS. */
const DEPLOYED_FLAGS = unitNodeOptions(REPO_ROOT);
const TARGET = { frameToAlertP99Ms: 10, perWindowVsFloor: 2, rss200Mb: 150 };

const pct = (xs: ArrayLike<number>, q: number): number => {
  const s = Float64Array.from(xs).sort();
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] ?? NaN;
};
const r2 = (x: number): number => Math.round(x * 100) / 100;
const load = (): number[] => loadavg().map(r2);
const loadStart = load();

/** A silent publisher for the per-tick section (no broker, nothing retained). */
const nullPublisher = (): AlertPublisher => ({
  kind: "fake",
  counters: { published: 0, failed: 0, dropped: 0 },
  open: () => Promise.resolve(),
  publish: () => Promise.resolve(),
  close: () => Promise.resolve(),
});

/** The deployed store keeps frames in LevelDB, not the JS heap: this sink only counts. */
class CountingSink implements FrameSink {
  stored = 0;
  append(_r: FrameRecord): Promise<AppendOutcome> {
    this.stored++;
    return Promise.resolve("stored");
  }
}

/** A models folder holding only `manifest` (the runtime's wireInference loads every manifest under a folder). */
function soloDir(manifest: string, model: LoadedModel): string {
  const dir = mkdtempSync(join(tmpdir(), "vigil-bench-infer-"));
  copyFileSync(manifest, join(dir, basename(manifest)));
  copyFileSync(join(dirname(manifest), model.manifest.model.file), join(dir, model.manifest.model.file));
  return dir;
}

interface Case {
  key: "rotating" | "fd001";
  manifest: string;
  profile: string;
  channels: number;
  /** Raw channel values of device d at its frame `seq`. */
  row: (d: number, seq: number) => ArrayLike<number>;
}

const cases: Case[] = [];
{
  const spec = SPLITS.eval;
  const machines = Array.from({ length: 24 }, (_, i) =>
    generateMachine(spec.seeds[i % 12]!, i % 8, true, spec),
  );
  cases.push({
    key: "rotating",
    manifest: join(REPO_ROOT, "models", "rotating", "rotating-v1.manifest.json"),
    profile: "rotating-v1",
    channels: 6,
    row: (d, seq) => {
      const m = machines[d % machines.length]!;
      const r = (seq + d * 53) % m.frames;
      return m.values.subarray(r * 6, r * 6 + 6);
    },
  });
}
const fd001 = a.fd001 ?? join(REPO_ROOT, "models", "cmapss", "fd001.manifest.json");
const notes: string[] = [];
if (existsSync(fd001)) {
  const train = loadCmapss(join(REPO_ROOT, "models", "data", "cmapss", "train_FD001.txt.gz"));
  cases.push({
    key: "fd001",
    manifest: fd001,
    profile: "cmapss-fd001",
    channels: CMAPSS_WIDTH,
    row: (d, seq) => {
      const u = train[d % train.length]!;
      const c = (seq + ((d * 37) % 150)) % u.cycles;
      return u.data.subarray(c * CMAPSS_WIDTH, (c + 1) * CMAPSS_WIDTH);
    },
  });
} else notes.push(`FD001 not measured: ${fd001} not found`);

// ---- 1. runtime floor ---------------------------------------------------------------------
async function runtimeFloor(
  model: LoadedModel,
): Promise<{ floorUs: number; byBatch: Record<number, number> }> {
  const { window: W } = model.manifest.inputs;
  const byBatch: Record<number, number> = {};
  for (const b of [64, 256, 512, 1000]) {
    const data = new Float32Array(b * W * model.normalizer.features).map((_, i) => Math.sin(i) * 0.5);
    const t = new ort.Tensor("float32", data, [b, W, model.normalizer.features]);
    const feeds = { [model.manifest.inputs.tensor]: t };
    for (let i = 0; i < 3; i++) await model.session!.run(feeds);
    const times: number[] = [];
    for (let i = 0; i < (b >= 512 ? 10 : 25); i++) {
      const t0 = performance.now();
      await model.session!.run(feeds);
      times.push(performance.now() - t0);
    }
    byBatch[b] = r2((pct(times, 0.5) * 1000) / b);
  }
  return { floorUs: Math.min(...Object.values(byBatch)), byBatch };
}

// ---- 2. per-tick latency ------------------------------------------------------------------
async function tickLatency(c: Case, model: LoadedModel): Promise<Array<Record<string, number>>> {
  const registry = new ModelRegistry([model]);
  const out: Array<Record<string, number>> = [];
  for (const n of [1, 10, 100, 1000]) {
    const alerts = new AlertService({
      output: new EncodedOutput(new VigilJsonEncoder("bench", "gw"), nullPublisher()),
      models: () => [model],
      healthIntervalMs: 1000,
    });
    const loop = new InferenceLoop({
      registry,
      profileOf: () => c.profile,
      onResult: alerts.onResult,
      onLeaf: () => undefined,
    });
    const records: FrameRecord[] = [];
    const frames: DataFrame[] = [];
    for (let d = 0; d < n; d++) {
      records.push({ deviceId: d + 1, seq: 0, receivedUs: 0, timestampUs: 0, raw: Buffer.alloc(0) });
      frames.push({
        type: FrameType.Data,
        deviceId: d + 1,
        seq: 0,
        timestampUs: 0,
        flags: 0,
        values: new Float32Array(c.channels),
      });
    }
    const step = (seq: number): void => {
      const now = systemClock.nowUs();
      for (let d = 0; d < n; d++) {
        const rec = records[d]!;
        const f = frames[d]!;
        f.values.set(c.row(d, seq));
        rec.seq = seq;
        rec.receivedUs = rec.timestampUs = now;
        loop.onFrame(rec, f);
      }
    };
    const W = model.manifest.inputs.window;
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
    out.push({
      devices: n,
      p50Ms: r2(pct(times, 0.5)),
      p99Ms: r2(pct(times, 0.99)),
      windowsPerS: Math.round((n / mean) * 1000),
      perWindowUs: r2((pct(times, 0.5) * 1000) / n),
    });
  }
  return out;
}

// ---- 3. frame-to-alert --------------------------------------------------------------------
async function frameToAlert(
  c: Case,
  model: LoadedModel,
  runner: RunnerKind,
): Promise<Record<string, unknown>> {
  const dir = soloDir(c.manifest, model);
  const ingest = new Ingest({ sink: new CountingSink() });
  const broker = new EmbeddedBroker(ingest, { port: 0 });
  await broker.start();
  const fromSend: number[] = [];
  const fromArrival: number[] = [];
  let t0 = 0;
  const registry = await ModelRegistry.load(dir);
  const alerts = new AlertService({
    output: new EncodedOutput(new VigilJsonEncoder("bench", "gw"), new EmbeddedPublisher(broker)),
    models: () => registry.models,
    healthIntervalMs: 1000,
    onAlert: (e) => {
      const now = performance.now();
      fromArrival.push((systemClock.nowUs() - e.window.lastTimestampUs) / 1000);
      const i = e.window.lastSeq * DEVICES + (e.deviceId - 1);
      fromSend.push(now - (t0 + (i * 1000) / RATE));
    },
  });
  const loop = wireInference({ registry, ingest, alerts, runner });
  await loop.ready();
  await alerts.start();
  loop.start();
  const inference = {
    loop,
    counters: { loop: loop.counters, alerts: alerts.counters },
    async stop() {
      await loop.close();
      await alerts.stop();
      await registry.release();
    },
  };
  for (let d = 1; d <= DEVICES; d++) {
    const raw = encodeFrame({
      type: FrameType.Hello,
      deviceId: d,
      bootId: 1,
      firmware: { major: 1, minor: 0, patch: 0 },
      profile: c.profile,
      channels: model.manifest.inputs.channels.map((name) => ({ name, unit: Unit.none })),
    });
    await ingest.handle({ frame: decodeFrame(raw), raw }, "mqtt");
  }
  const gc: number[] = [];
  const obs = new PerformanceObserver((l) => {
    for (const e of l.getEntries()) gc.push(e.duration);
  });
  obs.observe({ entryTypes: ["gc"] });
  const eld = monitorEventLoopDelay({ resolution: 1 });
  eld.enable();
  const elu0 = performance.eventLoopUtilization();
  const cpu0 = process.cpuUsage();
  const values = new Float32Array(c.channels);
  let sent = 0;
  const total = RATE * SECONDS;
  t0 = performance.now();
  await new Promise<void>((done) => {
    const pump = (): void => {
      const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * RATE));
      for (; sent < due; sent++) {
        const d = sent % DEVICES;
        const seq = Math.floor(sent / DEVICES);
        values.set(c.row(d, seq));
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
  const elu = performance.eventLoopUtilization(elu0);
  const cpu = process.cpuUsage(cpu0);
  eld.disable();
  await new Promise((r) => setTimeout(r, 300));
  obs.disconnect();
  const lc = inference.counters.loop;
  const f2r = lc.frameToResult.snapshot();
  const res = {
    runner,
    rateFps: Math.round(sent / elapsedS),
    alerts: fromSend.length,
    p50Ms: r2(pct(fromSend, 0.5)),
    p99Ms: r2(pct(fromSend, 0.99)),
    maxMs: r2(Math.max(...fromSend)),
    arrivalP50Ms: r2(pct(fromArrival, 0.5)),
    arrivalP99Ms: r2(pct(fromArrival, 0.99)),
    frameToResultP50Ms: r2(f2r.p50Us / 1000),
    frameToResultP99Ms: r2(f2r.p99Us / 1000),
    windowsRun: lc.windowsRun,
    skipped: lc.skippedWindows,
    batches: lc.batches,
    meanBatch: r2(lc.windowsRun / Math.max(1, lc.batches)),
    runP99Ms: r2(lc.runLatency.snapshot().p99Us / 1000),
    mainElu: r2(elu.utilization),
    /** CPU time of the whole process (all threads) per wall second: the cores this load needs. */
    cpuCores: r2((cpu.user + cpu.system) / 1e6 / elapsedS),
    loopDelayP99Ms: r2(eld.percentile(99) / 1e6),
    loopDelayMaxMs: r2(eld.max / 1e6),
    gcCount: gc.length,
    gcMaxMs: r2(Math.max(0, ...gc)),
    gcTotalMs: r2(gc.reduce((x, y) => x + y, 0)),
  };
  await inference.stop();
  await broker.stop();
  rmSync(dir, { recursive: true, force: true });
  return res;
}

// ---- 4. RSS as deployed (compiled, plain node, child processes) ---------------------------
function probe(args: string[], env: Record<string, string> = {}): Record<string, unknown> {
  const out = execFileSync(process.execPath, args, {
    cwd: REPO_ROOT,
    encoding: "utf8",
    timeout: 180_000,
    env: { ...process.env, ...env },
  });
  return JSON.parse(out.trim().split("\n").at(-1)!) as Record<string, unknown>;
}

// ---- run ----------------------------------------------------------------------------------
const results: Record<string, Record<string, unknown>> = {};
const pass: Record<string, Record<string, boolean>> = {};
for (const c of SECTIONS.has("loop") ? cases : []) {
  const model = await loadModel(c.manifest, { threads: 1 });
  const floor = await runtimeFloor(model);
  const ticks = await tickLatency(c, model);
  const loopUs = ticks.at(-1)!.perWindowUs!;
  const f2a: Record<string, Record<string, unknown>> = {};
  for (const runner of ["inline", "worker"] as const) f2a[runner] = await frameToAlert(c, model, runner);
  results[c.key] = {
    model: `${model.manifest.name}@${model.manifest.version}`,
    sha256: model.sha256,
    macsPerWindow: model.manifest.model.macsPerWindow,
    window: `${model.manifest.inputs.window}x${model.normalizer.features}`,
    stride: model.manifest.inputs.stride,
    floorUsPerRow: floor.floorUs,
    floorByBatch: floor.byBatch,
    ticks,
    loopUsPerWindow: loopUs,
    perWindowVsFloor: r2(loopUs / floor.floorUs),
    frameToAlert: f2a,
  };
  await model.session!.release();
}

const rss: Record<string, unknown> = {};
if (!a["no-rss"] && SECTIONS.has("rss")) {
  if (!a["no-build"]) execFileSync("npm", ["run", "--silent", "build"], { cwd: REPO_ROOT, stdio: "ignore" });
  const probeJs = join(REPO_ROOT, "dist", "bench", "probes", "infer-probe.js");
  const bare = execFileSync(
    process.execPath,
    ["-e", "setTimeout(() => console.log(process.memoryUsage().rss), 200)"],
    { encoding: "utf8" },
  );
  rss["bareNodeMb"] = r2(Number(bare.trim()) / 2 ** 20);
  for (const c of cases) {
    const model = await loadModel(c.manifest);
    const dir = soloDir(c.manifest, model);
    await model.session!.release();
    const base = [probeJs, "--models", dir, "--devices", String(RSS_DEVICES)];
    const runs: Record<string, unknown> = {};
    runs["inline"] = probe([...base, "--runner", "inline", "--arena", "1", "--mem-pattern", "1"]);
    runs["inlineNoArena"] = probe([...base, "--runner", "inline", "--arena", "0", "--mem-pattern", "0"]);
    runs["worker"] = probe([...base, "--runner", "worker", "--arena", "1", "--mem-pattern", "1"]);
    // As deployed: the Pi unit's NODE_OPTIONS (hardware/pi/vigil.service: a 2 MB young
    // generation and a 256 MB old-generation cap, which also makes V8 grow the heap less eagerly
    // than under Node's default cap, sized from the machine's memory).
    runs["inlineDeployed"] = probe([
      ...DEPLOYED_FLAGS,
      ...base,
      "--runner",
      "inline",
      "--arena",
      "1",
      "--mem-pattern",
      "1",
    ]);
    runs["workerDeployed"] = probe([
      ...DEPLOYED_FLAGS,
      ...base,
      "--runner",
      "worker",
      "--arena",
      "1",
      "--mem-pattern",
      "1",
    ]);
    // …plus glibc limited to 2 malloc arenas (the worker thread otherwise gets its own arena).
    runs["workerDeployedMalloc2"] = probe(
      [...DEPLOYED_FLAGS, ...base, "--runner", "worker", "--arena", "1", "--mem-pattern", "1"],
      { MALLOC_ARENA_MAX: "2" },
    );
    rss[c.key] = runs;
    rmSync(dir, { recursive: true, force: true });
  }
}

const steady = (k: string, run: string): number =>
  ((
    ((rss[k] as Record<string, unknown> | undefined)?.[run] as Record<string, unknown> | undefined)?.[
      "rssMb"
    ] as Record<string, number> | undefined
  )?.["steady"] ?? NaN) as number;
// A case measured by the loop section, the RSS section or both (`--sections rss` alone too).
const measured = cases.filter((x) => results[x.key] || rss[x.key]);
for (const c of measured) {
  const r = results[c.key];
  pass[c.key] = {};
  if (r) {
    const f2a = r["frameToAlert"] as Record<string, Record<string, number>>;
    pass[c.key]!["perWindow"] = (r["perWindowVsFloor"] as number) <= TARGET.perWindowVsFloor;
    pass[c.key]!["frameToAlertInline"] = f2a["inline"]!["p99Ms"]! <= TARGET.frameToAlertP99Ms;
    pass[c.key]!["frameToAlertWorker"] = f2a["worker"]!["p99Ms"]! <= TARGET.frameToAlertP99Ms;
  }
  if (rss[c.key]) {
    // As deployed (default inline runner, the Pi unit's Node flags) is the target; Node's
    // defaults are reported beside it.
    pass[c.key]!["rssDeployed"] = steady(c.key, "inlineDeployed") <= TARGET.rss200Mb;
    pass[c.key]!["rssInlineNodeDefaults"] = steady(c.key, "inline") <= TARGET.rss200Mb;
    pass[c.key]!["rssWorkerNodeDefaults"] = steady(c.key, "worker") <= TARGET.rss200Mb;
  }
}
const issue14 = SECTIONS.has("quality")
  ? await qualityAndInt8Sections(
      join(REPO_ROOT, "models", "cmapss"),
      join(REPO_ROOT, "models", "data", "cmapss"),
    )
  : {};
for (const q of (issue14["quality"] ?? []) as Array<{ model: string; pass: boolean }>)
  pass[`quality:${q.model}`] = { perChannel: q.pass };
const loadEnd = load();

// ---- report -------------------------------------------------------------------------------
const pad = (v: unknown, n: number): string => String(v).padStart(n);
console.log(
  `host: ${cpus().length} cores, load average (1/5/15 min) start ${loadStart.join(" ")}, end ${loadEnd.join(" ")}; bench niceness ${getPriority()}`,
);
for (const n of notes) console.log(`note: ${n}`);
for (const c of measured) {
  const r = results[c.key];
  if (!r) console.log(`\n== ${c.key} (RSS only)`);
  else {
    console.log(
      `\n== ${String(r["model"])} (${String(r["macsPerWindow"])} MACs/window, window ${String(r["window"])}, stride ${String(r["stride"])}), 1 intra-op thread`,
    );
    const fb = r["floorByBatch"] as Record<string, number>;
    console.log(
      `onnxruntime floor µs/row: ${Object.entries(fb)
        .map(([b, us]) => `batch ${b} ${us}`)
        .join(", ")}`,
    );
    console.log("devices  tick p50 ms  tick p99 ms  windows/s  µs/window");
    for (const t of r["ticks"] as Array<Record<string, number>>)
      console.log(
        `${pad(t["devices"], 7)}  ${pad(t["p50Ms"], 11)}  ${pad(t["p99Ms"], 11)}  ${pad(t["windowsPerS"], 9)}  ${pad(t["perWindowUs"], 9)}`,
      );
    console.log(
      `per-window cost at 1000 devices: loop ${String(r["loopUsPerWindow"])} µs vs floor ${String(r["floorUsPerRow"])} µs = ${String(r["perWindowVsFloor"])}× (target ≤ 2×)`,
    );
    console.log(
      `frame-to-alert at ${RATE} frames/s, ${DEVICES} devices (ms; from scheduled send / from gateway arrival):`,
    );
    console.log(
      "runner  alerts  p50   p99   max  | arr p50 arr p99 | f2result p99  run p99  batch  skipped  ELU  cores  loop-delay p99/max  GC n/max/total",
    );
    for (const f of Object.values(r["frameToAlert"] as Record<string, Record<string, number>>))
      console.log(
        `${String(f["runner"]).padEnd(6)} ${pad(f["alerts"], 7)} ${pad(f["p50Ms"], 5)} ${pad(f["p99Ms"], 5)} ${pad(f["maxMs"], 5)} | ${pad(f["arrivalP50Ms"], 7)} ${pad(f["arrivalP99Ms"], 7)} | ${pad(f["frameToResultP99Ms"], 12)} ${pad(f["runP99Ms"], 8)} ${pad(f["meanBatch"], 6)} ${pad(f["skipped"], 8)} ${pad(f["mainElu"], 4)} ${pad(f["cpuCores"], 6)} ${pad(`${f["loopDelayP99Ms"]}/${f["loopDelayMaxMs"]}`, 19)}  ${f["gcCount"]}/${f["gcMaxMs"]}/${f["gcTotalMs"]}`,
      );
  }
  const rr = rss[c.key] as Record<string, Record<string, Record<string, number>>> | undefined;
  if (rr)
    for (const [k, v] of Object.entries(rr))
      console.log(
        `RSS ${k.padEnd(13)} (compiled, node, ${RSS_DEVICES} devices): imports ${v["rssMb"]!["imports"]} MB, models ${v["rssMb"]!["modelsLoaded"]} MB, steady ${v["rssMb"]!["steady"]} MB, peak ${v["rssMb"]!["peak"]} MB; V8 heap ${v["heapMb"]!["total"]} MB (target steady ≤ 150 MB)`,
      );
  console.log(`pass: ${JSON.stringify(pass[c.key])}`);
}
if (rss["bareNodeMb"] !== undefined) console.log(`\nbare node process RSS: ${String(rss["bareNodeMb"])} MB`);
console.log(
  JSON.stringify({
    bench: "infer",
    rate: RATE,
    seconds: SECONDS,
    devices: DEVICES,
    threads: 1,
    host: { cores: cpus().length, loadStart, loadEnd, nice: getPriority() },
    notes,
    models: results,
    rss,
    quality: issue14["quality"],
    int8: issue14["int8"],
    targets: TARGET,
    pass,
  }),
);
