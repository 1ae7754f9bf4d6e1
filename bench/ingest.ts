/**
 * `npm run bench -- ingest [--frames N] [--messages M]`
 * 1. Decoder + validator on one core: COBS stream → frames → protocol and ingest checks →
 *    sequence classification, for DATA frames with 12 channels (66-byte payload).
 * 2. MQTT end to end over loopback, QoS 1: the same mqtt.js clients through plain aedes
 *    (publisher → broker → subscriber, no gateway work) as the baseline, then through the
 *    gateway's embedded broker (publisher → broker → ingest → sink → PUBACK).
 * 3. Access control on vs off, in the same run: 100 device clients (one per device, as access
 *    control requires) through the embedded broker, without and with registry admission and the
 *    registry broker policy (authenticated devices, own-topic check, O(1) registry lookups).
 * Last line: one JSON object with the figures.
 */
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
import { RegistryAdmission } from "../gateway/src/access/admission.ts";
import { RegistryBrokerPolicy } from "../gateway/src/access/broker-policy.ts";
import { hashPassword, PasswordFile } from "../gateway/src/access/passwords.ts";
import { vigilDomain } from "../gateway/src/chain/eip712.ts";
import { RegistryView } from "../gateway/src/chain/registry-view.ts";
import type { Hex } from "../gateway/src/core/hex.ts";
import { benchOptions, int } from "./lib/options.ts";

const { frames: FRAMES, messages: MESSAGES } = benchOptions(
  import.meta.url,
  { frames: { type: "string" }, messages: { type: "string" } },
  (a) => ({
    frames: int("frames", a.frames, 2_000_000, 1),
    messages: int("messages", a.messages, 50_000, 1),
  }),
);
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

// --- 3. access control on vs off ---------------------------------------------------------
const GW_ID: Hex = `0x${"11".repeat(32)}`;
const hex8 = (d: number): string => d.toString(16).padStart(8, "0");
const accessView = new RegistryView(GW_ID);
accessView.apply({
  name: "GatewayRegistered",
  gatewayId: GW_ID,
  site: GW_ID,
  keyType: "none",
  publicKey: "0x",
});
for (let d = 1; d <= DEVICES; d++)
  accessView.apply({
    name: "SensorRegistered",
    gatewayId: GW_ID,
    sensorId: d,
    keyType: "none",
    publicKey: "0x",
  });
const accessPasswords = new PasswordFile(
  Array.from({ length: DEVICES }, (_, i) => hashPassword(hex8(i + 1), "bench")).join("\n"),
);

/** 100 device clients, each publishing its own frames (QoS 1); connects are not timed. */
async function perDevice(access: boolean): Promise<{ rate: number; stored: number }> {
  const memory = new MemorySink();
  const state = { view: accessView, stale: false };
  const ing = new Ingest({ sink: memory, ...(access ? { admission: new RegistryAdmission(state) } : {}) });
  const b = new EmbeddedBroker(ing, {
    port: 0,
    ...(access
      ? {
          policy: new RegistryBrokerPolicy({
            state,
            passwords: accessPasswords,
            domain: vigilDomain(31337, `0x${"00".repeat(19)}01`),
            gatewayId: GW_ID,
            site: "site-1",
            gatewayName: "gw-1",
          }),
        }
      : {}),
  });
  await b.start();
  const clients = await Promise.all(
    Array.from({ length: DEVICES }, (_, i) =>
      mqtt.connectAsync(b.url, {
        clientId: `bench-dev-${i}`,
        ...(access ? { username: hex8(i + 1), password: "bench" } : {}),
      }),
    ),
  );
  const t0 = performance.now();
  let acked = 0;
  await new Promise<void>((res) => {
    for (let i = 0; i < MESSAGES; i++) {
      const dev = i % DEVICES;
      const bb = Buffer.from(payloads[dev]!);
      bb.writeUInt32LE(Math.floor(i / DEVICES), 8);
      clients[dev]!.publish(`vigil/v1/ingest/${hex8(dev + 1)}`, reseal(bb), { qos: 1 }, () => {
        if (++acked === MESSAGES) res();
      });
    }
  });
  const rate = MESSAGES / ((performance.now() - t0) / 1000);
  await Promise.all(clients.map((c) => c.endAsync()));
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
const accessRuns: Array<{ off: number; on: number }> = [];
// Five pairs, the order alternating so drift in the machine's load does not favour one side.
for (let i = 0; i < 5; i++) {
  const first = await perDevice(i % 2 === 1);
  const second = await perDevice(i % 2 === 0);
  const [on, off] = i % 2 === 1 ? [first, second] : [second, first];
  if (off.stored !== MESSAGES || on.stored !== MESSAGES)
    throw new Error(`access bench stored ${off.stored} / ${on.stored} of ${MESSAGES}`);
  accessRuns.push({ off: off.rate, on: on.rate });
}
const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
const base = median(runs.map((r) => r.base));
const gw = median(runs.map((r) => r.gw));
const ratio = median(runs.map((r) => r.gw / r.base));
const floor = median(runs.map((r) => r.floor));
const floorRatio = median(runs.map((r) => r.gw / r.floor));
const accessOff = median(accessRuns.map((r) => r.off));
const accessOn = median(accessRuns.map((r) => r.on));
const accessRatio = median(accessRuns.map((r) => r.on / r.off));

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
  [
    "gateway, 100 device clients, access off",
    `${Math.round(accessOff).toLocaleString("en")} msg/s`,
    "QoS 1, median of 5 (order alternating)",
  ],
  [
    "gateway, 100 device clients, access on",
    `${Math.round(accessOn).toLocaleString("en")} msg/s`,
    "registry admission + broker policy",
  ],
  ["access on / off", accessRatio.toFixed(2), "target ≥ 0.90 (median of per-run ratios)"],
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
    accessOffMsgPerSec: Math.round(accessOff),
    accessOnMsgPerSec: Math.round(accessOn),
    accessRatio: Number(accessRatio.toFixed(3)),
    targets: { decoderFramesPerSec: 1_000_000, mqttRatio: 0.8, accessRatio: 0.9 },
    pass: decRate >= 1_000_000 && ratio >= 0.8 && accessRatio >= 0.9,
  }),
);
