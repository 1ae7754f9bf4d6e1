// A reboot (the `reboot` fault, device-sim/src/faults.ts) is a reset: it ends the stop of a device
// the gateway refused (hardware/PROTOCOL.md, "A stopped device": "A device that never probes stays
// stopped until it is reset"). The device starts a new boot as a fresh one: HELLO with a new
// boot_id, then DATA from sequence 0; the RAM ring is lost as on any reboot (`lostAtReboot`). If the
// gateway now admits it, it sends; if it refuses the HELLO it is stopped again. Time is injected.
import { describe, expect, it } from "vitest";
import { SimDevice } from "../../device-sim/src/device.ts";
import { decodeFrame, FrameType, NackReason } from "../../gateway/src/protocol/frame.ts";
import { testDevice } from "./device-fixture.ts";

const device = (probeIntervalMs: number): SimDevice => testDevice({ probeIntervalMs, resendMs: 200 });

const refuse = (seq: number) =>
  ({ type: FrameType.Nack, deviceId: 7, seq, reason: NackReason.UNKNOWN_DEVICE }) as const;
const bootOf = (hello: Buffer): number => {
  const f = decodeFrame(hello);
  return f.type === FrameType.Hello ? f.bootId : -1;
};

describe("simulated device: a reboot resets a stopped device", () => {
  it("behavior: a stopped device that never probes runs again after a reboot: new boot_id, seq 0, its ring lost; an ACK then counts", () => {
    const d = device(0);
    for (let i = 0; i < 3; i++) d.queue(d.nextData(0)!);
    d.onNack(refuse(0), 10);
    expect(d.stopped).toBe(true);
    expect(d.probes).toBe(false);
    const lost = d.reboot();
    expect(lost.map((p) => p.seq)).toEqual([0, 1, 2]);
    expect(d.stopped).toBe(false);
    expect(d.nextProbeAt).toBe(Infinity);
    expect(d.stats.lostAtReboot).toBe(3);
    expect(d.pending.size).toBe(0);
    expect(bootOf(d.hello())).toBe(2);
    // A fresh device: its first frame of the new boot goes out and an ACK acknowledges it.
    const p = d.nextData(1000)!;
    expect(p.seq).toBe(0);
    d.onAck({ type: FrameType.Ack, deviceId: 7, firstSeq: 0, count: 1, gatewayTimeUs: 0 }, 1001);
    expect(d.stats.acked).toBe(1);
    expect(d.stopped).toBe(false);
  });

  it("behavior: refused again after the reboot (its HELLO NACKed), it is stopped again and probes an interval after that refusal", () => {
    const d = device(5000);
    d.nextData(0);
    d.onNack(refuse(0), 0);
    d.probeSent(d.probeFrame(5000)!, 5000); // a probe in flight when it resets
    d.reboot();
    expect(d.stopped).toBe(false);
    expect(d.probeSeq).toBeUndefined();
    expect(d.probeFrame(10_000)).toBeUndefined(); // running: no probes
    d.nextData(6000);
    d.onNack(refuse(0), 6001); // the new boot's HELLO refused
    expect(d.stopped).toBe(true);
    expect(d.nextProbeAt).toBe(11_001);
    expect(d.probeFrame(11_001)?.seq).toBe(0);
  });

  it("behavior: a reboot also ends a BUSY hold (RAM state of the old boot)", () => {
    const d = device(0);
    d.nextData(0);
    d.onNack({ type: FrameType.Nack, deviceId: 7, seq: 0, reason: NackReason.BUSY, retryAfterMs: 5000 }, 0);
    expect(d.held(100)).toBe(true);
    d.reboot();
    expect(d.held(100)).toBe(false);
  });
});
