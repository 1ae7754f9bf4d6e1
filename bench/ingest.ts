/**
 * `npm run bench -- ingest [--frames N] [--messages M]`
 * 1. Decoder + validator on one core: COBS stream → frames → protocol and ingest checks →
 *    sequence classification, for DATA frames with 12 channels (66-byte payload).
 * 2. MQTT end to end over loopback, QoS 1: the same mqtt.js clients through plain aedes
 *    (publisher → broker → subscriber, no gateway work) as the baseline, then through the
 *    gateway's embedded broker (publisher → broker → ingest → sink → PUBACK).
 * Last line: one JSON object with the figures.
 */
import { parseArgs } from "node:util";
import { createServer } from "node:net";
import { Aedes } from "aedes";
import mqtt from "mqtt";
import { cobsEncode } from "../gateway/src/protocol/cobs.ts";
import { crc32 } from "../gateway/src/protocol/crc32.ts";
import { encodeFrame, FrameType, type DataFrame } from "../gateway/src/protocol/frame.ts";
import { StreamDecoder, type DecodedFrame } from "../gateway/src/protocol/stream-decoder.ts";
import { Ingest } from "../gateway/src/ingest/ingest.ts";
import { MemorySink } from "../gateway/src/ingest/memory-sink.ts";
import { EmbeddedBroker } from "../gateway/src/ingest/mqtt/embedded-broker.ts";
import type { AppendOutcome, FrameSink } from "../gateway/src/core/records.ts";

const { values: a } = parseArgs({ options: { frames: { type: "string" }, messages: { type: "string" } } });
const FRAMES = Number(a.frames ?? 2_000_000);
const MESSAGES = Number(a.messages ?? 50_000);
const CHANNELS = 12;
const DEVICES = 100;

function frame(i: number, ts = 1_764_000_000_000_000 + i): Buffer {
  const values = new Float32Array(CHANNELS);
  for (let c = 0; c < CHANNELS; c++) values[c] = Math.sin(i + c) * 10;
  const f: DataFrame = {
    type: FrameType.Data,
    deviceId: 1 + (i % DEVICES),
    seq: Math.floor(i / DEVICES),
    timestampUs: ts,
    flags: 0,
    values,
  };
  return encodeFrame(f);
}

// --- 1. decoder + validator -------------------------------------------------------------
const unique = 10_000;
const wire = Buffer.concat(Array.from({ length: unique }, (_, i) => cobsEncode(frame(i))));
const payloadBytes = 18 + 4 * CHANNELS;
const nullSink: FrameSink = { append: () => Promise.resolve("stored" as AppendOutcome) };
const ingest = new Ingest({ sink: nullSink });
const nowUs = 1_764_000_000_000_000;
let bad = 0;
const sink = {
  frame(d: DecodedFrame) {
    const f = d.frame;
    if (f.type !== FrameType.Data) return;
    const dev = ingest.counters.device(f.deviceId);
    if (ingest.validate(f, dev, nowUs)) bad++;
    else dev.seq.classify(dev.seq.extend(f.seq) ?? 0);
  },
  reject() {
    bad++;
  },
};
function decodeRun(n: number): number {
  const dec = new StreamDecoder();
  const CHUNK = 4096;
  const t0 = process.hrtime.bigint();
  let done = 0;
  while (done < n) {
    for (let o = 0; o < wire.length; o += CHUNK) dec.push(wire.subarray(o, o + CHUNK), sink);
    done += unique;
  }
  return Number(process.hrtime.bigint() - t0) / 1e9;
}
decodeRun(200_000); // warm-up
const decS = decodeRun(FRAMES);
const decRate = FRAMES / decS;

// --- 2. MQTT end to end -------------------------------------------------------------------
const payloads = Array.from({ length: 5000 }, (_, i) => frame(i, Date.now() * 1000));

async function publishAll(url: string, waitFor: () => Promise<void>): Promise<number> {
  const pub = await mqtt.connectAsync(url, { clientId: `bench-pub-${Math.random()}` });
  const t0 = performance.now();
  let acked = 0;
  await new Promise<void>((res) => {
    for (let i = 0; i < MESSAGES; i++) {
      const p = payloads[i % payloads.length]!;
      // Distinct (device, seq) per message so the gateway stores each one.
      const b = Buffer.from(p);
      b.writeUInt32LE(Math.floor(i / DEVICES), 8);
      pub.publish(
        `vigil/v1/ingest/${(1 + (i % DEVICES)).toString(16).padStart(8, "0")}`,
        reseal(b),
        { qos: 1 },
        () => {
          if (++acked === MESSAGES) res();
        },
      );
    }
  });
  await waitFor();
  const s = (performance.now() - t0) / 1000;
  await pub.endAsync();
  return MESSAGES / s;
}

function reseal(b: Buffer): Buffer {
  b.writeUInt32LE(crc32(b.subarray(0, b.length - 4)), b.length - 4);
  return b;
}

async function baseline(withSubscriber = true): Promise<number> {
  const broker = await Aedes.createBroker();
  const server = createServer(broker.handle);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  const url = `mqtt://127.0.0.1:${port}`;
  if (!withSubscriber) {
    const rate = await publishAll(url, async () => undefined);
    await new Promise<void>((r) => broker.close(() => r()));
    await new Promise<void>((r) => server.close(() => r()));
    return rate;
  }
  const sub = await mqtt.connectAsync(url, { clientId: "bench-sub" });
  let got = 0;
  let resolveAll: () => void = () => undefined;
  const all = new Promise<void>((r) => (resolveAll = r));
  sub.on("message", () => {
    if (++got === MESSAGES) resolveAll();
  });
  await sub.subscribeAsync("vigil/v1/ingest/+", { qos: 1 });
  const rate = await publishAll(url, () => all);
  await sub.endAsync();
  await new Promise<void>((r) => broker.close(() => r()));
  await new Promise<void>((r) => server.close(() => r()));
  return rate;
}

async function gateway(): Promise<{ rate: number; stored: number }> {
  const memory = new MemorySink();
  const ing = new Ingest({ sink: memory });
  const b = new EmbeddedBroker(ing, { port: 0 });
  await b.start();
  const rate = await publishAll(b.url, async () => undefined);
  await b.stop();
  return { rate, stored: memory.records.length };
}

const runs: Array<{ base: number; floor: number; gw: number }> = [];
for (let i = 0; i < 3; i++) {
  const base = await baseline();
  const floor = await baseline(false);
  const gw = await gateway();
  if (gw.stored !== MESSAGES) throw new Error(`gateway stored ${gw.stored} of ${MESSAGES}`);
  runs.push({ base, floor, gw: gw.rate });
}
const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
const base = median(runs.map((r) => r.base));
const gw = median(runs.map((r) => r.gw));
const ratio = median(runs.map((r) => r.gw / r.base));
const floor = median(runs.map((r) => r.floor));
const floorRatio = median(runs.map((r) => r.gw / r.floor));

const rows: Array<[string, string, string]> = [
  [
    "decoder+validator (1 core)",
    `${Math.round(decRate).toLocaleString("en")} frames/s`,
    `${payloadBytes}-byte payload, target ≥ 1,000,000`,
  ],
  ["  ns per frame", (1e9 / decRate).toFixed(0), `${FRAMES.toLocaleString("en")} frames, ${bad} rejected`],
  [
    "MQTT baseline: pub → aedes → sub",
    `${Math.round(base).toLocaleString("en")} msg/s`,
    "QoS 1, median of 3",
  ],
  [
    "MQTT broker floor: pub → aedes (no sub)",
    `${Math.round(floor).toLocaleString("en")} msg/s`,
    "QoS 1, median of 3",
  ],
  [
    "MQTT gateway: pub → ingest → PUBACK",
    `${Math.round(gw).toLocaleString("en")} msg/s`,
    "QoS 1, median of 3",
  ],
  ["gateway / baseline", ratio.toFixed(2), "target ≥ 0.80 (median of per-run ratios)"],
  ["gateway / broker floor", floorRatio.toFixed(2), "cost of the gateway's own work per message"],
];
const w0 = Math.max(...rows.map((r) => r[0].length));
const w1 = Math.max(...rows.map((r) => r[1].length));
console.log("ingest benchmark");
for (const [k, v, n] of rows) console.log(`  ${k.padEnd(w0)}  ${v.padStart(w1)}  ${n}`);
console.log(
  JSON.stringify({
    bench: "ingest",
    decoderFramesPerSec: Math.round(decRate),
    decoderNsPerFrame: Math.round(1e9 / decRate),
    payloadBytes,
    mqttBaselineMsgPerSec: Math.round(base),
    mqttGatewayMsgPerSec: Math.round(gw),
    mqttRatio: Number(ratio.toFixed(3)),
    mqttBrokerFloorMsgPerSec: Math.round(floor),
    mqttGatewayToFloor: Number(floorRatio.toFixed(3)),
    messages: MESSAGES,
    targets: { decoderFramesPerSec: 1_000_000, mqttRatio: 0.8 },
    pass: decRate >= 1_000_000 && ratio >= 0.8,
  }),
);
