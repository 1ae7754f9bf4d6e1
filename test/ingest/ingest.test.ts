import { describe, expect, it } from "vitest";
import { Ingest, type IngestReply } from "../../gateway/src/ingest/ingest.ts";
import { MemorySink } from "../../gateway/src/ingest/memory-sink.ts";
import { MqttIngestHandler } from "../../gateway/src/ingest/mqtt/handler.ts";
import { VigilError } from "../../gateway/src/core/errors.ts";
import {
  decodeFrame,
  encodeFrame,
  FrameType,
  NackReason,
  type Frame,
} from "../../gateway/src/protocol/frame.ts";
import { FakeClock } from "../../gateway/src/core/clock.ts";
import { silentLogger } from "../../gateway/src/core/log.ts";
import { ListAdmission } from "../../gateway/src/core/admission.ts";

const clock = new FakeClock();
const now = clock.nowUs();

function data(seq: number, deviceId = 1, values = [1, 2, 3], ts = now): Frame {
  return {
    type: FrameType.Data,
    deviceId,
    seq,
    timestampUs: ts,
    flags: 0,
    values: Float32Array.from(values),
  };
}
function dec(f: Frame) {
  const raw = encodeFrame(f);
  return { frame: decodeFrame(raw), raw };
}
function setup(opts: Partial<ConstructorParameters<typeof Ingest>[0]> = {}) {
  const sink = new MemorySink();
  const ingest = new Ingest({ sink, clock, ...opts });
  return { sink, ingest };
}

describe("Ingest", () => {
  it("behavior: stores a DATA frame and replies ACK only after the sink resolved", async () => {
    const { sink, ingest } = setup();
    const r = ingest.handle(dec(data(5)), "serial");
    expect(r).toBeInstanceOf(Promise);
    expect(await r).toEqual({ kind: "ack", deviceId: 1, seq: 5 });
    expect(sink.records).toHaveLength(1);
    expect(sink.records[0]!.raw.equals(encodeFrame(data(5)))).toBe(true);
    expect(ingest.counters.accepted).toBe(1);
  });

  it("behavior: duplicates are ACKed again and stored once, also when both copies are in flight", async () => {
    const { sink, ingest } = setup();
    const [a, b] = await Promise.all([
      ingest.handle(dec(data(1)), "mqtt"),
      ingest.handle(dec(data(1)), "mqtt"),
    ]);
    expect(a).toEqual(b);
    expect(await ingest.handle(dec(data(1)), "mqtt")).toEqual({ kind: "ack", deviceId: 1, seq: 1 });
    expect(sink.records).toHaveLength(1);
    expect(ingest.counters.duplicates).toBe(2);
  });

  it("error: a copy that arrives while its original is being stored gets the original's verdict: a store that then fails ACKs neither (serial NACK, MQTT no PUBACK), each counted", async () => {
    const { sink, ingest } = setup();
    sink.failWith = new VigilError("IO_ERROR", "storage I/O error");
    const nack = { kind: "nack", deviceId: 1, seq: 4, reason: NackReason.STORE_UNAVAILABLE };
    // The device resends while the first write is still in flight; that write then fails.
    const [a, b] = await Promise.all([
      ingest.handle(dec(data(4)), "serial"),
      ingest.handle(dec(data(4)), "serial"),
    ]);
    expect([a, b]).toEqual([nack, nack]);
    expect(ingest.counters.rejected.STORE_UNAVAILABLE).toBe(2);
    expect(ingest.counters.duplicates).toBe(0);
    const mqtt = new MqttIngestHandler(ingest);
    const raw = encodeFrame(data(5));
    const verdicts = await Promise.all([
      mqtt.handle("vigil/v1/ingest/00000001", raw),
      mqtt.handle("vigil/v1/ingest/00000001", raw),
    ]);
    expect(verdicts.map((v) => v.action)).toEqual(["retry", "retry"]);
    // The store is back: the resend is stored and ACKed.
    sink.failWith = undefined;
    expect(await ingest.handle(dec(data(4)), "serial")).toEqual({ kind: "ack", deviceId: 1, seq: 4 });
    expect(sink.records.map((r) => r.seq)).toEqual([4]);
  });

  it("error: unknown and revoked devices are NACKed with their reason and counted", async () => {
    const { sink, ingest } = setup({ admission: new ListAdmission(new Set([1, 2]), new Set([2])) });
    expect(await ingest.handle(dec(data(1, 9)), "serial")).toEqual({
      kind: "nack",
      deviceId: 9,
      seq: 1,
      reason: NackReason.UNKNOWN_DEVICE,
    });
    expect(await ingest.handle(dec(data(1, 2)), "serial")).toEqual({
      kind: "nack",
      deviceId: 2,
      seq: 1,
      reason: NackReason.REVOKED_DEVICE,
    });
    expect(ingest.counters.rejected).toEqual({ UNKNOWN_DEVICE: 1, REVOKED_DEVICE: 1 });
    expect(sink.records).toHaveLength(0);
  });

  it("error: a channel count different from the HELLO is SCHEMA_MISMATCH", async () => {
    const { ingest } = setup();
    ingest.handle(
      dec({
        type: FrameType.Hello,
        deviceId: 1,
        bootId: 1,
        firmware: { major: 1, minor: 0, patch: 0 },
        profile: "p",
        channels: [{ name: "a", unit: 0 }],
      }),
      "serial",
    );
    // The HELLO's channel names are kept for the inference loop's manifest check.
    expect(ingest.counters.devices.get(1)?.channelNames).toEqual(["a"]);
    const r = (await ingest.handle(dec(data(1)), "serial")) as IngestReply;
    expect(r).toMatchObject({ kind: "nack", reason: NackReason.SCHEMA_MISMATCH });
  });

  it("error: a timestamp beyond the skew is ABSURD_TIMESTAMP; 0 (no clock) is stamped by the gateway", async () => {
    const { sink, ingest } = setup({ maxSkewUs: 1_000_000 });
    expect(await ingest.handle(dec(data(1, 1, [1], now + 2_000_000)), "serial")).toMatchObject({
      reason: NackReason.ABSURD_TIMESTAMP,
    });
    expect(await ingest.handle(dec(data(2, 1, [1], 0)), "serial")).toMatchObject({ kind: "ack" });
    expect(sink.records[0]!.timestampUs).toBe(now);
  });

  it("behavior: a frame with NaN/±Inf values is stored as sent and ACKed, its bad channels marked and counted", async () => {
    const { sink, ingest } = setup();
    const seen: number[] = [];
    ingest.onStored((_r, f) => seen.push(f.nonFinite ?? 0));
    const f = data(7, 1, [1, NaN, -Infinity, 4]);
    const d = dec(f);
    expect(d.frame.type === FrameType.Data && d.frame.nonFinite).toBe(0b0110);
    expect(await ingest.handle(d, "serial")).toEqual({ kind: "ack", deviceId: 1, seq: 7 });
    expect(sink.records).toHaveLength(1);
    expect(sink.records[0]!.raw.equals(encodeFrame(f))).toBe(true);
    expect(seen).toEqual([0b0110]);
    const s = ingest.counters.snapshot();
    expect(s.rejected).toEqual({});
    expect([s.nonFiniteFrames, s.nonFiniteValues]).toEqual([1, 2]);
    expect(s.devices[0]).toMatchObject({ nonFiniteFrames: 1, nonFiniteByChannel: [0, 1, 1] });
    expect(ingest.counters.line()).toMatch(/rejected=0 nonFinite=1$/);
    // An all-finite frame is not marked.
    expect(await ingest.handle(dec(data(8, 1, [1, 2, 3, 4])), "serial")).toMatchObject({ kind: "ack" });
    expect(seen).toEqual([0b0110, 0]);
  });

  it("error: a NaN frame whose timestamp is absurd is still NACKed ABSURD_TIMESTAMP", async () => {
    const { sink, ingest } = setup({ maxSkewUs: 1_000_000 });
    expect(await ingest.handle(dec(data(1, 1, [NaN], now + 2_000_000)), "serial")).toMatchObject({
      kind: "nack",
      reason: NackReason.ABSURD_TIMESTAMP,
    });
    expect(sink.records).toHaveLength(0);
    expect(ingest.counters.nonFiniteFrames).toBe(0);
  });

  it("error: a store failure NACKs STORE_UNAVAILABLE and the resend is accepted once it recovers", async () => {
    const { sink, ingest } = setup();
    sink.failWith = new VigilError("STORE_FULL", "disk full");
    expect(await ingest.handle(dec(data(1)), "serial")).toMatchObject({
      kind: "nack",
      reason: NackReason.STORE_UNAVAILABLE,
    });
    sink.failWith = undefined;
    expect(await ingest.handle(dec(data(1)), "serial")).toMatchObject({ kind: "ack" });
    expect(sink.records).toHaveLength(1);
    expect(ingest.counters.rejected.STORE_UNAVAILABLE).toBe(1);
  });

  it("behavior: the durable latency histogram times each new frame from arrival to the store's verdict", async () => {
    const c = new FakeClock();
    let release!: (o: "stored") => void;
    let fail!: (e: Error) => void;
    const ingest = new Ingest({
      clock: c,
      sink: {
        append: () =>
          new Promise((res, rej) => {
            release = res;
            fail = rej;
          }),
      },
    });
    const h = ingest.counters.durableLatency;
    const first = ingest.handle(dec(data(1, 1, [1, 2, 3], c.nowUs())), "mqtt");
    c.advanceMs(7);
    release("stored");
    expect(await first).toMatchObject({ kind: "ack" });
    const second = ingest.handle(dec(data(2, 1, [1, 2, 3], c.nowUs())), "mqtt");
    c.advanceMs(300);
    fail(new VigilError("STORE_FULL", "disk full"));
    expect(await second).toMatchObject({ kind: "nack", reason: NackReason.STORE_UNAVAILABLE });
    // A duplicate of a stored frame is answered without the store: not timed.
    expect(await ingest.handle(dec(data(1, 1, [1, 2, 3], c.nowUs())), "mqtt")).toMatchObject({ kind: "ack" });
    expect(h.count).toBe(2);
    expect(h.sumUs).toBe(307_000);
    expect(h.maxUs).toBe(300_000);
  });

  it("behavior: sequences older than the window ask the store (slow path)", async () => {
    const { sink, ingest } = setup({
      storedRaw: async (d, s) => sink.records.find((r) => r.deviceId === d && r.seq === s)?.raw,
    });
    await ingest.handle(dec(data(3)), "serial");
    await ingest.handle(dec(data(100_000)), "serial");
    expect(await ingest.handle(dec(data(3)), "serial")).toMatchObject({ kind: "ack" });
    await ingest.handle(dec(data(4)), "serial");
    expect(sink.records.map((r) => r.seq)).toEqual([3, 100_000, 4]);
    expect(ingest.counters.duplicates).toBe(1);
  });

  it("error: the store cannot be read to compare a duplicate: NACK STORE_UNAVAILABLE (counted, the device resends), nothing ACKed on trust; ingest goes on", async () => {
    let failReads = false;
    const { sink, ingest } = setup({
      storedRaw: async (d, s) => {
        if (failReads) throw new Error("EIO: read failed");
        return sink.records.find((r) => r.deviceId === d && r.seq === s)?.raw;
      },
    });
    expect(await ingest.handle(dec(data(1)), "serial")).toMatchObject({ kind: "ack" });
    failReads = true;
    expect(await ingest.handle(dec(data(1)), "serial")).toEqual({
      kind: "nack",
      deviceId: 1,
      seq: 1,
      reason: NackReason.STORE_UNAVAILABLE,
    });
    expect(ingest.counters.rejected.STORE_UNAVAILABLE).toBe(1);
    expect(ingest.counters.duplicates).toBe(0);
    expect(await ingest.handle(dec(data(2)), "serial")).toMatchObject({ kind: "ack" });
    failReads = false;
    expect(await ingest.handle(dec(data(1)), "serial")).toMatchObject({ kind: "ack" });
    expect(ingest.counters.duplicates).toBe(1);
    expect(sink.records.map((r) => r.seq)).toEqual([1, 2]);
  });

  it("behavior: ACK/NACK frames arriving at the gateway are counted as UNEXPECTED_TYPE", () => {
    const { ingest } = setup();
    expect(
      ingest.handle(
        dec({ type: FrameType.Ack, deviceId: 1, firstSeq: 1, count: 1, gatewayTimeUs: 0 }),
        "serial",
      ),
    ).toEqual({ kind: "none" });
    expect(ingest.counters.rejected.UNEXPECTED_TYPE).toBe(1);
    // PROTOCOL.md "Replies and silence": a firmware reply that reaches ingest (over MQTT, or on a
    // serial line without a firmware agent) has no transfer to feed: UNEXPECTED_TYPE, no reply.
    const status = {
      type: FrameType.FwStatus,
      deviceId: 1,
      state: 0,
      result: 0,
      reason: 0,
      window: 1,
      releaseId: 0,
      nextOffset: 0,
      slotSize: 0,
      securityCounter: 0,
      firmware: { major: 1, minor: 0, patch: 0 },
      maxChunk: 16,
    } as const;
    expect(ingest.handle(dec(status), "mqtt")).toEqual({ kind: "none" });
    expect(ingest.counters.rejected.UNEXPECTED_TYPE).toBe(2);
  });
  it("behavior: device ERROR frames are counted by device and code and logged at 1, 2, 4, … per code", () => {
    const lines: Array<Record<string, unknown>> = [];
    const logger = {
      ...silentLogger,
      warn: (o: object) => void lines.push(o as Record<string, unknown>),
    } as typeof silentLogger;
    const { ingest } = setup({ logger, admission: new ListAdmission(new Set([1, 2])) });
    const err = (deviceId: number, code: number): Frame => ({
      type: FrameType.Error,
      deviceId,
      code,
      message: "sensor 3 stuck",
    });
    for (let i = 0; i < 5; i++) expect(ingest.handle(dec(err(1, 1)), "serial")).toEqual({ kind: "none" });
    ingest.handle(dec(err(1, 2)), "serial");
    ingest.handle(dec(err(2, 1)), "mqtt");
    // A device outside the allow list: counted in the total, given no per-device state.
    ingest.handle(dec(err(9, 1)), "mqtt");
    const c = ingest.counters;
    expect(c.deviceErrors).toBe(8);
    expect([...c.devices.get(1)!.errors]).toEqual([
      [1, 5],
      [2, 1],
    ]);
    expect([...c.devices.get(2)!.errors]).toEqual([[1, 1]]);
    expect(c.devices.has(9)).toBe(false);
    expect(lines.map((l) => [l.device, l.code, l.count])).toEqual([
      ["00000001", 1, 1],
      ["00000001", 1, 2],
      ["00000001", 1, 4],
      ["00000001", 2, 1],
      ["00000002", 1, 1],
    ]);
    expect(lines[0]!.message).toBe("sensor 3 stuck");
  });
});
