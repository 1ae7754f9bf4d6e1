/**
 * An independent device, written from hardware/PROTOCOL.md alone (no code of ours imported, by
 * the lint:deps rule): the frame codec, CRC-32, COBS, the device's resend ring and its reaction
 * to every NACK reason, and the serial and MQTT transports. device-client.test.ts runs it against
 * hardware/vectors/frames.json and a real `vigil start`.
 */
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { keccak_256 } from "@noble/hashes/sha3.js";
import mqtt from "mqtt";
import { SerialPort } from "serialport";

// PROTOCOL.md "Frame layout"
export const VERSION = 1;
export const MAX_PAYLOAD = 240;
export const MAX_FRAME = 248;

export const T = {
  HELLO: 0x01,
  DATA: 0x02,
  ACK: 0x03,
  NACK: 0x04,
  ERROR: 0x05,
  FW_OFFER: 0x10,
  FW_CHUNK: 0x11,
  FW_ABORT: 0x12,
  FW_STATUS: 0x13,
  FW_CHUNK_ACK: 0x14,
} as const;

// PROTOCOL.md "NACK (0x04)"
export const R = {
  NON_FINITE: 1,
  UNKNOWN_DEVICE: 2,
  REVOKED_DEVICE: 3,
  SCHEMA_MISMATCH: 4,
  ABSURD_TIMESTAMP: 5,
  STORE_UNAVAILABLE: 6,
  RATE_LIMITED: 7,
  BUSY: 8,
  SEQ_OUT_OF_RANGE: 9,
} as const;
/** PROTOCOL.md "A bound on SCHEMA_MISMATCH resends" (revision 1.3): the 3rd drops the frame. */
export const SCHEMA_MISMATCH_MAX = 3;

export type Reject =
  | "BAD_COBS"
  | "TRUNCATED"
  | "OVERSIZED"
  | "LENGTH_MISMATCH"
  | "BAD_CRC"
  | "BAD_VERSION"
  | "BAD_TYPE"
  | "BAD_PAYLOAD";

export interface Channel {
  name: string;
  unit: number;
}
export interface Version3 {
  major: number;
  minor: number;
  patch: number;
}
export type Frame =
  | {
      type: 1;
      deviceId: number;
      bootId: number;
      firmware: Version3;
      profile: string;
      channels: Channel[];
    }
  | { type: 2; deviceId: number; seq: number; timestampUs: number; flags: number; values: number[] }
  | { type: 3; deviceId: number; firstSeq: number; count: number; gatewayTimeUs: number }
  | { type: 4; deviceId: number; seq: number; reason: number; retryAfterMs?: number }
  | { type: 5; deviceId: number; code: number; message: string }
  | {
      type: 0x10;
      deviceId: number;
      releaseId: number;
      firmware: Version3;
      securityCounter: number;
      imageSize: number;
      sha256: string;
    }
  | { type: 0x11; deviceId: number; releaseId: number; offset: number; data: string }
  | { type: 0x12; deviceId: number; releaseId: number; reason: number }
  | {
      type: 0x13;
      deviceId: number;
      state: number;
      result: number;
      reason: number;
      window: number;
      releaseId: number;
      nextOffset: number;
      slotSize: number;
      securityCounter: number;
      firmware: Version3;
      maxChunk: number;
    }
  | { type: 0x14; deviceId: number; releaseId: number; nextOffset: number; status: number };

// ---- CRC-32/ISO-HDLC, bit by bit from the parameters in PROTOCOL.md ("CRC") ----
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();
export function crc32(b: Uint8Array): number {
  let c = 0xffffffff;
  for (const x of b) c = CRC_TABLE[(c ^ x) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

// ---- COBS (PROTOCOL.md "Serial framing: COBS") ----
/** COBS-encodes a frame and appends the 0x00 delimiter. */
export function cobsEncode(data: Uint8Array): Buffer {
  const out: number[] = [0];
  let codeAt = 0;
  let code = 1;
  for (const b of data) {
    if (b === 0) {
      out[codeAt] = code;
      codeAt = out.push(0) - 1;
      code = 1;
    } else {
      out.push(b);
      code++;
      if (code === 0xff) {
        out[codeAt] = code;
        codeAt = out.push(0) - 1;
        code = 1;
      }
    }
  }
  out[codeAt] = code;
  out.push(0);
  return Buffer.from(out);
}
/** Decodes the bytes between two delimiters; undefined when a code byte is invalid. */
export function cobsDecode(enc: Uint8Array): Buffer | undefined {
  const out: number[] = [];
  let i = 0;
  while (i < enc.length) {
    const code = enc[i]!;
    if (code === 0 || i + code > enc.length) return undefined;
    for (let k = 1; k < code; k++) {
      const b = enc[i + k]!;
      if (b === 0) return undefined;
      out.push(b);
    }
    i += code;
    if (code !== 0xff && i < enc.length) out.push(0);
  }
  return Buffer.from(out);
}

// ---- frame codec ----
const u64 = (b: Buffer, o: number) => Number(b.readBigUInt64LE(o));
const TWO53 = 2 ** 53;
const isUtf8 = (b: Buffer): boolean => {
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(b);
    return true;
  } catch {
    return false;
  }
};

export function encodePayload(f: Frame): Buffer {
  switch (f.type) {
    case T.HELLO: {
      const parts: Buffer[] = [];
      const head = Buffer.alloc(13);
      head.writeUInt32LE(f.deviceId, 0);
      head.writeUInt32LE(f.bootId, 4);
      head.writeUInt8(f.firmware.major, 8);
      head.writeUInt8(f.firmware.minor, 9);
      head.writeUInt16LE(f.firmware.patch, 10);
      head.writeUInt8(f.profile.length, 12);
      parts.push(head, Buffer.from(f.profile, "ascii"), Buffer.from([f.channels.length]));
      for (const c of f.channels)
        parts.push(Buffer.from([c.unit, c.name.length]), Buffer.from(c.name, "ascii"));
      return Buffer.concat(parts);
    }
    case T.DATA: {
      const b = Buffer.alloc(18 + 4 * f.values.length);
      b.writeUInt32LE(f.deviceId, 0);
      b.writeUInt32LE(f.seq, 4);
      b.writeBigUInt64LE(BigInt(f.timestampUs), 8);
      b.writeUInt8(f.values.length, 16);
      b.writeUInt8(f.flags, 17);
      f.values.forEach((v, i) => b.writeFloatLE(v, 18 + 4 * i));
      return b;
    }
    case T.ACK: {
      const b = Buffer.alloc(18);
      b.writeUInt32LE(f.deviceId, 0);
      b.writeUInt32LE(f.firstSeq, 4);
      b.writeUInt16LE(f.count, 8);
      b.writeBigUInt64LE(BigInt(f.gatewayTimeUs), 10);
      return b;
    }
    case T.NACK: {
      const b = Buffer.alloc(f.reason === R.BUSY ? 11 : 9);
      b.writeUInt32LE(f.deviceId, 0);
      b.writeUInt32LE(f.seq, 4);
      b.writeUInt8(f.reason, 8);
      if (f.reason === R.BUSY) b.writeUInt16LE(f.retryAfterMs ?? 0, 9);
      return b;
    }
    case T.ERROR: {
      const m = Buffer.from(f.message, "utf8");
      const b = Buffer.alloc(6);
      b.writeUInt32LE(f.deviceId, 0);
      b.writeUInt8(f.code, 4);
      b.writeUInt8(m.length, 5);
      return Buffer.concat([b, m]);
    }
    case T.FW_OFFER: {
      const b = Buffer.alloc(20);
      b.writeUInt32LE(f.deviceId, 0);
      b.writeUInt32LE(f.releaseId, 4);
      b.writeUInt8(f.firmware.major, 8);
      b.writeUInt8(f.firmware.minor, 9);
      b.writeUInt16LE(f.firmware.patch, 10);
      b.writeUInt32LE(f.securityCounter, 12);
      b.writeUInt32LE(f.imageSize, 16);
      return Buffer.concat([b, Buffer.from(f.sha256, "hex")]);
    }
    case T.FW_CHUNK: {
      const d = Buffer.from(f.data, "hex");
      const b = Buffer.alloc(16);
      b.writeUInt32LE(f.deviceId, 0);
      b.writeUInt32LE(f.releaseId, 4);
      b.writeUInt32LE(f.offset, 8);
      b.writeUInt32LE(crc32(d), 12);
      return Buffer.concat([b, d]);
    }
    case T.FW_ABORT: {
      const b = Buffer.alloc(9);
      b.writeUInt32LE(f.deviceId, 0);
      b.writeUInt32LE(f.releaseId, 4);
      b.writeUInt8(f.reason, 8);
      return b;
    }
    case T.FW_STATUS: {
      const b = Buffer.alloc(29);
      b.writeUInt32LE(f.deviceId, 0);
      b.writeUInt8(f.state, 4);
      b.writeUInt8(f.result, 5);
      b.writeUInt8(f.reason, 6);
      b.writeUInt8(f.window, 7);
      b.writeUInt32LE(f.releaseId, 8);
      b.writeUInt32LE(f.nextOffset, 12);
      b.writeUInt32LE(f.slotSize, 16);
      b.writeUInt32LE(f.securityCounter, 20);
      b.writeUInt8(f.firmware.major, 24);
      b.writeUInt8(f.firmware.minor, 25);
      b.writeUInt16LE(f.firmware.patch, 26);
      b.writeUInt8(f.maxChunk, 28);
      return b;
    }
    case T.FW_CHUNK_ACK: {
      const b = Buffer.alloc(13);
      b.writeUInt32LE(f.deviceId, 0);
      b.writeUInt32LE(f.releaseId, 4);
      b.writeUInt32LE(f.nextOffset, 8);
      b.writeUInt8(f.status, 12);
      return b;
    }
  }
}

/** The unencoded frame: header, payload, CRC. */
export function encodeFrame(f: Frame): Buffer {
  return frameOf(f.type, encodePayload(f));
}
/** A frame of any type byte around any payload (for frames the codec would refuse). */
export function frameOf(type: number, payload: Buffer, version = VERSION): Buffer {
  const b = Buffer.alloc(8 + payload.length);
  b[0] = version;
  b[1] = type;
  b.writeUInt16LE(payload.length, 2);
  payload.copy(b, 4);
  b.writeUInt32LE(crc32(b.subarray(0, 4 + payload.length)), 4 + payload.length);
  return b;
}

export type Decoded = { ok: true; frame: Frame } | { ok: false; reason: Reject };

/** PROTOCOL.md: size, length, CRC, version, type, payload checks, in that order. */
export function decodeFrame(b: Buffer): Decoded {
  const no = (reason: Reject): Decoded => ({ ok: false, reason });
  if (b.length < 8) return no("TRUNCATED");
  const n = b.readUInt16LE(2);
  if (b.length > MAX_FRAME || n > MAX_PAYLOAD) return no("OVERSIZED");
  if (b.length < 8 + n) return no("TRUNCATED");
  if (b.length > 8 + n) return no("LENGTH_MISMATCH");
  if (crc32(b.subarray(0, 4 + n)) !== b.readUInt32LE(4 + n)) return no("BAD_CRC");
  if (b[0] !== VERSION) return no("BAD_VERSION");
  const p = b.subarray(4, 4 + n);
  const type = b[1]!;
  const frame = decodePayload(type, p);
  if (frame === "BAD_TYPE") return no("BAD_TYPE");
  return frame ? { ok: true, frame } : no("BAD_PAYLOAD");
}

const validName = (s: string) => /^[a-z0-9_]{1,15}$/.test(s);

function decodePayload(type: number, p: Buffer): Frame | undefined | "BAD_TYPE" {
  const id = () => p.readUInt32LE(0);
  switch (type) {
    case T.HELLO: {
      if (p.length < 14) return undefined;
      const P = p[12]!;
      if (P > 31 || p.length < 14 + P) return undefined;
      const profile = p.subarray(13, 13 + P);
      if (profile.some((c) => c < 0x21 || c > 0x7e)) return undefined;
      let o = 13 + P;
      const count = p[o++]!;
      if (count < 1 || count > 32) return undefined;
      const channels: Channel[] = [];
      for (let i = 0; i < count; i++) {
        if (o + 2 > p.length) return undefined;
        const unit = p[o]!;
        const len = p[o + 1]!;
        o += 2;
        if (unit > 12 || len < 1 || len > 15 || o + len > p.length) return undefined;
        const name = p.subarray(o, o + len).toString("latin1");
        if (!validName(name)) return undefined;
        channels.push({ name, unit });
        o += len;
      }
      if (o !== p.length) return undefined;
      return {
        type,
        deviceId: id(),
        bootId: p.readUInt32LE(4),
        firmware: { major: p[8]!, minor: p[9]!, patch: p.readUInt16LE(10) },
        profile: profile.toString("latin1"),
        channels,
      };
    }
    case T.DATA: {
      if (p.length < 22) return undefined;
      const count = p[16]!;
      if (count < 1 || count > 32 || p.length !== 18 + 4 * count) return undefined;
      const ts = u64(p, 8);
      if (p.readBigUInt64LE(8) >= BigInt(TWO53)) return undefined;
      const values: number[] = [];
      for (let i = 0; i < count; i++) values.push(p.readFloatLE(18 + 4 * i));
      return { type, deviceId: id(), seq: p.readUInt32LE(4), timestampUs: ts, flags: p[17]!, values };
    }
    case T.ACK: {
      if (p.length !== 18) return undefined;
      const count = p.readUInt16LE(8);
      if (count < 1) return undefined;
      return { type, deviceId: id(), firstSeq: p.readUInt32LE(4), count, gatewayTimeUs: u64(p, 10) };
    }
    case T.NACK: {
      const reason = p[8];
      if (p.length === 9 && reason !== R.BUSY)
        return { type, deviceId: id(), seq: p.readUInt32LE(4), reason: reason! };
      if (p.length === 11 && reason === R.BUSY) {
        const retryAfterMs = p.readUInt16LE(9);
        if (retryAfterMs === 0) return undefined;
        return { type, deviceId: id(), seq: p.readUInt32LE(4), reason, retryAfterMs };
      }
      return undefined;
    }
    case T.ERROR: {
      if (p.length < 6) return undefined;
      const m = p[5]!;
      if (m > 200 || p.length !== 6 + m) return undefined;
      const msg = p.subarray(6);
      if (!isUtf8(msg)) return undefined;
      return { type, deviceId: id(), code: p[4]!, message: msg.toString("utf8") };
    }
    case T.FW_OFFER: {
      if (p.length !== 52) return undefined;
      const releaseId = p.readUInt32LE(4);
      const imageSize = p.readUInt32LE(16);
      if (releaseId === 0 || imageSize === 0) return undefined;
      return {
        type,
        deviceId: id(),
        releaseId,
        firmware: { major: p[8]!, minor: p[9]!, patch: p.readUInt16LE(10) },
        securityCounter: p.readUInt32LE(12),
        imageSize,
        sha256: p.subarray(20).toString("hex"),
      };
    }
    case T.FW_CHUNK: {
      const n = p.length - 16;
      if (n < 1 || n > 224) return undefined;
      const releaseId = p.readUInt32LE(4);
      const offset = p.readUInt32LE(8);
      const data = p.subarray(16);
      if (releaseId === 0 || offset + n > 2 ** 32 || crc32(data) !== p.readUInt32LE(12)) return undefined;
      return { type, deviceId: id(), releaseId, offset, data: data.toString("hex") };
    }
    case T.FW_ABORT: {
      if (p.length !== 9 || p.readUInt32LE(4) === 0) return undefined;
      return { type, deviceId: id(), releaseId: p.readUInt32LE(4), reason: p[8]! };
    }
    case T.FW_STATUS: {
      if (p.length !== 29) return undefined;
      const [state, result, reason, window, maxChunk] = [p[4]!, p[5]!, p[6]!, p[7]!, p[28]!];
      if (state > 3 || result > 4 || window < 1 || window > 16 || maxChunk < 16 || maxChunk > 224)
        return undefined;
      return {
        type,
        deviceId: id(),
        state,
        result,
        reason,
        window,
        releaseId: p.readUInt32LE(8),
        nextOffset: p.readUInt32LE(12),
        slotSize: p.readUInt32LE(16),
        securityCounter: p.readUInt32LE(20),
        firmware: { major: p[24]!, minor: p[25]!, patch: p.readUInt16LE(26) },
        maxChunk,
      };
    }
    case T.FW_CHUNK_ACK: {
      if (p.length !== 13 || p.readUInt32LE(4) === 0 || p[12]! > 3) return undefined;
      return {
        type,
        deviceId: id(),
        releaseId: p.readUInt32LE(4),
        nextOffset: p.readUInt32LE(8),
        status: p[12]!,
      };
    }
    default:
      return "BAD_TYPE";
  }
}

/** Serial receiver (PROTOCOL.md "Serial framing: COBS", steps 1–3). */
export class SerialReceiver {
  private buf: number[] = [];
  private dropping = false;
  constructor(private readonly on: (d: Decoded) => void) {}
  push(chunk: Uint8Array): void {
    for (const b of chunk) {
      if (b !== 0) {
        if (this.dropping) continue;
        if (this.buf.length === 249) {
          this.buf = [];
          this.dropping = true;
          this.on({ ok: false, reason: "OVERSIZED" });
          continue;
        }
        this.buf.push(b);
        continue;
      }
      const enc = this.buf;
      this.buf = [];
      if (this.dropping) {
        this.dropping = false;
        continue;
      }
      if (enc.length === 0) continue;
      const raw = cobsDecode(Uint8Array.from(enc));
      this.on(raw ? decodeFrame(raw) : { ok: false, reason: "BAD_COBS" });
    }
  }
}

// ---- transports ----
/** One way to reach the gateway. */
export interface Link {
  send(frame: Buffer): void;
  onReply(f: (frame: Frame) => void): void;
  /** MQTT only: the broker's PUBACK of a frame sent, by its bytes (PROTOCOL.md "MQTT transport"). */
  onPuback?(f: (frame: Buffer) => void): void;
  close(): Promise<void>;
}

export class SerialLink implements Link {
  readonly rejects: Reject[] = [];
  private handlers: ((f: Frame) => void)[] = [];
  private constructor(private readonly port: SerialPort) {
    const rx = new SerialReceiver((d) => {
      if (d.ok) for (const h of this.handlers) h(d.frame);
      else this.rejects.push(d.reason);
    });
    port.on("data", (c: Buffer) => rx.push(c));
  }
  static async open(path: string): Promise<SerialLink> {
    const port = new SerialPort({ path, baudRate: 115200, autoOpen: false });
    await new Promise<void>((res, rej) => port.open((e) => (e ? rej(e) : res())));
    return new SerialLink(port);
  }
  /** Raw bytes onto the line (a frame already COBS-encoded, or garbage). */
  writeRaw(b: Buffer): void {
    this.port.write(b);
  }
  send(frame: Buffer): void {
    this.port.write(cobsEncode(frame));
  }
  onReply(f: (frame: Frame) => void): void {
    this.handlers.push(f);
  }
  close(): Promise<void> {
    return new Promise((r) => (this.port.isOpen ? this.port.close(() => r()) : r()));
  }
}

/** PROTOCOL.md "MQTT transport": QoS 1 PUBLISH on vigil/v1/ingest/{id}, NACKs on …/nack. */
export class MqttLink implements Link {
  private handlers: ((f: Frame) => void)[] = [];
  private pubackHandlers: ((f: Buffer) => void)[] = [];
  /** Frames that arrived before a handler was set (a stored session delivers at once on CONNACK). */
  private early: Frame[] = [];
  private constructor(
    readonly client: mqtt.MqttClient,
    readonly hexId: string,
  ) {
    client.on("message", (_topic, payload) => {
      const d = decodeFrame(payload);
      if (!d.ok) return;
      if (this.handlers.length === 0) this.early.push(d.frame);
      for (const h of this.handlers) h(d.frame);
    });
  }
  static async open(url: string, deviceId: number, opts: mqtt.IClientOptions = {}): Promise<MqttLink> {
    const hexId = hex8(deviceId);
    const client = mqtt.connect(url, {
      protocolVersion: 4,
      clientId: `dev-${hexId}-${Math.random().toString(16).slice(2, 8)}`,
      reconnectPeriod: 0,
      ...opts,
    });
    const link = new MqttLink(client, hexId);
    await new Promise<void>((res, rej) => {
      client.once("connect", () => res());
      client.once("error", rej);
      client.once("close", () => rej(new Error(`MQTT connection to ${url} closed before CONNACK`)));
    });
    await client.subscribeAsync(`vigil/v1/ingest/${hexId}/nack`, { qos: 1 });
    return link;
  }
  /** Publishes and resolves on PUBACK; rejects when the connection closes first. */
  publish(payload: Buffer | string, topic = `vigil/v1/ingest/${this.hexId}`, retain = false): Promise<void> {
    return this.client.publishAsync(topic, payload, { qos: 1, retain }).then(() => undefined);
  }
  send(frame: Buffer): void {
    this.publish(frame).then(
      () => {
        for (const h of this.pubackHandlers) h(frame);
      },
      () => undefined, // the connection closed: the session resends it after a reconnect
    );
  }
  onPuback(f: (frame: Buffer) => void): void {
    this.pubackHandlers.push(f);
  }
  onReply(f: (frame: Frame) => void): void {
    this.handlers.push(f);
    for (const x of this.early.splice(0)) f(x);
  }
  close(): Promise<void> {
    return this.client.endAsync(true).then(() => undefined);
  }
}

export const hex8 = (id: number) => id.toString(16).padStart(8, "0");

// ---- the device ----
export interface DeviceOptions {
  deviceId: number;
  bootId: number;
  profile?: string;
  channels: Channel[];
  firmware?: Version3;
  /** resend timeout, doubling up to 8 s (PROTOCOL.md "Serial framing": 500 ms) */
  resendMs?: number;
  /** ring size (the reference keeps 32) */
  ring?: number;
  /** a stopped device's probe interval ("at most once a minute") */
  probeMs?: number;
  /** µs clock of the device; undefined: no clock (timestamp from ACKs, else 0) */
  clockUs?: (() => number) | undefined;
}

interface Kept {
  seq: number;
  bytes: Buffer;
  /** MQTT: PUBLISHes of it awaiting their PUBACK */
  inflight: number;
  /** MQTT: a PUBACK stands as its ACK when no NACK follows before this timer fires */
  settle?: NodeJS.Timeout | undefined;
  /** MQTT: NACKed while a PUBLISH of it awaited its PUBACK (that PUBACK acknowledges nothing) */
  refusedInFlight?: boolean;
  /** SCHEMA_MISMATCH NACKs of this frame ("A bound on SCHEMA_MISMATCH resends") */
  schemaMismatches?: number;
}

/** What the device did with each reply, for the tests to assert against the NACK table. */
export type Event =
  | { kind: "acked"; seqs: number[] }
  | {
      kind: "nack";
      seq: number;
      reason: number;
      action: "drop" | "keep" | "hello-resend" | "stop" | "hold";
      retryAfterMs?: number;
    };

/**
 * A device per PROTOCOL.md: a ring of unacknowledged DATA frames resent after a timeout, the
 * NACK table's actions, the stopped state and its probe, the BUSY hold.
 */
/** Conditions waited on until `wake()` (after each frame in or out) finds them true. */
export class Waiters {
  private list: (() => void)[] = [];

  /** Resolves when `pred` holds at a wake (or at once); rejects after `ms` naming `what()`. */
  until(pred: () => boolean, ms: number, what: () => string): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise((res, rej) => {
      const t = setTimeout(() => rej(new Error(`timed out waiting for ${what()}`)), ms);
      const check = () => {
        if (pred()) {
          clearTimeout(t);
          res();
        } else this.list.push(check);
      };
      this.list.push(check);
    });
  }

  wake(): void {
    const w = this.list;
    this.list = [];
    for (const f of w) f();
  }
}

export class Device {
  readonly id: number;
  bootId: number;
  seq = 0;
  readonly ring: Kept[] = [];
  readonly events: Event[] = [];
  stopped = false;
  holdUntil = 0;
  dropped = 0;
  gatewayTimeUs: number | undefined;
  private gatewayTimeAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private backoff: number;
  private probeTimer: NodeJS.Timeout | undefined;
  private holdTimer: NodeJS.Timeout | undefined;
  private busyFirst: number | undefined;
  private readonly waits = new Waiters();

  constructor(
    readonly link: Link,
    readonly o: DeviceOptions,
  ) {
    this.id = o.deviceId;
    this.bootId = o.bootId;
    this.backoff = o.resendMs ?? 500;
    link.onReply((f) => this.onReply(f));
    link.onPuback?.((bytes) => this.onPuback(bytes));
  }

  /** Sends a kept frame (counting its PUBLISH in flight over MQTT). */
  private transmit(k: Kept): void {
    if (this.link.onPuback) {
      k.inflight++;
      k.refusedInFlight = false;
    }
    this.link.send(k.bytes);
  }

  /**
   * MQTT: the gateway PUBACKs refused frames too, and their NACK may arrive before or after the
   * PUBACK (PROTOCOL.md "MQTT transport"): the PUBACK stands as the ACK once no NACK came within
   * the reply timeout; a NACK before then takes the frame back.
   */
  private onPuback(bytes: Buffer): void {
    const k = this.ring.find((x) => x.bytes.equals(bytes));
    if (!k) return;
    k.inflight = Math.max(0, k.inflight - 1);
    if (k.inflight > 0) return; // a later PUBLISH of it decides
    if (k.refusedInFlight) {
      k.refusedInFlight = false; // its NACK came first
      return;
    }
    clearTimeout(k.settle);
    k.settle = setTimeout(() => {
      k.settle = undefined;
      if (this.ring.includes(k)) {
        this.onAck(k.seq, 1, undefined);
        this.wake();
      }
    }, this.o.resendMs ?? 500);
  }

  helloFrame(): Buffer {
    return encodeFrame({
      type: T.HELLO,
      deviceId: this.id,
      bootId: this.bootId,
      firmware: this.o.firmware ?? { major: 1, minor: 0, patch: 0 },
      profile: this.o.profile ?? "indep-v1",
      channels: this.o.channels,
    });
  }
  hello(): void {
    this.link.send(this.helloFrame());
  }
  /** A new boot: HELLO with the next boot_id, sequence from 0 (PROTOCOL.md "boot_id"). */
  reboot(): void {
    this.bootId = (this.bootId + 1) >>> 0;
    this.seq = 0;
    this.ring.length = 0;
    this.hello();
  }

  private nowUs(): number {
    if (this.o.clockUs) return this.o.clockUs();
    if (this.gatewayTimeUs === undefined) return 0;
    return this.gatewayTimeUs + (Date.now() - this.gatewayTimeAt) * 1000;
  }

  /** Samples one DATA frame into the ring and sends it unless stopped or held. */
  sample(values: number[], over: { seq?: number; timestampUs?: number; flags?: number } = {}): Kept {
    const seq = over.seq ?? this.seq;
    this.seq = (seq + 1) >>> 0;
    const bytes = encodeFrame({
      type: T.DATA,
      deviceId: this.id,
      seq,
      timestampUs: over.timestampUs ?? this.nowUs(),
      flags: over.flags ?? 0,
      values,
    });
    const k: Kept = { seq, bytes, inflight: 0 };
    this.ring.push(k);
    if (this.ring.length > (this.o.ring ?? 32)) {
      this.ring.shift();
      this.dropped++;
    }
    if (!this.stopped && Date.now() >= this.holdUntil) this.transmit(k);
    this.arm();
    return k;
  }

  /** An ERROR frame (code 1 sensor fault, 2 buffer overflow, 3 protocol error, 4 other). */
  error(code: number, message: string): void {
    if (this.stopped) return; // a stopped device sends no ERROR
    this.link.send(encodeFrame({ type: T.ERROR, deviceId: this.id, code, message }));
  }

  private arm(): void {
    if (this.timer || this.ring.length === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.resendOldest();
      this.backoff = Math.min(this.backoff * 2, 8000);
      this.arm();
    }, this.backoff);
  }
  private resendOldest(): void {
    if (this.stopped || Date.now() < this.holdUntil) return;
    const k = this.ring[0];
    // Over MQTT a PUBLISH awaiting its PUBACK is the session's to resend, not the device's.
    if (k && k.inflight === 0 && !k.settle) this.transmit(k);
  }

  /** Resolves when `pred` holds after a reply (or at once). */
  until(pred: () => boolean, ms = 10_000, what = "the device"): Promise<void> {
    return this.waits.until(pred, ms, () => `${what}: ${JSON.stringify(this.events)}`);
  }
  private wake(): void {
    this.waits.wake();
  }

  onReply(f: Frame): void {
    if (f.deviceId !== this.id) return; // several devices may share a line
    if (f.type === T.ACK) this.onAck(f.firstSeq, f.count, f.gatewayTimeUs);
    else if (f.type === T.NACK) this.onNack(f.seq, f.reason, f.retryAfterMs);
    this.wake();
  }

  /** An MQTT PUBACK of a DATA frame that no NACK followed is its ACK (PROTOCOL.md "MQTT transport"). */
  mqttAck(seq: number): void {
    this.onAck(seq, 1, undefined);
    this.wake();
  }

  private onAck(first: number, count: number, gatewayTimeUs: number | undefined): void {
    const seqs: number[] = [];
    for (let i = 0; i < count; i++) seqs.push((first + i) >>> 0);
    const had = this.ring.length;
    for (let i = this.ring.length - 1; i >= 0; i--)
      if (seqs.includes(this.ring[i]!.seq)) this.ring.splice(i, 1);
    if (gatewayTimeUs !== undefined) {
      this.gatewayTimeUs = gatewayTimeUs;
      this.gatewayTimeAt = Date.now();
    }
    this.events.push({ kind: "acked", seqs });
    this.backoff = this.o.resendMs ?? 500;
    if (this.stopped && had !== this.ring.length) {
      // "an ACK naming it means the device was registered (again): it resumes, reports what its
      // ring dropped meanwhile (ERROR code 2) and sends its kept frames"
      this.stopped = false;
      clearInterval(this.probeTimer);
      this.probeTimer = undefined;
      if (this.dropped > 0) this.error(2, `${this.dropped} frames dropped`);
      this.dropped = 0;
      for (const k of this.ring) this.transmit(k);
    }
  }

  private onNack(seq: number, reason: number, retryAfterMs: number | undefined): void {
    const kept = this.ring.find((x) => x.seq === seq);
    if (kept) {
      clearTimeout(kept.settle); // taken back from its PUBACK
      kept.settle = undefined;
      if (kept.inflight > 0) kept.refusedInFlight = true;
    }
    const drop = () => {
      const i = this.ring.findIndex((k) => k.seq === seq);
      if (i >= 0) this.ring.splice(i, 1);
    };
    const ev = (action: Extract<Event, { kind: "nack" }>["action"]) =>
      this.events.push({ kind: "nack", seq, reason, action, ...(retryAfterMs ? { retryAfterMs } : {}) });
    switch (reason) {
      case R.UNKNOWN_DEVICE:
      case R.REVOKED_DEVICE:
        ev("stop");
        this.stop();
        return;
      case R.SCHEMA_MISMATCH: {
        // "at the third (SCHEMA_MISMATCH_MAX = 3) it drops the frame ... and sends nothing more for it"
        if (kept) kept.schemaMismatches = (kept.schemaMismatches ?? 0) + 1;
        if (kept && kept.schemaMismatches! >= SCHEMA_MISMATCH_MAX) {
          ev("drop");
          drop();
          return;
        }
        ev("hello-resend");
        this.hello();
        if (kept) this.transmit(kept);
        return;
      }
      case R.ABSURD_TIMESTAMP:
        ev("drop");
        drop();
        this.gatewayTimeUs = undefined; // forget a clock set from ACKs
        return;
      case R.STORE_UNAVAILABLE:
      case R.RATE_LIMITED:
        ev("keep");
        return;
      case R.BUSY: {
        ev("hold");
        const until = Date.now() + (retryAfterMs ?? 0);
        if (until > this.holdUntil) this.holdUntil = until; // extends, never shortens
        this.busyFirst ??= seq;
        clearTimeout(this.holdTimer);
        this.holdTimer = setTimeout(() => this.endHold(), Math.max(0, this.holdUntil - Date.now()));
        return;
      }
      default: // NON_FINITE (gateways before 1.2), SEQ_OUT_OF_RANGE, unknown reasons
        ev("drop");
        drop();
    }
  }

  /**
   * The end of a BUSY hold: the frame the first BUSY named goes first (PROTOCOL.md: "then resend
   * it first"), then the rest of the ring, in order.
   */
  private endHold(): void {
    this.holdTimer = undefined;
    const first = this.busyFirst;
    this.busyFirst = undefined;
    if (this.stopped) return;
    const k = this.ring.find((x) => x.seq === first);
    const rest = this.ring.filter((x) => x !== k && x.inflight === 0 && !x.settle);
    for (const x of k ? [k, ...rest] : rest) this.transmit(x);
  }

  /** Stopped: no DATA, no ERROR; a probe (HELLO, then the oldest kept DATA) every probeMs. */
  private stop(): void {
    this.stopped = true;
    if (this.probeTimer) return;
    this.probeTimer = setInterval(() => this.probe(), Math.max(this.o.probeMs ?? 60_000, 1));
  }
  probe(): void {
    this.hello();
    const k = this.ring[0];
    if (k) this.transmit(k);
  }

  close(): void {
    for (const k of this.ring) clearTimeout(k.settle);
    clearTimeout(this.timer);
    clearTimeout(this.holdTimer);
    clearInterval(this.probeTimer);
  }
}

// ---- MQTT device tokens (gateway/src/access/README.md, "Who may send") ----
const kec = (...parts: Uint8Array[]) => keccak_256(Buffer.concat(parts));
const utf8 = (s: string) => Buffer.from(s, "utf8");
const u256 = (n: bigint) => Buffer.from(n.toString(16).padStart(64, "0"), "hex");
const unhex = (h: string) => Buffer.from(h.replace(/^0x/, ""), "hex");

/** The registry's EIP-712 domain: { name "VigilRegistry", version "1", chainId, verifyingContract }. */
export interface RegistryDomain {
  chainId: number;
  verifyingContract: string;
}

/** The Ethereum address of a secp256k1 key (what `vigil access sensor register --public-key` takes). */
export function deviceAddress(secretKey: Uint8Array): string {
  const pub = secp256k1.getPublicKey(secretKey, false).subarray(1);
  return `0x${Buffer.from(keccak_256(pub).subarray(12)).toString("hex")}`;
}

/** EIP-712 digest of DeviceToken(bytes32 gatewayId,uint32 deviceId,uint64 expiresAt). */
export function deviceTokenDigest(
  d: RegistryDomain,
  gatewayId: string,
  deviceId: number,
  expiresAt: number,
): Uint8Array {
  const domainSeparator = kec(
    kec(utf8("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")),
    kec(utf8("VigilRegistry")),
    kec(utf8("1")),
    u256(BigInt(d.chainId)),
    Buffer.concat([Buffer.alloc(12), unhex(d.verifyingContract)]),
  );
  const struct = kec(
    kec(utf8("DeviceToken(bytes32 gatewayId,uint32 deviceId,uint64 expiresAt)")),
    unhex(gatewayId),
    u256(BigInt(deviceId)),
    u256(BigInt(expiresAt)),
  );
  return kec(Buffer.from([0x19, 0x01]), domainSeparator, struct);
}

/**
 * `vdt1.<expiresAt>.<0x r‖s‖v>`, v = 27/28, s low; `highS` gives the same signature with s' = n − s
 * (which the document says is refused).
 */
export function deviceToken(
  secretKey: Uint8Array,
  d: RegistryDomain,
  gatewayId: string,
  deviceId: number,
  expiresAt: number,
  o: { highS?: boolean } = {},
): string {
  const sig = secp256k1.sign(deviceTokenDigest(d, gatewayId, deviceId, expiresAt), secretKey, {
    prehash: false,
    format: "recovered",
  });
  let rec = sig[0]!;
  let s = BigInt(`0x${Buffer.from(sig.subarray(33, 65)).toString("hex")}`);
  if (o.highS) {
    s = secp256k1.Point.CURVE().n - s;
    rec ^= 1;
  }
  const rsv = Buffer.concat([Buffer.from(sig.subarray(1, 33)), u256(s), Buffer.from([27 + rec])]);
  return `vdt1.${expiresAt}.0x${rsv.toString("hex")}`;
}
