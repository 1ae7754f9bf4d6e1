/**
 * Memory probe of the inference stage as deployed: run with plain `node` on the compiled file
 * (`npm run build`, then `node dist/bench/probes/infer-probe.js --models models/rotating`), not
 * under tsx. bench/infer.ts starts it in a child process per configuration.
 *
 * What runs is the gateway's own composition: the runtime's inference composition (registry, loop, alert service)
 * fed through `Ingest` and publishing through the embedded aedes broker, with `--devices`
 * devices (HELLO with the profile of a loaded model, round robin over the models) sending one
 * DATA frame per step for `--steps` steps (values that fit the model: probe-rows.ts), waiting for
 * the loop after each step. Exits 1 when no window ran. The sink only
 * counts (a deployed gateway's frames live in LevelDB, not in the JS heap).
 *
 * Prints one JSON object: RSS (MB) after the imports, after the models were loaded, and at steady
 * state, the peak RSS of the process, and the V8 heap / external / ArrayBuffer figures.
 */
import { parseArgs } from "node:util";
import { Ingest } from "../../gateway/src/ingest/ingest.ts";
import type { AppendOutcome, FrameRecord, FrameSink } from "../../gateway/src/core/records.ts";
import { EmbeddedBroker } from "../../gateway/src/ingest/mqtt/embedded-broker.ts";
import { EmbeddedPublisher } from "../../gateway/src/alerts/embedded-publisher.ts";
import { decodeFrame, encodeFrame, FrameType, Unit } from "../../gateway/src/protocol/frame.ts";
import { AlertService } from "../../gateway/src/alerts/service.ts";
import { EncodedOutput } from "../../gateway/src/alerts/output.ts";
import { VigilJsonEncoder } from "../../gateway/src/alerts/vigil-json.ts";
import { wireInference } from "../../gateway/src/runtime.ts";
import { ModelRegistry } from "../../gateway/src/infer/registry.ts";
import type { RunnerKind } from "../../gateway/src/infer/worker.ts";
import { probeRow } from "./probe-rows.ts";

const mb = (bytes: number): number => Math.round((bytes / 2 ** 20) * 10) / 10;
const rss = (): number => mb(process.memoryUsage().rss);
const rssImports = rss();

const { values: a } = parseArgs({
  options: {
    models: { type: "string" },
    devices: { type: "string" },
    steps: { type: "string" },
    runner: { type: "string" },
    arena: { type: "string" },
    "mem-pattern": { type: "string" },
    "max-batch": { type: "string" },
  },
});
if (!a.models) {
  console.error(
    "usage: node dist/bench/probes/infer-probe.js --models DIR [--devices 200] [--steps 300] [--runner inline|worker] [--arena 0|1] [--mem-pattern 0|1] [--max-batch N]",
  );
  process.exit(2);
}
const DEVICES = Number(a.devices ?? 200);
const STEPS = Number(a.steps ?? 300);
const runner = (a.runner ?? "inline") as RunnerKind;

class CountingSink implements FrameSink {
  stored = 0;
  append(_record: FrameRecord): Promise<AppendOutcome> {
    this.stored++;
    return Promise.resolve("stored");
  }
}

const ingest = new Ingest({ sink: new CountingSink() });
const broker = new EmbeddedBroker(ingest, { port: 0 });
await broker.start();
// The gateway's inference composition (runtime.ts): registry → loop → alert service → Vigil JSON
// → the embedded broker, with the tuning under test.
const registry = await ModelRegistry.load(a.models, {
  memArena: a.arena === "1",
  memPattern: a["mem-pattern"] === "1",
});
const alerts = new AlertService({
  output: new EncodedOutput(new VigilJsonEncoder("probe", "gw"), new EmbeddedPublisher(broker)),
  models: () => registry.models,
});
const loop = wireInference({
  registry,
  ingest,
  alerts,
  runner,
  ...(a["max-batch"] ? { maxBatch: Number(a["max-batch"]) } : {}),
});
await loop.ready();
await alerts.start();
loop.start();
const inference = { loop, counters: { loop: loop.counters } };
const rssModels = rss();
if (registry.models.length === 0) throw new Error(`no *.manifest.json under ${a.models}`);

const models = registry.models;
const devs = Array.from({ length: DEVICES }, (_, i) => {
  const m = models[i % models.length]!;
  return { id: i + 1, m, values: new Float32Array(m.manifest.inputs.channels.length) };
});
for (const d of devs) {
  const raw = encodeFrame({
    type: FrameType.Hello,
    deviceId: d.id,
    bootId: 1,
    firmware: { major: 1, minor: 0, patch: 0 },
    profile: d.m.manifest.devices.profiles[0]!,
    channels: d.m.manifest.inputs.channels.map((name) => ({ name, unit: Unit.none })),
  });
  await ingest.handle({ frame: decodeFrame(raw), raw }, "mqtt");
}
const idle = async (): Promise<void> => {
  do await new Promise((r) => setImmediate(r));
  while (inference.loop.pending > 0);
  await new Promise((r) => setTimeout(r, 1));
};
for (let s = 0; s < STEPS; s++) {
  const acks: Array<unknown> = [];
  for (const d of devs) {
    probeRow(d.m.manifest, d.id, s, d.values);
    const raw = encodeFrame({
      type: FrameType.Data,
      deviceId: d.id,
      seq: s,
      timestampUs: 0,
      flags: 0,
      values: d.values,
    });
    acks.push(ingest.handle({ frame: decodeFrame(raw), raw }, "mqtt"));
  }
  await Promise.all(acks);
  await idle();
}
// Every window withheld (frames the data-quality stage refuses) would measure an idle model.
if (inference.counters.loop.windowsRun === 0) {
  console.error(
    `infer-probe: no window ran (${inference.counters.loop.windowsWithheld} withheld by the data-quality stage); the probe's frames do not fit ${models.map((m) => m.manifest.name).join(", ")}`,
  );
  process.exit(1);
}
const mem = process.memoryUsage();
const out = {
  probe: "infer-rss",
  node: process.version,
  execArgv: process.execArgv,
  models: models.map((m) => `${m.manifest.name}@${m.manifest.version}`),
  devices: DEVICES,
  steps: STEPS,
  runner,
  memArena: a.arena === "1",
  memPattern: a["mem-pattern"] === "1",
  windowsRun: inference.counters.loop.windowsRun,
  rssMb: {
    imports: rssImports,
    modelsLoaded: rssModels,
    steady: mb(mem.rss),
    peak: mb(process.resourceUsage().maxRSS * 1024),
  },
  heapMb: {
    used: mb(mem.heapUsed),
    total: mb(mem.heapTotal),
    external: mb(mem.external),
    arrayBuffers: mb(mem.arrayBuffers),
  },
};
await loop.close();
await alerts.stop();
await registry.release();
await broker.stop();
console.log(JSON.stringify(out));
