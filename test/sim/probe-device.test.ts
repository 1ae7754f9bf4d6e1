// The simulated device's stopped state and its probe (hardware/PROTOCOL.md, "A stopped device";
// the C reference's Arduino example): after NACK UNKNOWN_DEVICE / REVOKED_DEVICE it keeps its frames
// and samples on (a full ring drops the oldest), probes at most once per interval with its oldest
// kept frame, stays stopped on a refusal or silence, and resumes on an ACK naming the probe frame
// (over MQTT: the probe frame's PUBACK with no refusal within the reply timeout). Time is injected:
// every call takes the simulated "now", nothing sleeps.
import { describe, expect, it } from "vitest";
import { SimDevice, DEFAULT_PROBE_INTERVAL_MS } from "../../device-sim/src/device.ts";
import { decodeFrame, FrameType, NackReason, type AckFrame } from "../../gateway/src/protocol/frame.ts";
import { testDevice } from "./device-fixture.ts";

const device = (o: { window?: number; probeIntervalMs?: number; resendMs?: number } = {}): SimDevice =>
  testDevice(o);

const refuse = (seq: number, reason: number = NackReason.UNKNOWN_DEVICE) =>
  ({ type: FrameType.Nack, deviceId: 7, seq, reason }) as const;
const ack = (firstSeq: number, count = 1): AckFrame => ({
  type: FrameType.Ack,
  deviceId: 7,
  firstSeq,
  count,
  gatewayTimeUs: 0,
});

/** Generates `n` frames at `now` as the simulator does while stopped (kept, queued, not sent). */
function sample(d: SimDevice, n: number, now: number): void {
  for (let i = 0; i < n; i++) d.queue(d.nextData(now)!);
}

describe("simulated device: stopped and probing", () => {
  it("behavior: the default interval is the protocol's minute; no probe before it, one at it, the next a minute after", () => {
    expect(DEFAULT_PROBE_INTERVAL_MS).toBe(60_000);
    const d = device();
    d.nextData(0);
    d.onNack(refuse(0), 1000);
    expect(d.stopped).toBe(true);
    expect(d.probes).toBe(true);
    expect(d.nextProbeAt).toBe(61_000);
    expect(d.probeFrame(60_999)).toBeUndefined();
    const p = d.probeFrame(61_000)!;
    expect(p.seq).toBe(0);
    d.probeSent(p, 61_000);
    expect(d.stats.probes).toBe(1);
    // silence: still stopped, and no second probe before another minute
    expect(d.probeOutstanding(61_499)).toBe(true);
    expect(d.probeOutstanding(61_500)).toBe(false);
    expect(d.stopped).toBe(true);
    expect(d.probeFrame(120_999)).toBeUndefined();
    expect(d.probeFrame(121_000)?.seq).toBe(0);
  });

  it("behavior: while stopped it samples on, the full ring drops the oldest (counted); the probe frame is the oldest kept one", () => {
    const d = device({ window: 4, probeIntervalMs: 1000 });
    sample(d, 2, 0); // seq 0, 1
    d.onNack(refuse(0), 10);
    sample(d, 5, 20); // seq 2..6: the ring keeps 3..6
    expect(d.finished).toBe(false);
    expect([...d.pending.keys()]).toEqual([3, 4, 5, 6]);
    expect(d.stats.overflowed).toBe(3);
    expect(d.stats.droppedWhileStopped).toBe(3);
    expect(d.unreportedDrops).toBe(0); // nothing is reported while stopped
    expect(d.probeFrame(1009)).toBeUndefined();
    expect(d.probeFrame(1010)?.seq).toBe(3);
  });

  it("behavior: a refusal of the probe keeps it stopped until the next probe; an ACK naming the probe frame resumes it, removes the frame and reports the drops once", () => {
    const d = device({ window: 3, probeIntervalMs: 500 });
    sample(d, 1, 0);
    d.onNack(refuse(0), 0);
    sample(d, 4, 100); // seq 1..4: keeps 2, 3, 4; dropped 0, 1
    let p = d.probeFrame(500)!;
    d.probeSent(p, 500);
    d.onNack(refuse(0), 501); // the HELLO's refusal (seq 0)
    d.onNack(refuse(p.seq, NackReason.REVOKED_DEVICE), 502);
    expect(d.stopped).toBe(true);
    expect(d.probeSeq).toBeUndefined();
    expect(d.probeFrame(999)).toBeUndefined();
    // An ACK for some other frame while stopped does not resume it (only the probe's answer counts).
    d.onAck(ack(99), 600);
    expect(d.stopped).toBe(true);
    sample(d, 1, 700); // seq 5: drops 2
    p = d.probeFrame(1000)!;
    expect(p.seq).toBe(3);
    d.probeSent(p, 1000);
    d.onAck(ack(3), 1001);
    expect(d.stopped).toBe(false);
    expect(d.stats.resumes).toBe(1);
    expect([...d.pending.keys()]).toEqual([4, 5]);
    expect(d.stats.acked).toBe(1);
    expect(d.unreportedDrops).toBe(3);
    const err = decodeFrame(d.overflowError());
    expect(err).toMatchObject({ type: FrameType.Error, deviceId: 7, code: 2 });
    expect(err.type === FrameType.Error && err.message).toBe(
      "resend ring full while stopped: 3 oldest frames dropped",
    );
    d.dropsReported(1001);
    expect(d.unreportedDrops).toBe(0);
    expect(d.probeFrame(5000)).toBeUndefined(); // running: no probes
    // the kept frames that were sent before are due at once; the queued ones wait for the link
    expect(d.dueForResend(1001).map((f) => f.seq)).toEqual([]);
    expect(d.firstQueued()?.seq).toBe(4);
  });

  it("behavior: over MQTT the probe frame's PUBACK resumes it only after the reply timeout with no refusal; a refusal after the PUBACK keeps it stopped", () => {
    const d = device({ probeIntervalMs: 1000, resendMs: 200 });
    sample(d, 2, 0);
    d.onNack(refuse(0), 0);
    d.onDelivered(0, 5); // a PUBACK while stopped is no acknowledgement: the frame is kept
    expect(d.pending.size).toBe(2);
    let p = d.probeFrame(1000)!;
    d.probeSent(p, 1000);
    d.onDelivered(p.seq, 1002);
    expect(d.tick(1201)).toBe(false);
    d.onNack(refuse(p.seq), 1203); // the NACK follows its PUBACK
    expect(d.tick(5000)).toBe(false);
    expect(d.stopped).toBe(true);
    expect(d.pending.size).toBe(2);
    p = d.probeFrame(2000)!;
    d.probeSent(p, 2000);
    d.onDelivered(p.seq, 2003);
    expect(d.probeOutstanding(2500)).toBe(true); // the drain waits for the decision
    expect(d.tick(2202)).toBe(false);
    expect(d.tick(2203)).toBe(true);
    expect(d.stopped).toBe(false);
    expect([...d.pending.keys()]).toEqual([1]);
    expect(d.stats.acked).toBe(1);
    expect(d.unreportedDrops).toBe(0); // nothing was dropped
  });

  it("behavior: over MQTT a frame PUBACKed just before the refusal of the device is taken back (it was not stored), in age order", () => {
    const d = device({ resendMs: 200 });
    for (let i = 0; i < 3; i++) d.nextData(0); // sent: 0, 1, 2
    d.onDelivered(0, 10);
    d.onDelivered(1, 11);
    expect(d.stats.acked).toBe(2);
    d.onNack(refuse(0), 12); // the HELLO's refusal (seq 0), then each frame's
    d.onNack(refuse(1), 13);
    d.onNack(refuse(2), 14);
    expect(d.stopped).toBe(true);
    expect([...d.pending.keys()]).toEqual([0, 1, 2]);
    expect(d.stats.acked).toBe(0);
    expect([...d.pending.values()].every((f) => f.sends === 0)).toBe(true);
  });

  it("behavior: a probe frame the full ring drops while its reply is on the way counts as acknowledged, not dropped, when the ACK comes", () => {
    const d = device({ window: 2, probeIntervalMs: 100 });
    sample(d, 2, 0); // 0, 1
    d.onNack(refuse(0), 0);
    const p = d.probeFrame(100)!;
    expect(p.seq).toBe(0);
    d.probeSent(p, 100);
    sample(d, 1, 101); // 2: drops the probe frame 0
    expect(d.stats.droppedWhileStopped).toBe(1);
    d.onAck(ack(0), 102);
    expect(d.stopped).toBe(false);
    expect(d.stats).toMatchObject({ acked: 1, overflowed: 0, droppedWhileStopped: 0, dupAcks: 0 });
    expect(d.unreportedDrops).toBe(0);
    expect([...d.pending.keys()]).toEqual([1, 2]);
  });

  it("behavior: probe interval 0 never probes; a reboot forgets the probe in flight", () => {
    const never = device({ probeIntervalMs: 0 });
    never.nextData(0);
    never.onNack(refuse(0), 0);
    expect(never.probes).toBe(false);
    expect(never.probeFrame(Number.MAX_SAFE_INTEGER)).toBeUndefined();

    const d = device({ probeIntervalMs: 100 });
    d.nextData(0);
    d.onNack(refuse(0), 0);
    d.probeSent(d.probeFrame(100)!, 100);
    d.reboot();
    expect(d.probeSeq).toBeUndefined();
    // The reset also ended the stop (reboot-stopped.test.ts): a running device does not probe.
    expect(d.stopped).toBe(false);
    d.nextData(250);
    expect(d.probeFrame(250)).toBeUndefined();
  });
});
