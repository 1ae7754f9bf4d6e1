// A device the gateway refuses (NACK UNKNOWN_DEVICE / REVOKED_DEVICE) keeps its frames and stops
// sending (hardware/PROTOCOL.md, NACK table): no resend, no queued frame, no HELLO after a
// reconnect, and the drain does not wait for its frames. A fake serial-like link (no PUBACK)
// answers each frame the way the gateway does, when the simulator drains it.
import { describe, expect, it } from "vitest";
import { decodeFrame, FrameType, NackReason, type Frame } from "../../gateway/src/protocol/frame.ts";
import { Simulator } from "../../device-sim/src/simulator.ts";
import type { Transport } from "../../device-sim/src/transports/types.ts";

class RefusingLink implements Transport {
  readonly name = "fake-refusing";
  connected = true;
  #onControl: ((f: Frame) => void) | undefined;
  #replies: Frame[] = [];
  #dataSinceDrain = 0;
  /** Devices that were NACKed UNKNOWN_DEVICE: anything they send after that is counted. */
  readonly refusedSeen = new Set<number>();
  readonly sentAfterRefusal: Array<{ deviceId: number; type: number }> = [];
  /** DATA sequences received per device, in arrival order. */
  readonly data = new Map<number, number[]>();
  /**
   * @param refused devices the "gateway" does not know
   * @param window DATA frames the link takes between two drains (more wait on the device)
   */
  constructor(
    readonly refused: ReadonlySet<number>,
    readonly window = Infinity,
  ) {}
  async open(onControl: (frame: Frame) => void): Promise<void> {
    this.#onControl = onControl;
  }
  send(deviceId: number, raw: Uint8Array, seq?: number): boolean {
    if (!this.connected) return false;
    if (seq !== undefined && this.#dataSinceDrain >= this.window) return false;
    const f = decodeFrame(raw);
    if (this.refusedSeen.has(deviceId)) this.sentAfterRefusal.push({ deviceId, type: f.type });
    if (f.type === FrameType.Data) {
      this.#dataSinceDrain++;
      const list = this.data.get(deviceId) ?? [];
      list.push(f.seq);
      this.data.set(deviceId, list);
    }
    if (f.type !== FrameType.Data && f.type !== FrameType.Hello) return true;
    if (this.refused.has(deviceId))
      this.#replies.push({
        type: FrameType.Nack,
        deviceId,
        seq: f.type === FrameType.Data ? f.seq : 0,
        reason: NackReason.UNKNOWN_DEVICE,
      });
    else if (f.type === FrameType.Data)
      this.#replies.push({ type: FrameType.Ack, deviceId, firstSeq: f.seq, count: 1, gatewayTimeUs: 0 });
    return true;
  }
  sendNoise(): void {}
  async disconnect(): Promise<void> {
    this.connected = false;
  }
  async reconnect(): Promise<void> {
    this.connected = true;
  }
  async drain(): Promise<void> {
    this.#dataSinceDrain = 0;
    const replies = this.#replies;
    this.#replies = [];
    for (const r of replies) {
      if (r.type === FrameType.Nack) this.refusedSeen.add(r.deviceId);
      this.#onControl?.(r);
    }
  }
  async close(): Promise<void> {}
}

describe("simulated device refused by the gateway", () => {
  it("behavior: after NACK UNKNOWN_DEVICE it sends nothing (no resend, no queued frame), keeps its frames pending, and the drain does not wait for them", async () => {
    const link = new RefusingLink(new Set([1]), 3);
    const drainMs = 4000;
    const sim = new Simulator({
      transport: link,
      devices: 1,
      rate: 0,
      framesPerDevice: 64,
      meanLife: 1e6,
      resendMs: 10, // a device that ignored the refusal would resend within the drain
      drainMs,
      seed: 2,
    });
    const t0 = Date.now();
    const report = await sim.run();
    const elapsed = Date.now() - t0;
    expect(link.sentAfterRefusal).toEqual([]);
    expect(link.data.get(1)).toEqual([0, 1, 2]); // the link took 3; the other 61 were queued
    expect(report.resent).toBe(0);
    expect(report.generated).toBe(64);
    expect(report.pending).toBe(64); // kept: refused, not acknowledged, not dropped
    expect(report.groundTruth[0]!.pendingSeqs).toHaveLength(64);
    expect(report.nacked).toEqual({ UNKNOWN_DEVICE: 4 }); // the HELLO and the 3 DATA frames
    expect(sim.devices[0]!.stopped).toBe(true);
    expect(elapsed).toBeLessThan(drainMs / 2);
  }, 20_000);

  it("behavior: a reconnect does not resume a refused device (no HELLO, no DATA) while an allowed device delivers everything", async () => {
    const link = new RefusingLink(new Set([1]));
    const sim = new Simulator({
      transport: link,
      devices: 2,
      rate: 0,
      framesPerDevice: 150,
      meanLife: 1e6,
      resendMs: 10,
      faults: { disconnect: 1 }, // a link drop (and a HELLO from every device) every pass
      drainMs: 4000,
      seed: 4,
    });
    const report = await sim.run();
    expect(report.disconnects).toBeGreaterThan(1);
    expect(link.refusedSeen.has(1)).toBe(true);
    expect(link.sentAfterRefusal).toEqual([]);
    expect(sim.devices[1]!.stats.acked).toBe(150);
    expect(sim.devices[0]!.pending.size).toBe(sim.devices[0]!.stats.generated);
    expect(report.pending).toBe(sim.devices[0]!.stats.generated);
    expect(report.resent).toBe(0);
  }, 30_000);
});
