/**
 * The independent device (device-client.ts, written from hardware/PROTOCOL.md alone): first
 * against every known-answer vector of hardware/vectors/frames.json, then against a real
 * `vigil start` over a socat pty pair and over the embedded MQTT broker, case by case of the
 * NACK table, "A stopped device" and "Replies and silence".
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { keccak_256 } from "@noble/hashes/sha3.js";
import { localChain, type LocalChain } from "../helpers/chain.ts";
import { freePort, ptyPair, runVigil, stop, type PtyPair } from "../helpers/procs.ts";
import { until as waitUntil } from "../helpers/vigil-child.ts";
import {
  cobsDecode,
  cobsEncode,
  crc32,
  decodeFrame,
  Device,
  deviceAddress,
  deviceToken,
  encodeFrame,
  frameOf,
  hex8,
  R,
  MqttLink,
  SerialLink,
  SerialReceiver,
  T,
  type Channel,
  type Decoded,
  type DeviceOptions,
  type Frame,
} from "./device-client.ts";

interface Vectors {
  crcCheck: { input: string; crc32: number };
  valid: { name: string; frame: Record<string, unknown>; hex: string; wire: string }[];
  invalid: { name: string; hex: string; reason: string }[];
}
const V = JSON.parse(
  readFileSync(new URL("../../hardware/vectors/frames.json", import.meta.url), "utf8"),
) as Vectors;

/** The vectors' JSON form of a frame: non-finite values as strings, nonFinite as a bit mask. */
function fromVector(f: Record<string, unknown>): Frame {
  const g = { ...f } as Record<string, unknown>;
  delete g.nonFinite;
  if (Array.isArray(g.values))
    g.values = (g.values as (number | string)[]).map((v) => (typeof v === "string" ? Number(v) : v));
  return g as unknown as Frame;
}
function toVector(f: Frame): Record<string, unknown> {
  const g = { ...f } as Record<string, unknown>;
  if (f.type === 2) {
    let mask = 0;
    g.values = f.values.map((v, i) => {
      if (Number.isFinite(v)) return v;
      mask |= 1 << i;
      return String(v);
    });
    if (mask) g.nonFinite = mask;
  }
  return g;
}

describe("known-answer vectors (hardware/vectors/frames.json)", () => {
  it("CRC check value", () => {
    expect(crc32(Buffer.from(V.crcCheck.input, "hex"))).toBe(V.crcCheck.crc32);
    expect(crc32(Buffer.from("123456789"))).toBe(0xcbf43926);
  });
  it.each(V.valid)("$name: encodes to hex and wire, decodes back", (v) => {
    const bytes = encodeFrame(fromVector(v.frame));
    expect(bytes.toString("hex")).toBe(v.hex);
    expect(cobsEncode(bytes).toString("hex")).toBe(v.wire);
    const wire = Buffer.from(v.wire, "hex");
    expect(cobsDecode(wire.subarray(0, -1))!.toString("hex")).toBe(v.hex);
    const d = decodeFrame(Buffer.from(v.hex, "hex"));
    expect(d.ok).toBe(true);
    expect(toVector((d as { frame: Frame }).frame)).toEqual(v.frame);
    const got: Decoded[] = [];
    new SerialReceiver((x) => got.push(x)).push(Buffer.concat([Buffer.from([0, 0]), wire]));
    expect(got).toEqual([d]);
  });
  it.each(V.invalid)("$name: $reason", (v) => {
    expect(decodeFrame(Buffer.from(v.hex, "hex"))).toEqual({ ok: false, reason: v.reason });
  });
});

// ---------------------------------------------------------------------------------------------
// Against a real gateway: `vigil start` reading one end of a socat pty pair, with the embedded
// broker on a free loopback port; the store is checked through /metrics (gateway/src/http/README.md).

const GATEWAY_NAME = "gw-device-client";
const children: ChildProcess[] = [];
const ptys: PtyPair[] = [];
const links: { close(): Promise<void> }[] = [];
const devices: Device[] = [];

interface Gateway {
  proc: ChildProcess & { log: () => string };
  dataDir: string;
  config: string;
  write(ingest: Record<string, unknown>): void;
  httpPort: number;
  mqttUrl: string;
  pty: PtyPair;
  metric(name: string, labels?: Record<string, string>): Promise<number>;
}

async function startGateway(
  extra: Record<string, unknown>,
  ingest: Record<string, unknown>,
  o: { dataDir?: string; env?: Record<string, string>; mqttAuth?: "registry" } = {},
): Promise<Gateway> {
  const dataDir = o.dataDir ?? mkdtempSync(join(tmpdir(), "device-client-"));
  const pty = await ptyPair(dataDir);
  ptys.push(pty);
  const [httpPort, mqttPort] = [await freePort(), await freePort()];
  const config = join(dataDir, "config.json");
  const write = (ing: Record<string, unknown>) =>
    writeFileSync(
      config,
      JSON.stringify({
        dataDir,
        attest: { enabled: false, gatewayName: GATEWAY_NAME },
        serial: [{ path: pty.b }],
        mqtt: {
          embedded: { port: mqttPort, ...(o.mqttAuth ? { auth: o.mqttAuth } : {}) },
          readingsIntervalMs: null,
        },
        http: { port: httpPort },
        models: { enabled: false },
        log: { level: "warn", statsIntervalMs: 0 },
        ingest: ing,
        ...extra,
      }),
    );
  write(ingest);
  const p = spawn(process.execPath, ["bin/vigil.js", "start", "-c", config], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...o.env },
  });
  let log = "";
  p.stdout.on("data", (d: Buffer) => (log += d.toString()));
  p.stderr.on("data", (d: Buffer) => (log += d.toString()));
  children.push(p);
  const proc = Object.assign(p, { log: () => log });
  const base = `http://127.0.0.1:${httpPort}`;
  await until(
    "the gateway to be ready",
    async () => {
      if (p.exitCode !== null) throw new Error(`vigil start exited: ${log}`);
      return (await fetch(`${base}/readyz`).catch(() => undefined))?.status === 200;
    },
    30_000,
  );
  const metric = async (name: string, labels: Record<string, string> = {}) => {
    const text = await (await fetch(`${base}/metrics`)).text();
    let sum = 0;
    for (const line of text.split("\n")) {
      const m = /^([a-z_]+)(?:\{([^}]*)\})? (\S+)$/.exec(line);
      if (!m || m[1] !== name) continue;
      const have = Object.fromEntries(
        [...(m[2] ?? "").matchAll(/([a-z_]+)="([^"]*)"/g)].map((x) => [x[1]!, x[2]!]),
      );
      if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[3]);
    }
    return sum;
  };
  return { proc, dataDir, config, write, httpPort, mqttUrl: `mqtt://127.0.0.1:${mqttPort}`, pty, metric };
}

/** Waits for `f` (every 25 ms; 10 s by default). */
function until<T>(
  what: string,
  f: () => T | undefined | false | Promise<T | undefined | false>,
  ms = 10_000,
): Promise<T> {
  return waitUntil(what, f, ms, { everyMs: 25 });
}

const CH2: Channel[] = [
  { name: "vib_rms", unit: 1 },
  { name: "temp", unit: 2 },
];
const nowUs = () => Date.now() * 1000;

afterAll(async () => {
  for (const d of devices) d.close();
  for (const l of links) await l.close().catch(() => undefined);
  for (const p of children) await stop(p);
  for (const p of ptys) await p.stop();
});

describe("over serial and MQTT against vigil start", () => {
  let gw: Gateway;
  let line: SerialLink;
  const ALLOWED = [
    0x101, 0x102, 0x103, 0x104, 0x105, 0x106, 0x107, 0x108, 0x109, 0x10a, 0x10b, 0x201, 0x202, 0x203, 0x204,
    0x205,
  ];
  const ingest = (extraAllowed: number[] = []) => ({
    allow: [...ALLOWED, ...extraAllowed].map(hex8),
    revoked: [hex8(0x301)],
    maxSkewMs: 3_600_000,
  });

  beforeAll(async () => {
    gw = await startGateway({}, ingest());
    line = await SerialLink.open(gw.pty.a);
    links.push(line);
  }, 45_000);

  // A resend timeout long enough that a loaded machine never resends before the ACK (counts stay exact).
  const serialDevice = (id: number, o: Partial<DeviceOptions> = {}) => {
    const d = new Device(line, {
      deviceId: id,
      bootId: 1,
      channels: CH2,
      clockUs: nowUs,
      resendMs: 5000,
      ...o,
    });
    devices.push(d);
    return d;
  };
  const nacks = (d: Device) => d.events.filter((e) => e.kind === "nack");
  const acked = (d: Device) => d.events.flatMap((e) => (e.kind === "acked" ? e.seqs : []));

  it("an admitted device: its frames are ACKed once stored, a duplicate is ACKed again and stored once", async () => {
    const d = serialDevice(0x101);
    d.hello();
    const sent = [0, 1, 2, 3, 4].map((i) => d.sample([i, 20 + i]));
    await d.until(() => d.ring.length === 0, 5000, "5 ACKs");
    // ACKed only once stored: the store's count already holds every acknowledged frame.
    expect(await gw.metric("vigil_device_frames_accepted_total", { device: "00000101" })).toBe(5);
    expect(acked(d).sort()).toEqual([0, 1, 2, 3, 4]);
    expect(nacks(d)).toEqual([]);
    const dup0 = await gw.metric("vigil_ingest_frames_duplicate_total");
    d.ring.push(sent[2]!);
    line.send(sent[2]!.bytes);
    await d.until(() => d.ring.length === 0, 5000, "the ACK of a resend");
    expect(await gw.metric("vigil_ingest_frames_duplicate_total")).toBe(dup0 + 1);
    expect(await gw.metric("vigil_device_frames_accepted_total", { device: "00000101" })).toBe(5);
  });

  /** Sends `bad` then a good frame of the same device; the good one's ACK proves the bad one got no reply. */
  async function silentFor(d: Device, bad: Buffer | (() => void), reason?: string): Promise<void> {
    const before = reason ? await gw.metric("vigil_ingest_frames_rejected_total", { reason }) : 0;
    const n = d.events.length;
    if (typeof bad === "function") bad();
    else line.send(bad);
    d.sample([1, 2]);
    await d.until(() => d.ring.length === 0, 5000, `the ACK after a ${reason} frame`);
    expect(d.events.slice(n).filter((e) => e.kind === "nack")).toEqual([]);
    if (reason) expect(await gw.metric("vigil_ingest_frames_rejected_total", { reason })).toBe(before + 1);
  }

  it("Replies and silence: frames failing COBS, CRC, version, type or payload checks, and gateway-bound types, get nothing", async () => {
    const d = serialDevice(0x102);
    d.hello();
    const good = encodeFrame({
      type: T.DATA,
      deviceId: 0x102,
      seq: 77,
      timestampUs: nowUs(),
      flags: 0,
      values: [1, 2],
    });
    const flipped = Buffer.from(good);
    flipped[20]! ^= 0x01;
    await silentFor(d, flipped, "BAD_CRC");
    const v2 = Buffer.from(good);
    v2[0] = 2;
    v2.writeUInt32LE(crc32(v2.subarray(0, v2.length - 4)), v2.length - 4);
    await silentFor(d, v2, "BAD_VERSION");
    await silentFor(d, frameOf(0x09, good.subarray(4, -4)), "BAD_TYPE");
    // A HELLO with unit code 13 fails its payload checks.
    const hello = d.helloFrame();
    const h = Buffer.from(hello.subarray(4, -4));
    h[13 + h[12]! + 1] = 13;
    await silentFor(d, frameOf(T.HELLO, h), "BAD_PAYLOAD");
    await silentFor(d, () => line.writeRaw(Buffer.from([0x05, 0x01, 0x00])), "BAD_COBS");
    await silentFor(
      d,
      encodeFrame({ type: T.ACK, deviceId: 0x102, firstSeq: 1, count: 1, gatewayTimeUs: 0 }),
      "UNEXPECTED_TYPE",
    );
    const offer = Buffer.alloc(52);
    offer.writeUInt32LE(0x102, 0);
    offer.writeUInt32LE(7, 4);
    offer.writeUInt32LE(64, 16);
    await silentFor(d, frameOf(T.FW_OFFER, offer), "UNEXPECTED_TYPE");
    // FW_STATUS and FW_CHUNK_ACK that match no transfer: nothing.
    const status = Buffer.alloc(29);
    status.writeUInt32LE(0x102, 0);
    status[7] = 4; // window
    status[28] = 224; // max_chunk
    await silentFor(d, frameOf(T.FW_STATUS, status));
    const chunkAck = Buffer.alloc(13);
    chunkAck.writeUInt32LE(0x102, 0);
    chunkAck.writeUInt32LE(7, 4);
    await silentFor(d, frameOf(T.FW_CHUNK_ACK, chunkAck));
    // An invalid code byte costs only its own frame, not the frame right after its delimiter.
    const before = await gw.metric("vigil_ingest_frames_rejected_total", { reason: "BAD_COBS" });
    // (Kept by hand, not sampled: sample() would send it once before the garbage.)
    const bytes = encodeFrame({
      type: T.DATA,
      deviceId: 0x102,
      seq: 500,
      timestampUs: nowUs(),
      flags: 0,
      values: [3, 4],
    });
    d.ring.push({ seq: 500, bytes, inflight: 0 });
    line.writeRaw(Buffer.concat([Buffer.from([0x00, 0x09, 0x01]), Buffer.from([0x00]), cobsEncode(bytes)]));
    await d.until(() => d.ring.length === 0, 5000, "the frame after garbage");
    expect(await gw.metric("vigil_ingest_frames_rejected_total", { reason: "BAD_COBS" })).toBe(before + 1);
  });

  it("Replies and silence: size and length faults on the wire get nothing and cost only their own frame", async () => {
    const d = serialDevice(0x109);
    d.hello();
    const good = encodeFrame({
      type: T.DATA,
      deviceId: 0x109,
      seq: 50,
      timestampUs: nowUs(),
      flags: 0,
      values: [1, 2],
    });
    await silentFor(d, good.subarray(0, 5), "TRUNCATED");
    await silentFor(d, frameOf(T.DATA, good.subarray(4, -8)).subarray(0, -2), "TRUNCATED");
    const trailing = Buffer.concat([good, Buffer.from([0x55])]);
    await silentFor(d, trailing, "LENGTH_MISMATCH");
    // 250 bytes without a delimiter: OVERSIZED, dropped until the next 0x00.
    await silentFor(
      d,
      () => line.writeRaw(Buffer.concat([Buffer.alloc(300, 0x07), Buffer.from([0])])),
      "OVERSIZED",
    );
    const error201 = Buffer.concat([Buffer.from([9, 1, 0, 0, 3, 201]), Buffer.alloc(201, 0x61)]);
    await silentFor(d, frameOf(T.ERROR, error201), "BAD_PAYLOAD");
  });

  it("DATA rules: no HELLO needed (the first HELLO adopts the frames before it), reserved flag bits ignored, the first frame of a boot never out of range; ACK carries the gateway's clock", async () => {
    const d = serialDevice(0x10a);
    d.sample([1, 1], { flags: 0xff }); // no HELLO from this device yet
    await d.until(() => d.ring.length === 0, 5000, "the ACK without HELLO");
    expect(Math.abs(d.gatewayTimeUs! - nowUs())).toBeLessThan(5e6);
    // The device's first HELLO adopts the frames it sent before it (PROTOCOL.md, HELLO): they
    // are that boot's frames, so a jump from them is out of range.
    d.reboot();
    d.sample([2, 2], { seq: 2 ** 31 + 7 });
    await d.until(() => d.ring.length === 0, 5000, "the NACK");
    expect(nacks(d)).toEqual([
      { kind: "nack", seq: 2 ** 31 + 7, reason: R.SEQ_OUT_OF_RANGE, action: "drop" },
    ]);
    d.reboot();
    d.sample([3, 3], { seq: 2 ** 31 + 7 });
    await d.until(() => d.ring.length === 0, 5000, "the first frame of a boot");
    expect(nacks(d)).toHaveLength(1);
    expect(await gw.metric("vigil_device_frames_accepted_total", { device: "0000010a" })).toBe(2);
  });

  it("ERROR frames get no reply and are counted per device and code, also from a device not admitted", async () => {
    const d = serialDevice(0x103);
    const all0 = await gw.metric("vigil_ingest_error_frames_total");
    d.hello();
    d.error(1, "thermocouple open");
    d.sample([1, 2]);
    await d.until(() => d.ring.length === 0, 5000, "the ACK after an ERROR");
    expect(nacks(d)).toEqual([]);
    const code = (dev: string, c: string) =>
      gw.metric("vigil_device_error_frames_total", { device: dev, code: c });
    expect(await code("00000103", "sensor_fault")).toBe(1);
    // From a device the gateway does not admit: still no reply (only HELLO and DATA are NACKed).
    const u = serialDevice(0x402);
    line.send(encodeFrame({ type: T.ERROR, deviceId: 0x402, code: 3, message: "héllo" }));
    // Counted in the total only: a refused device gets no per-device state (gateway/src/http/README.md).
    await until(
      "the ERROR counted",
      async () => (await gw.metric("vigil_ingest_error_frames_total")) === all0 + 2,
    );
    expect(await code("00000402", "protocol_error")).toBe(0);
    u.hello(); // the NACK of this HELLO arrives after any reply to the ERROR would have
    await u.until(() => nacks(u).length === 1, 5000, "the NACK of HELLO");
    expect(nacks(u)).toEqual([{ kind: "nack", seq: 0, reason: R.UNKNOWN_DEVICE, action: "stop" }]);
  });

  it("NaN and ±Inf values are stored and ACKed (revision 1.2)", async () => {
    const d = serialDevice(0x104);
    d.hello();
    d.sample([NaN, 1]);
    d.sample([Infinity, -Infinity]);
    await d.until(() => d.ring.length === 0, 5000, "ACKs of non-finite frames");
    expect(nacks(d)).toEqual([]);
    expect(await gw.metric("vigil_device_frames_accepted_total", { device: "00000104" })).toBe(2);
  });

  it("SCHEMA_MISMATCH (channel count): the device sends HELLO, then the resend is stored", async () => {
    const d = serialDevice(0x105);
    d.hello();
    d.sample([1, 2]);
    await d.until(() => d.ring.length === 0);
    // A third channel after a reboot whose HELLO was lost on the line.
    d.o.channels = [...CH2, { name: "speed", unit: 4 }];
    d.bootId++;
    d.sample([1, 2, 3]);
    await d.until(() => d.ring.length === 0, 5000, "the resend after HELLO");
    expect(nacks(d)).toEqual([{ kind: "nack", seq: 1, reason: R.SCHEMA_MISMATCH, action: "hello-resend" }]);
    expect(await gw.metric("vigil_device_frames_accepted_total", { device: "00000105" })).toBe(2);
  });

  it("A lost HELLO: a reused sequence number with other bytes is NACKed SCHEMA_MISMATCH (counted SEQ_REUSED); after HELLO the resend is stored in the new boot", async () => {
    const d = serialDevice(0x106);
    d.hello();
    for (let i = 0; i < 3; i++) d.sample([i, i]);
    await d.until(() => d.ring.length === 0);
    const reused0 = await gw.metric("vigil_ingest_frames_rejected_total", { reason: "SEQ_REUSED" });
    // Reboot, but the HELLO is lost: boot_id moves on, seq restarts at 0.
    d.bootId++;
    d.seq = 0;
    d.sample([9, 9]);
    await d.until(() => d.ring.length === 0, 5000, "the resend after HELLO");
    expect(nacks(d)).toEqual([{ kind: "nack", seq: 0, reason: R.SCHEMA_MISMATCH, action: "hello-resend" }]);
    expect(await gw.metric("vigil_ingest_frames_rejected_total", { reason: "SEQ_REUSED" })).toBe(reused0 + 1);
    expect(await gw.metric("vigil_device_frames_accepted_total", { device: "00000106" })).toBe(4);
  });

  it("A seq reused with other bytes in one boot (a HELLO cannot fix it): HELLO and the resend twice, the 3rd SCHEMA_MISMATCH drops the frame and nothing more is sent for it", async () => {
    const d = serialDevice(0x10b);
    d.hello();
    for (let i = 0; i < 3; i++) d.sample([i, i]);
    await d.until(() => d.ring.length === 0);
    const reused0 = await gw.metric("vigil_ingest_frames_rejected_total", { reason: "SEQ_REUSED" });
    // A reset that kept boot_id: seq 1 again, other bytes, same boot.
    d.sample([9, 9], { seq: 1 });
    await d.until(() => d.ring.length === 0, 5000, "the 3rd SCHEMA_MISMATCH");
    expect(nacks(d)).toEqual([
      { kind: "nack", seq: 1, reason: R.SCHEMA_MISMATCH, action: "hello-resend" },
      { kind: "nack", seq: 1, reason: R.SCHEMA_MISMATCH, action: "hello-resend" },
      { kind: "nack", seq: 1, reason: R.SCHEMA_MISMATCH, action: "drop" },
    ]);
    // Nothing more for it: a later frame on the same (ordered) line is ACKed, and the gateway
    // refused the reused seq exactly 3 times.
    d.sample([4, 4], { seq: 3 });
    await d.until(() => d.ring.length === 0, 5000, "the next frame's ACK");
    expect(nacks(d)).toHaveLength(3);
    expect(await gw.metric("vigil_ingest_frames_rejected_total", { reason: "SEQ_REUSED" })).toBe(reused0 + 3);
    expect(await gw.metric("vigil_device_frames_accepted_total", { device: "0000010b" })).toBe(4);
  });

  it("ABSURD_TIMESTAMP: the device drops the frame and forgets a clock set from ACKs", async () => {
    const d = serialDevice(0x107, { clockUs: undefined });
    d.hello();
    d.sample([1, 1]); // timestamp 0: no clock yet
    await d.until(() => d.ring.length === 0);
    expect(d.gatewayTimeUs).toBeGreaterThan(0);
    d.sample([2, 2], { timestampUs: nowUs() - 2 * 3600e6 });
    await d.until(() => nacks(d).length === 1, 5000, "the NACK");
    expect(nacks(d)).toEqual([{ kind: "nack", seq: 1, reason: R.ABSURD_TIMESTAMP, action: "drop" }]);
    expect(d.ring).toEqual([]);
    expect(d.gatewayTimeUs).toBeUndefined();
    // A frame in the future too; then timestamp 0 (stamped on arrival) is stored.
    d.sample([3, 3], { timestampUs: nowUs() + 2 * 3600e6 });
    d.sample([4, 4]);
    await d.until(() => d.ring.length === 0 && nacks(d).length === 2, 5000, "the NACK and ACK");
    expect(nacks(d)[1]).toMatchObject({ seq: 2, reason: R.ABSURD_TIMESTAMP });
    // NaN values do not change that verdict (Replies and silence).
    d.sample([NaN, 5], { timestampUs: nowUs() - 2 * 3600e6 });
    await d.until(() => nacks(d).length === 3, 5000, "the NACK of a NaN frame");
    expect(nacks(d)[2]).toMatchObject({ seq: 4, reason: R.ABSURD_TIMESTAMP });
    expect(await gw.metric("vigil_device_frames_accepted_total", { device: "00000107" })).toBe(2);
  });

  it("SEQ_OUT_OF_RANGE: a jump beyond 2^24, or before the boot's sequence 0, is dropped; a new boot recovers", async () => {
    const d = serialDevice(0x108);
    d.hello();
    d.sample([1, 1], { seq: 5 });
    await d.until(() => d.ring.length === 0);
    d.sample([2, 2], { seq: 5 + 2 ** 24 + 1 });
    d.sample([3, 3], { seq: 0xffffffff });
    await d.until(() => nacks(d).length === 2, 5000, "two NACKs");
    expect(nacks(d)).toEqual([
      { kind: "nack", seq: 5 + 2 ** 24 + 1, reason: R.SEQ_OUT_OF_RANGE, action: "drop" },
      { kind: "nack", seq: 0xffffffff, reason: R.SEQ_OUT_OF_RANGE, action: "drop" },
    ]);
    expect(d.ring).toEqual([]);
    // Exactly 2^24 away is in range.
    d.sample([4, 4], { seq: 5 + 2 ** 24 });
    await d.until(() => d.ring.length === 0, 5000, "the ACK at the bound");
    d.reboot();
    d.sample([5, 5]);
    await d.until(() => d.ring.length === 0, 5000, "the ACK in a new boot");
    expect(await gw.metric("vigil_device_frames_accepted_total", { device: "00000108" })).toBe(3);
  });

  it("REVOKED_DEVICE: HELLO and DATA are NACKed, the device stops and keeps its frames", async () => {
    const d = serialDevice(0x301, { probeMs: 60_000 });
    d.hello();
    await d.until(() => nacks(d).length === 1, 5000, "the NACK of HELLO");
    expect(nacks(d)).toEqual([{ kind: "nack", seq: 0, reason: R.REVOKED_DEVICE, action: "stop" }]);
    expect(d.stopped).toBe(true);
    d.sample([1, 1]);
    expect(d.ring).toHaveLength(1);
    d.probe();
    await d.until(() => nacks(d).length === 3, 5000, "the probe's NACKs");
    expect(nacks(d).map((e) => [e.seq, e.reason])).toEqual([
      [0, R.REVOKED_DEVICE],
      [0, R.REVOKED_DEVICE],
      [0, R.REVOKED_DEVICE],
    ]);
    expect(d.ring).toHaveLength(1);
  });

  it("A stopped device: UNKNOWN_DEVICE stops it; once registered (SIGHUP), its probe is ACKed, it reports what it dropped and resumes", async () => {
    const d = serialDevice(0x401, { probeMs: 200, ring: 2 });
    d.hello();
    await d.until(() => nacks(d).length === 1, 5000, "the NACK of HELLO");
    expect(nacks(d)[0]).toEqual({ kind: "nack", seq: 0, reason: R.UNKNOWN_DEVICE, action: "stop" });
    for (let i = 0; i < 3; i++) d.sample([i, i]); // the ring keeps 2: one dropped
    await d.until(() => nacks(d).some((e) => e.seq === 1), 5000, "a probe's NACK of DATA");
    expect(d.ring.map((k) => k.seq)).toEqual([1, 2]);
    gw.write(ingest([0x401]));
    gw.proc.kill("SIGHUP");
    await d.until(() => !d.stopped && d.ring.length === 0, 10_000, "the device to resume");
    await until(
      "the ERROR code 2",
      async () =>
        (await gw.metric("vigil_device_error_frames_total", {
          device: "00000401",
          code: "buffer_overflow",
        })) === 1,
    );
    expect(await gw.metric("vigil_device_frames_accepted_total", { device: "00000401" })).toBe(2);
  });

  // ---- MQTT transport ----
  /** A device over MQTT: what arrived, in order (PUBACKs of our frames, frames on /nack). */
  async function mqttDevice(id: number, opts = {}) {
    const link = await MqttLink.open(gw.mqttUrl, id, opts);
    links.push(link);
    const log: string[] = [];
    const nackFrames: Frame[] = [];
    link.onReply((f) => {
      nackFrames.push(f);
      if (f.type === T.NACK) log.push(`nack ${f.seq} ${f.reason}`);
    });
    const closed = new Promise<void>((r) => link.client.once("close", () => r()));
    const pub = (f: Frame | Buffer | string, topic?: string, retain = false) => {
      const bytes = typeof f === "string" || Buffer.isBuffer(f) ? f : encodeFrame(f);
      const seq = typeof f === "object" && !Buffer.isBuffer(f) && f.type === T.DATA ? f.seq : "-";
      return link.publish(bytes, topic, retain).then(() => void log.push(`puback ${seq}`));
    };
    const data = (seq: number, values = [1, 2], timestampUs = nowUs()): Frame => ({
      type: T.DATA,
      deviceId: id,
      seq,
      timestampUs,
      flags: 0,
      values,
    });
    const hello: Frame = {
      type: T.HELLO,
      deviceId: id,
      bootId: 1,
      firmware: { major: 1, minor: 0, patch: 0 },
      profile: "indep-v1",
      channels: CH2,
    };
    return { link, log, nackFrames, pub, data, hello, closed };
  }

  it("MQTT: PUBACK once stored; a refused frame is PUBACKed too, its NACK published on /nack (before or after the PUBACK)", async () => {
    const m = await mqttDevice(0x201);
    await m.pub(m.hello);
    const f = [0, 1, 2].map((i) => m.data(i));
    for (const x of f) await m.pub(x);
    expect(await gw.metric("vigil_device_frames_accepted_total", { device: "00000201" })).toBe(3);
    await m.pub(f[1]!); // a duplicate
    expect(await gw.metric("vigil_device_frames_accepted_total", { device: "00000201" })).toBe(3);
    await m.pub(m.data(2 ** 24 + 9));
    await m.pub(m.data(3, [1, 2], nowUs() - 2 * 3600e6));
    await m.pub(m.data(1, [1, 2, 3]));
    const u = await mqttDevice(0x501);
    await u.pub(u.hello);
    await u.pub(u.data(7));
    await until("the NACKs", () => m.log.length === 11 && u.log.length === 4);
    expect(m.log.slice(0, 5)).toEqual(["puback -", "puback 0", "puback 1", "puback 2", "puback 1"]);
    expect(m.log.slice(5).sort()).toEqual(
      [
        `nack ${2 ** 24 + 9} ${R.SEQ_OUT_OF_RANGE}`,
        `puback ${2 ** 24 + 9}`,
        `nack 3 ${R.ABSURD_TIMESTAMP}`,
        "puback 3",
        `nack 1 ${R.SCHEMA_MISMATCH}`,
        "puback 1",
      ].sort(),
    );
    expect(u.log.sort()).toEqual(
      [`nack 0 ${R.UNKNOWN_DEVICE}`, "puback -", `nack 7 ${R.UNKNOWN_DEVICE}`, "puback 7"].sort(),
    );
  });

  it("MQTT: the device takes a PUBACKed frame back when its NACK follows, and does what the NACK table says", async () => {
    const link = await MqttLink.open(gw.mqttUrl, 0x204);
    links.push(link);
    const d = new Device(link, { deviceId: 0x204, bootId: 1, channels: CH2, clockUs: nowUs, resendMs: 1000 });
    devices.push(d);
    d.hello();
    for (let i = 0; i < 3; i++) d.sample([i, i]);
    await d.until(() => d.ring.length === 0, 5000, "3 PUBACKs standing");
    // A lost HELLO, then a reused sequence number: SCHEMA_MISMATCH, HELLO, the resend is stored.
    d.bootId++;
    d.seq = 0;
    d.sample([7, 7]);
    d.sample([8, 8], { seq: 2 ** 24 + 50 });
    await d.until(() => d.ring.length === 0 && nacks(d).length === 2, 5000, "the NACKs and the resend");
    expect(nacks(d).sort((a, b) => a.reason - b.reason)).toEqual([
      { kind: "nack", seq: 0, reason: R.SCHEMA_MISMATCH, action: "hello-resend" },
      { kind: "nack", seq: 2 ** 24 + 50, reason: R.SEQ_OUT_OF_RANGE, action: "drop" },
    ]);
    expect(await gw.metric("vigil_device_frames_accepted_total", { device: "00000204" })).toBe(4);
    expect(acked(d).filter((x) => x === 2 ** 24 + 50)).toEqual([]);
  });

  it("MQTT: a frame on another device's topic is refused TOPIC_MISMATCH; a retained PUBLISH closes the connection, unstored", async () => {
    const m = await mqttDevice(0x203);
    await m.pub(m.hello);
    const mismatch0 = await gw.metric("vigil_ingest_frames_rejected_total", { reason: "TOPIC_MISMATCH" });
    await m.pub(m.data(0), "vigil/v1/ingest/00000209");
    expect(await gw.metric("vigil_ingest_frames_rejected_total", { reason: "TOPIC_MISMATCH" })).toBe(
      mismatch0 + 1,
    );
    expect(await gw.metric("vigil_device_frames_accepted_total", { device: "00000203" })).toBe(0);
    // QoS 0: stored too, without a PUBACK.
    m.link.client.publish("vigil/v1/ingest/00000203", encodeFrame(m.data(5)), { qos: 0 });
    await until(
      "the QoS 0 frame stored",
      async () => (await gw.metric("vigil_device_frames_accepted_total", { device: "00000203" })) === 1,
    );
    void m.pub(m.data(1), undefined, true).catch(() => undefined);
    await m.closed;
    expect(await gw.metric("vigil_device_frames_accepted_total", { device: "00000203" })).toBe(1);
    expect(m.log).toEqual(["puback -", "puback 0"]);
  });

  it("MQTT: the JSON form is stored like the binary one (null = a missing value); bad JSON is PUBACKed, counted BAD_JSON, never NACKed", async () => {
    const m = await mqttDevice(0x205);
    const topic = "vigil/v1/ingest/00000205/json";
    await m.pub(
      JSON.stringify({
        v: 1,
        type: "hello",
        device: "00000205",
        boot: 3,
        fw: "1.2.7",
        profile: "indep-v1",
        channels: [
          { name: "a", unit: 1 },
          { name: "b", unit: 0 },
        ],
      }),
      topic,
    );
    await m.pub(
      JSON.stringify({ v: 1, type: "data", device: "00000205", seq: 17, ts: nowUs(), values: [0.12, null] }),
      topic,
    );
    await m.pub(
      JSON.stringify({ v: 1, type: "data", device: "00000205", seq: 18, values: [1e39, 3.4] }),
      topic,
    );
    expect(await gw.metric("vigil_device_frames_accepted_total", { device: "00000205" })).toBe(2);
    const bad0 = await gw.metric("vigil_ingest_frames_rejected_total", { reason: "BAD_JSON" });
    await m.pub("{not json", topic);
    await m.pub(JSON.stringify({ v: 1, type: "data", device: "00000205", seq: 19, values: [] }), topic);
    expect(await gw.metric("vigil_ingest_frames_rejected_total", { reason: "BAD_JSON" })).toBe(bad0 + 2);
    // The binary resend of seq 17 with its JSON bytes would be a duplicate; a NaN there is 0x7FC00000.
    await m.pub(m.data(20, [NaN, 1]));
    expect(m.log.filter((l) => l.startsWith("nack"))).toEqual([]);
  });
});

describe("the withhold set against vigil start: STORE_UNAVAILABLE and BUSY", () => {
  let full: Gateway;
  let slow: Gateway;
  beforeAll(async () => {
    [full, slow] = await Promise.all([
      startGateway({ store: { maxBytes: 1 } }, {}),
      startGateway(
        { store: { groupCommitMs: 1000, groupCommitFrames: 100_000 } },
        { maxPending: 100, busyRetryMs: 300 },
      ),
    ]);
  }, 45_000);

  it("STORE_UNAVAILABLE over serial: the device keeps the frame and resends it after its normal timeout", async () => {
    const line = await SerialLink.open(full.pty.a);
    links.push(line);
    const d = new Device(line, { deviceId: 0x601, bootId: 1, channels: CH2, clockUs: nowUs, resendMs: 200 });
    devices.push(d);
    d.hello();
    const t0 = Date.now();
    d.sample([1, 1]);
    await d.until(() => d.events.length >= 2, 5000, "the NACK of the resend");
    expect(Date.now() - t0).toBeGreaterThanOrEqual(200);
    expect(d.events.slice(0, 2)).toEqual([
      { kind: "nack", seq: 0, reason: R.STORE_UNAVAILABLE, action: "keep" },
      { kind: "nack", seq: 0, reason: R.STORE_UNAVAILABLE, action: "keep" },
    ]);
    expect(d.ring.map((k) => k.seq)).toEqual([0]);
    expect(await full.metric("vigil_ingest_frames_accepted_total")).toBe(0);
  });

  it("STORE_UNAVAILABLE over MQTT: no PUBACK, the connection is closed, and the NACK waits in the persistent session", async () => {
    const clientId = "dev-00000602";
    const m = await MqttLink.open(full.mqttUrl, 0x602, { clean: false, clientId });
    const got: Frame[] = [];
    m.onReply((f) => got.push(f));
    const closed = new Promise<void>((r) => m.client.once("close", () => r()));
    let puback = false;
    void m
      .publish(
        encodeFrame({
          type: T.DATA,
          deviceId: 0x602,
          seq: 0,
          timestampUs: nowUs(),
          flags: 0,
          values: [1, 2],
        }),
      )
      .then(
        () => (puback = true),
        () => undefined,
      );
    await closed;
    expect(puback).toBe(false);
    await m.close();
    const again = await MqttLink.open(full.mqttUrl, 0x602, { clean: false, clientId });
    links.push(again);
    again.onReply((f) => got.push(f));
    await until("the NACK after the reconnect", () => got.length > 0, 5000);
    expect(got[0]).toEqual({ type: T.NACK, deviceId: 0x602, seq: 0, reason: R.STORE_UNAVAILABLE });
    expect(puback).toBe(false);
    expect(await full.metric("vigil_ingest_frames_accepted_total")).toBe(0);
  });

  it("BUSY over serial: retry_after_ms as configured; the device holds, resends, and every frame is stored", async () => {
    const line = await SerialLink.open(slow.pty.a);
    links.push(line);
    const ds = [0x701, 0x702, 0x703].map(
      (id) => new Device(line, { deviceId: id, bootId: 1, channels: CH2, clockUs: nowUs, ring: 64 }),
    );
    devices.push(...ds);
    for (const x of ds) x.hello();
    for (let i = 0; i < 60; i++) for (const x of ds) x.sample([i, i]);
    await Promise.all(ds.map((x) => x.until(() => x.ring.length === 0, 20_000, "every frame stored")));
    const busy = ds.flatMap((x) => x.events.filter((e) => e.kind === "nack"));
    expect(busy.length).toBeGreaterThan(0);
    expect(
      new Set(busy.map((e) => (e.kind === "nack" ? `${e.reason} ${e.action} ${e.retryAfterMs}` : ""))),
    ).toEqual(new Set([`${R.BUSY} hold 300`]));
    expect(await slow.metric("vigil_ingest_frames_accepted_total")).toBe(180);
    expect(await slow.metric("vigil_ingest_frames_shed_total", { reason: "BUSY" })).toBe(busy.length);
  }, 30_000);

  it("overload over MQTT: no BUSY NACK; the PUBACKs wait until the store catches up", async () => {
    const m = await MqttLink.open(slow.mqttUrl, 0x704);
    links.push(m);
    const got: Frame[] = [];
    m.onReply((f) => got.push(f));
    const data = (seq: number) =>
      encodeFrame({ type: T.DATA, deviceId: 0x704, seq, timestampUs: nowUs(), flags: 0, values: [1, 2] });
    await Promise.all(Array.from({ length: 150 }, (_, i) => m.publish(data(i))));
    expect(m.client.connected).toBe(true);
    expect(got).toEqual([]);
    expect(await slow.metric("vigil_device_frames_accepted_total", { device: "00000704" })).toBe(150);
  }, 30_000);
});

describe("MQTT device tokens against vigil start with the registry (anvil)", () => {
  let gw: Gateway;
  let chain: LocalChain | undefined;
  let domain: { chainId: number; verifyingContract: string };
  const gatewayId = `0x${Buffer.from(keccak_256(Buffer.from(`vigil-gateway:${GATEWAY_NAME}`))).toString("hex")}`;
  const keys = [0x801, 0x802, 0x803].map(() => secp256k1.utils.randomSecretKey());
  const other = secp256k1.utils.randomSecretKey();
  const inHour = () => Math.floor(Date.now() / 1000) + 3600;

  beforeAll(async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "device-token-"));
    chain = await localChain({ dataDir, gatewayId: gatewayId as `0x${string}` });
    const dep = JSON.parse(readFileSync(join(dataDir, "deployment.json"), "utf8")) as {
      chainId: string;
      contracts: { VigilRegistry: { address: string } };
    };
    domain = { chainId: Number(dep.chainId), verifyingContract: dep.contracts.VigilRegistry.address };
    // The documented command (gateway/src/access/README.md); a secp256k1 key is registered as its address.
    for (const [i, id] of [0x801, 0x802, 0x803].entries()) {
      const r = await runVigil([
        "access", "sensor", "register", "--deployment", join(dataDir, "deployment.json"), "--rpc", chain.anvil.url,
        "--gateway-id", gatewayId, "--sensor", hex8(id), "--public-key", deviceAddress(keys[i]!), "--key-type", "secp256k1",
      ]); // prettier-ignore
      expect(r.code, r.stderr).toBe(0);
    }
    gw = await startGateway(
      { chain: { rpcUrl: chain.anvil.url, deployment: "deployment.json" } },
      { admission: "registry" },
      { dataDir, env: { VIGIL_KEYSTORE_PASSPHRASE: chain.passphrase }, mqttAuth: "registry" },
    );
  }, 60_000);
  afterAll(async () => {
    await chain?.stop();
  });

  /** CONNACK return code of a CONNECT as device `id` with `password` (0 = accepted). */
  async function connack(id: number, password: string): Promise<number> {
    try {
      links.push(await MqttLink.open(gw.mqttUrl, id, { username: hex8(id), password, connectTimeout: 5000 }));
      return 0;
    } catch (e) {
      return (e as { code?: number }).code ?? -1;
    }
  }

  it("a registered key's token connects and its frames are stored; a wrong key, another device's token and a high-s signature are refused (CONNACK 4)", async () => {
    const ok = deviceToken(keys[0]!, domain, gatewayId, 0x801, inHour());
    const link = await MqttLink.open(gw.mqttUrl, 0x801, { username: "00000801", password: ok });
    links.push(link);
    const d = new Device(link, { deviceId: 0x801, bootId: 1, channels: CH2, clockUs: nowUs, resendMs: 1000 });
    devices.push(d);
    d.hello();
    d.sample([1, 2]);
    await d.until(() => d.ring.length === 0, 5000, "the PUBACK standing");
    expect(await gw.metric("vigil_device_frames_accepted_total", { device: "00000801" })).toBe(1);
    // One refusal per username: a failed check holds that username back for 1 s (README).
    expect(await connack(0x802, deviceToken(other, domain, gatewayId, 0x802, inHour()))).toBe(4);
    expect(await connack(0x803, deviceToken(keys[0]!, domain, gatewayId, 0x801, inHour()))).toBe(4);
    expect(
      await connack(0x801, deviceToken(keys[0]!, domain, gatewayId, 0x801, inHour(), { highS: true })),
    ).toBe(4);
  });
});
