// The simulator runs the stopped device's probe (hardware/PROTOCOL.md, "A stopped device") end to
// end over a fake serial-like link that answers like the gateway (ACK / NACK frames, delivered when
// the simulator drains the link): refused at its first HELLO, the device sends nothing until its
// first probe (HELLO + oldest kept frame), stays stopped when that is refused, and once the link
// admits it (as `vigil access sensor register` or ingest.allow would) the next probe is ACKed: it
// reports the frames its ring dropped (ERROR code 2) before it sends its kept frames, every frame
// is stored once, and the run ends with nothing pending. A device that never probes does not hold
// the run open. Synchronised on what the link sees, no fixed sleeps.
import { describe, expect, it } from "vitest";
import { Simulator } from "../../device-sim/src/simulator.ts";
import type { Transport } from "../../device-sim/src/transports/types.ts";
import { decodeFrame, FrameType, NackReason, type Frame } from "../../gateway/src/protocol/frame.ts";

interface Seen {
  at: number;
  type: number;
  seq?: number;
  code?: number;
  message?: string;
  refused: boolean;
}

class AdmittingLink implements Transport {
  readonly name = "fake-admitting";
  connected = true;
  #onControl: ((f: Frame) => void) | undefined;
  #replies: Frame[] = [];
  /** Everything device 1 sent, in order, with the verdict it got. */
  readonly seen: Seen[] = [];
  /** Sequences stored (ACKed), and DATA frames that arrived for a sequence already stored. */
  readonly stored = new Set<number>();
  storedAgain = 0;
  #probeHellos = 0;
  #refused = true;
  /** How many frames the link had seen when it delivered the first refusal to the device. */
  seenAtFirstRefusal: number | undefined;

  /** @param admitAfter refused probes before the "gateway" admits the device (undefined: never) */
  constructor(readonly admitAfter: number | undefined) {}

  async open(onControl: (frame: Frame) => void): Promise<void> {
    this.#onControl = onControl;
  }
  send(deviceId: number, raw: Uint8Array): boolean {
    const f = decodeFrame(raw);
    const refused = this.#refused;
    this.seen.push({
      at: Date.now(),
      type: f.type,
      refused,
      ...(f.type === FrameType.Data ? { seq: f.seq } : {}),
      ...(f.type === FrameType.Error ? { code: f.code, message: f.message } : {}),
    });
    if (f.type === FrameType.Hello && this.seen.length > 1) this.#probeHellos++;
    if (f.type !== FrameType.Data && f.type !== FrameType.Hello) return true;
    if (refused) {
      this.#replies.push({
        type: FrameType.Nack,
        deviceId,
        seq: f.type === FrameType.Data ? f.seq : 0,
        reason: NackReason.UNKNOWN_DEVICE,
      });
      // Registered after the admitAfter-th probe was refused.
      if (f.type === FrameType.Data && this.#probeHellos === this.admitAfter) this.#refused = false;
    } else if (f.type === FrameType.Data) {
      if (this.stored.has(f.seq)) this.storedAgain++;
      this.stored.add(f.seq);
      this.#replies.push({ type: FrameType.Ack, deviceId, firstSeq: f.seq, count: 1, gatewayTimeUs: 0 });
    }
    return true;
  }
  sendNoise(): void {}
  async disconnect(): Promise<void> {}
  async reconnect(): Promise<void> {}
  async drain(): Promise<void> {
    const replies = this.#replies;
    this.#replies = [];
    if (replies.some((r) => r.type === FrameType.Nack)) this.seenAtFirstRefusal ??= this.seen.length;
    for (const r of replies) this.#onControl?.(r);
  }
  async close(): Promise<void> {}
}

describe("simulator: a stopped device probes and resumes", () => {
  it("behavior: refused, it sends only its probes (no more often than the interval); admitted, the next probe resumes it: ERROR code 2 with the drop count, then the kept frames, each stored once", async () => {
    const link = new AdmittingLink(1);
    const probeIntervalMs = 400;
    const sim = new Simulator({
      transport: link,
      devices: 1,
      rate: 50,
      framesPerDevice: 150,
      meanLife: 1e6,
      window: 8,
      resendMs: 100,
      probeIntervalMs,
      drainMs: 5000,
      seed: 3,
    });
    const report = await sim.run();
    const seen = link.seen;
    // The first HELLO and the frames sent before the first NACK reached the device (frame 0, more
    // on a loaded machine); after it nothing until the first probe.
    const firstProbe = seen.findIndex((s, i) => i > 0 && s.type === FrameType.Hello);
    expect(firstProbe).toBe(link.seenAtFirstRefusal);
    expect(seen.slice(0, firstProbe).map((s) => [s.type, s.seq])).toEqual([
      [FrameType.Hello, undefined],
      ...Array.from({ length: firstProbe - 1 }, (_, i) => [FrameType.Data, i]),
    ]);
    const probes = seen.flatMap((s, i) => (i >= firstProbe && s.type === FrameType.Hello ? [i] : []));
    expect(probes).toHaveLength(2); // one refused, one acknowledged
    for (const i of probes) expect(seen[i + 1]!.type).toBe(FrameType.Data); // HELLO, then the oldest kept frame
    // Between the stop and the resume, nothing but the two probes.
    const resumedAt = probes[1]! + 2;
    expect(seen.slice(firstProbe, resumedAt).map((s) => s.type)).toEqual([
      FrameType.Hello,
      FrameType.Data,
      FrameType.Hello,
      FrameType.Data,
    ]);
    expect(seen[probes[0]! + 1]!.refused).toBe(true);
    expect(seen[probes[1]! + 1]!.refused).toBe(false);
    // Paced (seen at the link, a few ms after the device's own clock read: the exact spacing is
    // probe-device.test.ts's, on injected time).
    expect(seen[probes[1]!]!.at - seen[probes[0]!]!.at).toBeGreaterThanOrEqual(probeIntervalMs / 2);
    // The probe frame is the oldest kept one: older than every kept frame sent after the resume.
    const afterResume = seen.slice(resumedAt);
    expect(afterResume[0]).toMatchObject({ type: FrameType.Error, code: 2 });
    expect(afterResume[0]!.message).toBe(
      `resend ring full while stopped: ${report.droppedWhileStopped} oldest frames dropped`,
    );
    expect(report.droppedWhileStopped).toBeGreaterThan(0);
    expect(afterResume.filter((s) => s.type === FrameType.Error)).toHaveLength(1);
    const probeSeq = seen[probes[1]! + 1]!.seq!;
    const keptSeqs = afterResume.filter((s) => s.type === FrameType.Data).map((s) => s.seq!);
    expect(Math.min(...keptSeqs)).toBeGreaterThan(probeSeq);
    // Every frame stored once; what is not stored was dropped by the full ring (all while stopped).
    expect(link.storedAgain).toBe(0);
    expect(report).toMatchObject({ probes: 2, resumes: 1, stopped: 0, pending: 0, generated: 150 });
    expect(report.overflowed).toBe(report.droppedWhileStopped);
    expect(link.stored.size).toBe(report.acked);
    expect(report.acked + report.overflowed).toBe(150);
    expect(sim.devices[0]!.stopped).toBe(false);
  }, 30_000);

  it("behavior: refused for good, every probe is refused and it stays stopped, keeping its frames; the drain does not wait for the next probe; interval 0 never probes", async () => {
    // The device probes every 200 ms while generating, then the drain ends.
    const link = new AdmittingLink(undefined);
    const sim = new Simulator({
      transport: link,
      devices: 1,
      rate: 50,
      framesPerDevice: 40,
      meanLife: 1e6,
      resendMs: 50,
      probeIntervalMs: 200,
      drainMs: 10_000,
      seed: 5,
    });
    const t0 = Date.now();
    const report = await sim.run();
    expect(report.probes).toBeGreaterThanOrEqual(1);
    expect(report).toMatchObject({ resumes: 0, stopped: 1, pending: 40, acked: 0 });
    expect(Date.now() - t0).toBeLessThan(5000); // not the 10 s drain
    // Each probe is HELLO + one DATA frame; nothing else after the refusal.
    const firstProbe = link.seen.findIndex((s, i) => i > 0 && s.type === FrameType.Hello);
    const after = link.seen.slice(firstProbe);
    expect(after.filter((s) => s.type === FrameType.Hello)).toHaveLength(report.probes);
    expect(after.filter((s) => s.type === FrameType.Data)).toHaveLength(report.probes);
    expect(after.some((s) => s.type === FrameType.Error)).toBe(false);

    // A device that never probes (interval 0) does not hold generation open: its source would run
    // for hours, the run ends once it is stopped.
    const never = new Simulator({
      transport: new AdmittingLink(undefined),
      devices: 1,
      rate: 50,
      meanLife: 1e6,
      probeIntervalMs: 0,
      drainMs: 10_000,
      seed: 6,
    });
    const quiet = await never.run();
    expect(quiet).toMatchObject({ probes: 0, resumes: 0, stopped: 1 });
    expect(quiet.generated).toBeLessThan(50);
  }, 30_000);
});
