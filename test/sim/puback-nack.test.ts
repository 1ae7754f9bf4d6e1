// Over MQTT the gateway PUBACKs every PUBLISH except those NACKed with a withhold reason, and
// publishes the NACK on the device's reply topic (hardware/PROTOCOL.md, "Replies and silence",
// "MQTT transport"): a frame NACKed SCHEMA_MISMATCH, ABSURD_TIMESTAMP or SEQ_OUT_OF_RANGE is
// PUBACKed too. The simulated device does what the NACK table says whatever came first: such a
// PUBACK is no acknowledgement. SCHEMA_MISMATCH: HELLO, then the resend (the frame's 3rd drops it,
// abandoned: protocol revision 1.3); ABSURD_TIMESTAMP, SEQ_OUT_OF_RANGE: dropped (abandoned). Its
// counters, and the frames it reports as acknowledged (onAcked), are what the gateway stored. State machine on injected time, then the simulator over a
// fake MQTT-like link (PUBACK and NACK in either order).
import { describe, expect, it } from "vitest";
import { SimDevice } from "../../device-sim/src/device.ts";
import { Simulator } from "../../device-sim/src/simulator.ts";
import { testDevice } from "./device-fixture.ts";
import type { Transport } from "../../device-sim/src/transports/types.ts";
import {
  decodeFrame,
  FrameType,
  NackReason,
  SCHEMA_MISMATCH_MAX,
  type Frame,
} from "../../gateway/src/protocol/frame.ts";

const device = (acked: number[] = []): SimDevice =>
  testDevice({
    resendMs: 200,
    onAcked: (raw) => {
      const f = decodeFrame(raw);
      if (f.type === FrameType.Data) acked.push(f.seq);
    },
  });

const nack = (seq: number, reason: number) => ({ type: FrameType.Nack, deviceId: 7, seq, reason }) as const;

describe("simulated device: a PUBACK followed by a NACK", () => {
  for (const reason of [NackReason.ABSURD_TIMESTAMP, NackReason.SEQ_OUT_OF_RANGE]) {
    it(`behavior: PUBACK then NACK ${reason === NackReason.ABSURD_TIMESTAMP ? "ABSURD_TIMESTAMP" : "SEQ_OUT_OF_RANGE"}: the frame is dropped (abandoned), not acknowledged`, () => {
      const acked: number[] = [];
      const d = device(acked);
      d.nextData(0);
      d.nextData(0);
      d.onDelivered(0, 10);
      expect(d.stats.acked).toBe(1);
      expect(acked).toEqual([]); // not before the reply timeout
      expect(d.awaitingRefusal(209)).toBe(true);
      expect(d.onNack(nack(0, reason), 12)).toBe(false);
      expect(d.stats).toMatchObject({ acked: 0, abandoned: 1, dupAcks: 0 });
      expect([...d.pending.keys()]).toEqual([1]);
      d.onDelivered(1, 20);
      d.settle(10_000, true);
      expect(acked).toEqual([1]);
      expect(d.stats).toMatchObject({ acked: 1, abandoned: 1, dupAcks: 0 });
    });
  }

  it("behavior: PUBACK then NACK SCHEMA_MISMATCH: the frame is taken back and resent (after HELLO); only the resend's PUBACK acknowledges it", () => {
    const acked: number[] = [];
    const d = device(acked);
    const p = d.nextData(0)!;
    d.transmitted(p);
    d.onDelivered(0, 10);
    expect(d.onNack(nack(0, NackReason.SCHEMA_MISMATCH), 11)).toBe(true);
    expect(d.stats.acked).toBe(0);
    expect(d.pending.get(0)).toBe(p);
    expect(p.sends).toBe(0); // refused, not stored: the resend is no duplicate
    d.transmitted(p);
    d.onDelivered(0, 30);
    expect(d.stats).toMatchObject({ acked: 1, abandoned: 0, dupAcks: 0 });
    expect(d.pending.size).toBe(0);
    d.settle(229);
    expect(acked).toEqual([]);
    d.settle(230);
    expect(acked).toEqual([0]);
  });

  it("behavior: NACK before the PUBACK: SCHEMA_MISMATCH keeps the frame (that PUBACK is ignored) until its resend is PUBACKed; ABSURD_TIMESTAMP drops it and the PUBACK is no duplicate", () => {
    const d = device();
    const p = d.nextData(0)!;
    d.transmitted(p);
    d.nextData(0);
    expect(d.onNack(nack(0, NackReason.SCHEMA_MISMATCH), 5)).toBe(true);
    d.onDelivered(0, 6); // the refused PUBLISH's PUBACK
    expect(d.stats.acked).toBe(0);
    expect(d.pending.has(0)).toBe(true);
    d.transmitted(p); // the resend
    d.onDelivered(0, 20);
    expect(d.stats.acked).toBe(1);
    d.onNack(nack(1, NackReason.ABSURD_TIMESTAMP), 21);
    d.onDelivered(1, 22);
    expect(d.stats).toMatchObject({ acked: 1, abandoned: 1, dupAcks: 0 });
    expect(d.pending.size).toBe(0);
  });

  it("behavior: SCHEMA_MISMATCH is resent after HELLO at most SCHEMA_MISMATCH_MAX (3) times per frame: the 3rd drops it (abandoned), whether or not its PUBACK came first", () => {
    expect(SCHEMA_MISMATCH_MAX).toBe(3);
    const acked: number[] = [];
    const d = device(acked);
    const p = d.nextData(0)!;
    d.transmitted(p);
    const q = d.nextData(0)!;
    d.transmitted(q);
    // A seq reused with other bytes in one boot: a HELLO cannot fix it, each resend is refused.
    expect(d.onNack(nack(0, NackReason.SCHEMA_MISMATCH), 10)).toBe(true);
    d.transmitted(p);
    expect(d.onNack(nack(0, NackReason.STORE_UNAVAILABLE), 11)).toBe(false); // other reasons do not count
    d.onDelivered(0, 12); // over MQTT: PUBACKed, then NACKed again
    expect(d.onNack(nack(0, NackReason.SCHEMA_MISMATCH), 13)).toBe(true);
    d.transmitted(p);
    expect(d.onNack(nack(0, NackReason.SCHEMA_MISMATCH), 20)).toBe(false);
    expect([...d.pending.keys()]).toEqual([1]);
    expect(d.stats).toMatchObject({ acked: 0, abandoned: 1, dupAcks: 0 });
    expect(d.stats.nacked).toMatchObject({ SCHEMA_MISMATCH: 3 });
    // Counted per frame: frame 1's first SCHEMA_MISMATCH still asks for HELLO and the resend.
    expect(d.onNack(nack(1, NackReason.SCHEMA_MISMATCH), 21)).toBe(true);
    expect(d.pending.get(1)).toBe(q);
    d.onDelivered(0, 22); // the dropped frame's PUBACK acknowledges nothing
    d.settle(10_000, true);
    expect(acked).toEqual([]);
    expect(d.stats).toMatchObject({ acked: 0, abandoned: 1, dupAcks: 0 });
  });

  it("behavior: a NACK later than the reply timeout after the PUBACK no longer takes it back; a withhold reason never does", () => {
    const d = device();
    d.nextData(0);
    d.nextData(0);
    d.onDelivered(0, 10);
    d.onNack(nack(0, NackReason.ABSURD_TIMESTAMP), 210);
    d.onDelivered(1, 300);
    d.onNack({ ...nack(1, NackReason.BUSY), retryAfterMs: 100 }, 301); // the gateway withholds a BUSY frame's PUBACK
    expect(d.stats).toMatchObject({ acked: 2, abandoned: 0 });
  });
});

/**
 * A gateway over MQTT, in miniature: every DATA PUBLISH is PUBACKed (delivered at the next drain)
 * and the first copies of some sequences are NACKed as well, before or after the PUBACK; a
 * SCHEMA_MISMATCH resend is stored. One PUBLISH of a frame in flight at a time.
 */
class PubackLink implements Transport {
  readonly name = "fake-mqtt";
  connected = true;
  onDelivered?: (deviceId: number, seq: number) => void;
  #onControl: ((f: Frame) => void) | undefined;
  #queue: Array<() => void> = [];
  readonly #inflight = new Set<number>();
  readonly #refusedOnce = new Set<number>();
  readonly stored = new Set<number>();
  storedTwice = 0;
  /** What the link took, in order: "H" a HELLO, else a DATA frame's seq. */
  readonly log: Array<"H" | number> = [];
  constructor(
    readonly refuse: ReadonlyMap<number, number>,
    readonly nackFirst: boolean,
  ) {}
  async open(onControl: (frame: Frame) => void): Promise<void> {
    this.#onControl = onControl;
  }
  inFlight(_deviceId: number, seq: number): boolean {
    return this.#inflight.has(seq);
  }
  send(deviceId: number, raw: Uint8Array, seq?: number): boolean {
    const f = decodeFrame(raw);
    if (f.type === FrameType.Hello) this.log.push("H");
    if (f.type !== FrameType.Data || seq === undefined) return true;
    if (this.#inflight.has(seq)) return false;
    this.#inflight.add(seq);
    this.log.push(seq);
    const reason = this.refuse.get(seq);
    const refused = reason !== undefined && !this.#refusedOnce.has(seq);
    const puback = (): void => {
      this.#inflight.delete(seq);
      this.onDelivered?.(deviceId, seq);
    };
    if (refused) {
      this.#refusedOnce.add(seq);
      const nackIt = (): void => this.#onControl?.({ type: FrameType.Nack, deviceId, seq, reason });
      this.#queue.push(...(this.nackFirst ? [nackIt, puback] : [puback, nackIt]));
    } else {
      if (this.stored.has(seq)) this.storedTwice++;
      this.stored.add(seq);
      this.#queue.push(puback);
    }
    return true;
  }
  sendNoise(): void {}
  async disconnect(): Promise<void> {}
  async reconnect(): Promise<void> {}
  async drain(): Promise<void> {
    const q = this.#queue;
    this.#queue = [];
    for (const f of q) f();
  }
  async close(): Promise<void> {}
}

describe("simulator over an MQTT-like link: PUBACKed, then NACKed", () => {
  const refuse = new Map([
    [3, NackReason.SCHEMA_MISMATCH],
    [5, NackReason.ABSURD_TIMESTAMP],
    [7, NackReason.SEQ_OUT_OF_RANGE],
  ]);
  for (const nackFirst of [false, true]) {
    it(`behavior: acked, abandoned and onAcked are what the gateway stored (NACK ${nackFirst ? "before" : "after"} the PUBACK)`, async () => {
      const link = new PubackLink(refuse, nackFirst);
      const acked: number[] = [];
      const report = await new Simulator({
        transport: link,
        devices: 1,
        rate: 0,
        framesPerDevice: 10,
        meanLife: 1e6,
        resendMs: 100,
        drainMs: 5000,
        seed: 5,
        onAcked: (_id, raw) => {
          const f = decodeFrame(raw);
          if (f.type === FrameType.Data) acked.push(f.seq);
        },
      }).run();
      expect([...link.stored].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 6, 8, 9]);
      expect(link.storedTwice).toBe(0);
      // HELLO, the frames; then the HELLO SCHEMA_MISMATCH asks for, then the resend of 3 (only).
      expect(link.log.slice(0, 11)).toEqual(["H", 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      expect(link.log.slice(11)).toEqual(["H", 3]);
      expect(report).toMatchObject({ generated: 10, acked: 8, abandoned: 2, pending: 0, dupAcks: 0 });
      expect(report.nacked).toEqual({ SCHEMA_MISMATCH: 1, ABSURD_TIMESTAMP: 1, SEQ_OUT_OF_RANGE: 1 });
      expect(acked.sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 6, 8, 9]);
    }, 20_000);
  }
});
