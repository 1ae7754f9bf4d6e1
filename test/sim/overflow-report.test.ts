// A running device whose ring overflows reports it with ERROR code 2 (hardware/PROTOCOL.md,
// "Serial framing: COBS": "when the ring is full it drops the oldest and reports ERROR code 2"),
// not only a stopped device once it resumes. The reports are batched so they cannot flood the link:
// at most one per device per OVERFLOW_REPORT_INTERVAL_MS, naming every frame dropped since the
// last one; a stopped device reports nothing until it resumes, then at once; a BUSY hold does not
// delay a report (ERROR may be sent during one). State machine on injected time, then the simulator
// over a fake link that never acknowledges.
import { describe, expect, it } from "vitest";
import { OVERFLOW_REPORT_INTERVAL_MS, SimDevice } from "../../device-sim/src/device.ts";
import { Simulator } from "../../device-sim/src/simulator.ts";
import type { Transport } from "../../device-sim/src/transports/types.ts";
import { decodeFrame, FrameType, NackReason, type Frame } from "../../gateway/src/protocol/frame.ts";
import { testDevice } from "./device-fixture.ts";

const device = (window: number): SimDevice => testDevice({ window, probeIntervalMs: 1000 });

const message = (raw: Buffer): string => {
  const f = decodeFrame(raw);
  return f.type === FrameType.Error && f.code === 2 ? f.message : "";
};

describe("simulated device: a full ring reports ERROR code 2", () => {
  it("behavior: a running device's drops are reported at once, then batched at most once per interval; the drain reports the rest without waiting", () => {
    expect(OVERFLOW_REPORT_INTERVAL_MS).toBe(1000);
    const d = device(3);
    for (let i = 0; i < 5; i++) d.nextData(0); // no ACK comes: 0 and 1 dropped
    expect(d.stats.overflowed).toBe(2);
    expect(d.unreportedDrops).toBe(2);
    expect(d.overflowReportDue(5)).toBe(true);
    expect(message(d.overflowError())).toBe("resend ring full: 2 oldest frames dropped");
    d.dropsReported(5);
    expect(d.stats.overflowReports).toBe(1);
    expect(d.overflowReportDue(6)).toBe(false);
    for (let i = 0; i < 4; i++) d.nextData(10);
    expect(d.unreportedDrops).toBe(4);
    expect(d.overflowReportDue(1004)).toBe(false); // within the interval: batched
    expect(d.overflowReportDue(50, true)).toBe(true); // the drain: no new drops can come
    expect(d.overflowReportDue(1005)).toBe(true);
    expect(message(d.overflowError())).toBe("resend ring full: 4 oldest frames dropped");
    d.dropsReported(1005);
    expect(d.unreportedDrops).toBe(0);
    expect(d.overflowReportDue(5000, true)).toBe(false);
  });

  it("behavior: stopped, nothing is reported; the resume reports at once, drops before and during the stop in one ERROR", () => {
    const d = device(2);
    for (let i = 0; i < 3; i++) d.queue(d.nextData(0)!); // drops 0
    d.dropsReported(0); // reported: 1
    d.queue(d.nextData(10)!); // drops 1, unreported
    d.onNack({ type: FrameType.Nack, deviceId: 7, seq: 2, reason: NackReason.UNKNOWN_DEVICE }, 20);
    for (let i = 0; i < 2; i++) d.queue(d.nextData(30)!); // drops 2, 3 while stopped
    expect(d.stats.overflowed).toBe(4);
    expect(d.unreportedDrops).toBe(0);
    expect(d.overflowReportDue(5000, true)).toBe(false);
    const p = d.probeFrame(1020)!;
    d.probeSent(p, 1020);
    d.onAck({ type: FrameType.Ack, deviceId: 7, firstSeq: p.seq, count: 1, gatewayTimeUs: 0 }, 1021);
    expect(d.stopped).toBe(false);
    expect(d.overflowReportDue(1021)).toBe(true); // 1021 ms after the last report, yet at once
    expect(message(d.overflowError())).toBe(
      "resend ring full: 3 oldest frames dropped, 2 of them while stopped",
    );
  });
});

/** A gateway that stores nothing and answers nothing, except one long BUSY once an overflow was reported. */
class SilentLink implements Transport {
  readonly name = "fake-silent";
  connected = true;
  #onControl: ((f: Frame) => void) | undefined;
  #replies: Frame[] = [];
  readonly errors: Array<{ at: number; message: string }> = [];
  dataAfterFirstError = 0;
  busySentAt: number | undefined;
  constructor(readonly busyMs: number) {}
  async open(onControl: (frame: Frame) => void): Promise<void> {
    this.#onControl = onControl;
  }
  send(deviceId: number, raw: Uint8Array): boolean {
    const f = decodeFrame(raw);
    if (f.type === FrameType.Error) this.errors.push({ at: Date.now(), message: f.message });
    if (f.type === FrameType.Data && this.errors.length > 0 && ++this.dataAfterFirstError === 2) {
      // Two more frames dropped after the first report: then the gateway says BUSY for a long time.
      this.busySentAt = Date.now();
      this.#replies.push({
        type: FrameType.Nack,
        deviceId,
        seq: f.seq,
        reason: NackReason.BUSY,
        retryAfterMs: this.busyMs,
      });
    }
    return true;
  }
  sendNoise(): void {}
  async disconnect(): Promise<void> {}
  async reconnect(): Promise<void> {}
  async drain(): Promise<void> {
    const r = this.#replies;
    this.#replies = [];
    for (const f of r) this.#onControl?.(f);
  }
  async close(): Promise<void> {}
}

describe("simulator: overflow reports on the link", () => {
  it("behavior: a running device whose ring overflows sends ERROR code 2 naming every dropped frame, batched, during a BUSY hold too", async () => {
    const link = new SilentLink(60_000);
    const sim = new Simulator({
      transport: link,
      devices: 1,
      rate: 400,
      durationS: 1.6,
      window: 2,
      meanLife: 1e6,
      resendMs: 100_000, // no resend: only new frames fill the ring
      drainMs: 0,
      seed: 3,
    });
    const report = await sim.run();
    expect(link.busySentAt).toBeDefined();
    // The first report right after the first drop, the second an interval later: during the hold.
    expect(link.errors).toHaveLength(2);
    expect(report.overflowReports).toBe(2);
    expect(link.errors[1]!.at).toBeGreaterThan(link.busySentAt!);
    expect(link.errors[1]!.at - link.errors[0]!.at).toBeGreaterThanOrEqual(OVERFLOW_REPORT_INTERVAL_MS - 20);
    const named = link.errors.map((e) =>
      Number(/^resend ring full: (\d+) oldest frames dropped$/.exec(e.message)?.[1]),
    );
    expect(named[1]).toBeGreaterThanOrEqual(2);
    // Every dropped frame is named once.
    expect(named.reduce((a, b) => a + b, 0)).toBe(report.overflowed);
  }, 20_000);
});
