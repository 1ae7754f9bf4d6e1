// A link at its in-flight limit: frames it refuses wait on the device in order and go out as
// soon as it has room, without resend timers and without being overtaken by newer frames; the
// resend scan walks only frames that went on the link (it used to walk the whole backlog).
import { describe, expect, it } from "vitest";
import type { Frame } from "../../gateway/src/protocol/frame.ts";
import { decodeFrame, FrameType } from "../../gateway/src/protocol/frame.ts";
import { SimDevice } from "../../device-sim/src/device.ts";
import { FaultCounters } from "../../device-sim/src/faults.ts";
import { RotatingMachine } from "../../device-sim/src/profiles/rotating.ts";
import { Rng } from "../../device-sim/src/rng.ts";
import { Simulator } from "../../device-sim/src/simulator.ts";
import type { Transport } from "../../device-sim/src/transports/types.ts";

/** An MQTT-like link with a small in-flight window; each drain() PUBACKs what is in flight. */
class WindowedLink implements Transport {
  readonly name = "fake-windowed";
  readonly connected = true;
  onDelivered?: (deviceId: number, seq: number) => void;
  readonly inflight = new Set<string>();
  /** Every DATA sequence the "gateway" received, per device, in arrival order. */
  readonly received = new Map<number, number[]>();
  refused = 0;
  constructor(readonly window: number) {}
  async open(_onControl: (frame: Frame) => void): Promise<void> {}
  inFlight(deviceId: number, seq: number): boolean {
    return this.inflight.has(`${deviceId}:${seq}`);
  }
  send(deviceId: number, raw: Uint8Array, seq?: number): boolean {
    if (seq === undefined) return true; // HELLO
    const key = `${deviceId}:${seq}`;
    if (this.inflight.has(key) || this.inflight.size >= this.window) {
      this.refused++;
      return false;
    }
    this.inflight.add(key);
    const f = decodeFrame(raw);
    expect(f.type).toBe(FrameType.Data);
    const list = this.received.get(deviceId) ?? [];
    list.push(seq);
    this.received.set(deviceId, list);
    return true;
  }
  sendNoise(): void {}
  async disconnect(): Promise<void> {}
  async reconnect(): Promise<void> {}
  async drain(): Promise<void> {
    for (const key of [...this.inflight]) {
      this.inflight.delete(key);
      const [d, s] = key.split(":").map(Number) as [number, number];
      this.onDelivered?.(d, s);
    }
  }
  async close(): Promise<void> {}
}

function device(): SimDevice {
  const rng = new Rng(5);
  return new SimDevice({
    id: 7,
    source: new RotatingMachine(rng.fork("src"), { meanLife: 1e6 }),
    rng,
    faults: {},
    counters: new FaultCounters(),
    resendMs: 100,
  });
}

describe("simulated device behind a full link", () => {
  it("contract: queued frames keep their order, have no resend timer, and re-enter it when sent", () => {
    const d = device();
    const a = d.nextData(0)!;
    const b = d.nextData(0)!;
    const c = d.nextData(0)!;
    d.queue(b);
    d.queue(c);
    d.queue(b); // already queued: keeps its place
    expect(d.hasQueued).toBe(true);
    expect(d.firstQueued()).toBe(b);
    // Long past every timer: only the frame on the link is due.
    expect(d.dueForResend(10_000).map((p) => p.seq)).toEqual([a.seq]);
    d.markSent(b, 10_000);
    expect(d.firstQueued()).toBe(c);
    expect(d.dueForResend(10_050)).toEqual([]); // b's timer started at 10,000 (100 ms)
    expect(d.dueForResend(10_100).map((p) => p.seq)).toEqual([b.seq]);
    // An ACK for a queued frame (an earlier copy got through) removes it from the line.
    d.onAck({ type: FrameType.Ack, deviceId: d.id, firstSeq: c.seq, count: 1, gatewayTimeUs: 0 });
    expect(d.firstQueued()).toBeUndefined();
    expect(d.hasQueued).toBe(false);
    expect(d.pending.size).toBe(2);
  });

  it("behavior: a link with room for 5 frames gets every frame once, in order per device, with no resend", async () => {
    const link = new WindowedLink(5);
    const sim = new Simulator({
      transport: link,
      devices: 3,
      firstDeviceId: 1,
      rate: 0,
      framesPerDevice: 300,
      meanLife: 1e6,
      resendMs: 1, // a timer-driven device would resend refused frames at once
      seed: 3,
      drainMs: 10_000,
    });
    const report = await sim.run();
    expect(link.refused).toBeGreaterThan(0); // the window was full most of the time
    expect(report.generated).toBe(900);
    expect(report.acked).toBe(900);
    expect(report.pending).toBe(0);
    expect(report.resent).toBe(0);
    expect(report.dupAcks).toBe(0);
    for (const [, seqs] of link.received) {
      expect(seqs).toHaveLength(300);
      expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    }
  });
});
