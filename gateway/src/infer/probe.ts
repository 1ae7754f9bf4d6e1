/**
 * Memory probe of the inference stage as deployed: run with plain `node` on the compiled file
 * (`npm run build`, then `node dist/gateway/src/infer/probe.js --models models/rotating`), not
 * under tsx. bench/infer.ts starts it in a child process per configuration.
 *
 * What runs is the gateway's own composition: `createInference` (registry, loop, alert service)
 * fed through `Ingest` and publishing through the embedded aedes broker, with `--devices`
 * devices (HELLO with the profile of a loaded model, round robin over the models) sending one
 * DATA frame per step for `--steps` steps, waiting for the loop after each step. The sink only
 * counts (a deployed gateway's frames live in LevelDB, not in the JS heap).
 *
 * Prints one JSON object: RSS (MB) after the imports, after the models were loaded, and at steady
 * state, the peak RSS of the process, and the V8 heap / external / ArrayBuffer figures.
 */
import { parseArgs } from "node:util";
import { Ingest } from "../ingest/ingest.ts";
import type { AppendOutcome, FrameRecord, FrameSink } from "../core/records.ts";
import { EmbeddedBroker } from "../ingest/mqtt/embedded-broker.ts";
import { EmbeddedPublisher } from "../alerts/embedded-publisher.ts";
import { decodeFrame, encodeFrame, FrameType, Unit } from "../protocol/frame.ts";
import { createInference } from "./index.ts";
import type { RunnerKind } from "./worker.ts";

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
    "usage: node dist/gateway/src/infer/probe.js --models DIR [--devices 200] [--steps 300] [--runner inline|worker] [--arena 0|1] [--mem-pattern 0|1] [--max-batch N]",
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
const inference = await createInference({
  modelsDir: a.models,
  ingest,
  publisher: new EmbeddedPublisher(broker),
  site: "probe",
  gatewayId: "gw",
  runner,
  memArena: a.arena === "1",
  memPattern: a["mem-pattern"] === "1",
  ...(a["max-batch"] ? { maxBatch: Number(a["max-batch"]) } : {}),
});
await inference.start();
const rssModels = rss();
if (inference.registry.models.length === 0) throw new Error(`no *.manifest.json under ${a.models}`);

const models = inference.registry.models;
const devs = Array.from({ length: DEVICES }, (_, i) => {
  const m = models[i % models.length]!;
  const mean = m.manifest.normalization.mean[0]!;
  const std = m.manifest.normalization.std[0]!;
  return { id: i + 1, m, mean, std, values: new Float32Array(m.manifest.inputs.channels.length) };
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
    for (let c = 0; c < d.values.length; c++)
      d.values[c] = (d.mean[c] ?? 0) + (d.std[c] ?? 1) * Math.sin(s * 0.1 + c + d.id);
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
await inference.stop();
await broker.stop();
console.log(JSON.stringify(out));
