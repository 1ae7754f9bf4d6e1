// A frame is (device, boot, seq): a reboot is not a replay, one far-off sequence number cannot
// break store-once, and no ACK is ever sent for a frame that is not stored. Ingest over the real
// store logic (MemoryFrameStore), read back through the store's own index.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FakeClock } from "../../gateway/src/core/clock.ts";
import { Ingest, type IngestReply } from "../../gateway/src/ingest/ingest.ts";
import { SEQ_MAX_JUMP, SEQ_WINDOW, SequenceTracker } from "../../gateway/src/ingest/sequence.ts";
import {
  decodeFrame,
  FrameType,
  NackReason,
  type DataFrame,
  type Frame,
} from "../../gateway/src/protocol/frame.ts";
import { MemoryFrameStore } from "../../gateway/src/store/memory.ts";
import { decoded as dec } from "../helpers/frames.ts";
import { anchor, fakeBatch } from "../store/abstract.ts";

const clock = new FakeClock();
/** What runtime.ts wires as ingest's `storedRaw`: the stored frame's bytes from the store's index. */
const storedRawOf =
  (store: MemoryFrameStore) =>
  async (d: number, s: number): Promise<Uint8Array | undefined> =>
    (await store.getFrameBySeq(d, s))?.raw;
const DEV = 0x2a;

const hello = (bootId: number): Frame => ({
  type: FrameType.Hello,
  deviceId: DEV,
  bootId,
  firmware: { major: 1, minor: 0, patch: 0 },
  profile: "p",
  channels: [{ name: "v", unit: 0 }],
});
/** A DATA frame whose value identifies the reading (boot × 1e6 + n), so stored copies can be told apart. */
const data = (seq: number, reading: number): DataFrame => ({
  type: FrameType.Data,
  deviceId: DEV,
  seq: seq >>> 0,
  timestampUs: clock.nowUs(),
  flags: 0,
  values: Float32Array.of(reading),
});

async function rig(): Promise<{
  ingest: Ingest;
  store: MemoryFrameStore;
  readings: () => Promise<number[]>;
}> {
  const store = new MemoryFrameStore({ groupCommit: { flushIntervalMs: 0 } });
  await store.open();
  const ingest = new Ingest({
    sink: store,
    clock,
    storedRaw: storedRawOf(store),
  });
  return {
    ingest,
    store,
    async readings() {
      const out: number[] = [];
      for await (const f of store.framesByDevice(DEV)) out.push((decodeFrame(f.raw) as DataFrame).values[0]!);
      return out;
    },
  };
}

describe("sequence numbers and boots", () => {
  it("behavior: a device that reboots and restarts its counter has both boots' frames stored", async () => {
    const { ingest, readings } = await rig();
    ingest.handle(dec(hello(1)), "serial");
    for (let s = 0; s < 10; s++)
      expect(await ingest.handle(dec(data(s, 1e6 + s)), "serial")).toMatchObject({ kind: "ack", seq: s });
    ingest.handle(dec(hello(2)), "serial");
    for (let s = 0; s < 10; s++)
      expect(await ingest.handle(dec(data(s, 2e6 + s)), "serial")).toMatchObject({ kind: "ack", seq: s });
    const got = await readings();
    expect(got).toHaveLength(20);
    expect(got.slice(10)).toEqual(Array.from({ length: 10 }, (_, i) => 2e6 + i));
    expect(ingest.counters.duplicates).toBe(0);
    expect(ingest.counters.devices.get(DEV)!.seq.gaps).toBe(0);
    // A reconnect that repeats the current boot id is not a reboot: resends are duplicates.
    ingest.handle(dec(hello(2)), "serial");
    expect(await ingest.handle(dec(data(9, 2e6 + 9)), "serial")).toMatchObject({ kind: "ack" });
    expect(ingest.counters.duplicates).toBe(1);
    expect(await readings()).toHaveLength(20);
  });

  it("error: a lost HELLO: the new boot's frames under stored numbers are NACKed SCHEMA_MISMATCH (counted SEQ_REUSED), never ACKed unstored; after the HELLO the resend is stored", async () => {
    const { ingest, readings } = await rig();
    ingest.handle(dec(hello(1)), "serial");
    const n = SEQ_WINDOW + 8; // the oldest numbers are past the in-memory window: the store decides
    for (let at = 0; at < n; at += 1000) {
      // In parts below ingest's default maxPending (2,000), past which a serial line gets BUSY.
      const part = Array.from({ length: Math.min(1000, n - at) }, (_, k) => data(at + k, at + k));
      const replies = await Promise.all(part.map((f) => ingest.handle(dec(f), "serial")));
      expect(replies.every((r) => r.kind === "ack")).toBe(true);
    }
    const mismatch = { kind: "nack", deviceId: DEV, reason: NackReason.SCHEMA_MISMATCH };
    // Boot 2 starts at 0 and its HELLO is lost: seq 0 (store lookup) and n - 1 (the bitmap)
    // are stored numbers with other bytes.
    expect(await ingest.handle(dec(data(0, 2e6)), "serial")).toEqual({ ...mismatch, seq: 0 });
    expect(await ingest.handle(dec(data(n - 1, 2e6 + 1)), "serial")).toEqual({ ...mismatch, seq: n - 1 });
    // Two different frames under one new number at once: the first is stored, the second refused.
    const [a, b] = await Promise.all([
      ingest.handle(dec(data(n, 2e6 + 2)), "serial"),
      ingest.handle(dec(data(n, 2e6 + 3)), "serial"),
    ]);
    expect(a).toMatchObject({ kind: "ack", seq: n });
    expect(b).toEqual({ ...mismatch, seq: n });
    expect(ingest.counters.rejected.SEQ_REUSED).toBe(3);
    expect(ingest.counters.duplicates).toBe(0);
    // The device does what the NACK says: HELLO, then the resend, which is stored.
    ingest.handle(dec(hello(2)), "serial");
    expect(await ingest.handle(dec(data(0, 2e6)), "serial")).toMatchObject({ kind: "ack", seq: 0 });
    const got = await readings();
    expect(got).toHaveLength(n + 2);
    expect(got.slice(-2)).toEqual([2e6 + 2, 2e6]);
    // A true resend (the same bytes) is still a duplicate.
    expect(await ingest.handle(dec(data(0, 2e6)), "serial")).toMatchObject({ kind: "ack", seq: 0 });
    expect(ingest.counters.duplicates).toBe(1);
  });

  it("error: a lost HELLO after a boot whose frames retention pruned: the new boot's frames are NACKed SCHEMA_MISMATCH, never ACKed unstored; a HELLO of the same boot makes them resends", async () => {
    let mono = 0;
    const store = new MemoryFrameStore({ groupCommit: { flushIntervalMs: 0 }, monotonicMs: () => mono });
    await store.open();
    const ingest = new Ingest({ sink: store, clock, storedRaw: storedRawOf(store) });
    const stored = async (): Promise<number[]> => {
      const out: number[] = [];
      for await (const f of store.framesByDevice(DEV)) out.push((decodeFrame(f.raw) as DataFrame).values[0]!);
      return out;
    };
    ingest.handle(dec(hello(1)), "serial");
    for (let s = 0; s < 10; s++)
      expect(await ingest.handle(dec(data(s, 1e6 + s)), "serial")).toMatchObject({ kind: "ack" });
    // Boot 1's frames are sealed, anchored and pruned (retention).
    await store.saveBatch(fakeBatch(1, `0x${"00".repeat(32)}`, 1, 10, 0), new Uint8Array(320));
    await store.markAnchored(1, anchor(1));
    mono += 10;
    expect(await store.prune({ retentionUs: 5 })).toBe(10);
    expect(await stored()).toEqual([]);

    // Boot 2 starts at 0 and its HELLO is lost: its numbers are boot 1's pruned ones.
    const mismatch = { kind: "nack", deviceId: DEV, reason: NackReason.SCHEMA_MISMATCH };
    expect(await ingest.handle(dec(data(0, 2e6)), "serial")).toEqual({ ...mismatch, seq: 0 });
    expect(await ingest.handle(dec(data(1, 2e6 + 1)), "serial")).toEqual({ ...mismatch, seq: 1 });
    expect(ingest.counters.rejected.SEQ_REUSED).toBe(2);
    // The device does what the NACK says: HELLO (boot 2), then the resends, stored in boot 2.
    ingest.handle(dec(hello(2)), "serial");
    for (const s of [0, 1])
      expect(await ingest.handle(dec(data(s, 2e6 + s)), "serial")).toMatchObject({ kind: "ack", seq: s });
    expect(await stored()).toEqual([2e6, 2e6 + 1]);
    expect(ingest.counters.duplicates).toBe(0);

    // A true resend of a pruned frame: the HELLO repeats the current boot, then it is a duplicate.
    const late = await ingest.handle(dec(data(1, 2e6 + 1)), "serial");
    expect(late).toMatchObject({ kind: "ack" }); // boot 2's frame 1 is still stored: compared, equal
    await store.saveBatch(
      fakeBatch(2, fakeBatch(1, `0x${"00".repeat(32)}`, 1, 10, 0).head, 11, 12, 0),
      new Uint8Array(64),
    );
    await store.markAnchored(2, anchor(2));
    mono += 10;
    expect(await store.prune({ retentionUs: 5 })).toBe(2);
    expect(await ingest.handle(dec(data(1, 2e6 + 1)), "serial")).toEqual({ ...mismatch, seq: 1 });
    ingest.handle(dec(hello(2)), "serial");
    expect(await ingest.handle(dec(data(1, 2e6 + 1)), "serial")).toMatchObject({ kind: "ack", seq: 1 });
    expect(await ingest.handle(dec(data(0, 2e6)), "serial")).toMatchObject({ kind: "ack", seq: 0 });
    expect(ingest.counters.rejected.SEQ_REUSED).toBe(3);
    expect(ingest.counters.duplicates).toBe(3);
    // Nothing was stored twice, and the next new frame is stored.
    expect(await ingest.handle(dec(data(2, 2e6 + 2)), "serial")).toMatchObject({ kind: "ack", seq: 2 });
    expect(await stored()).toEqual([2e6 + 2]);
  });

  it("error: one far-off sequence number is NACKed SEQ_OUT_OF_RANGE, counted, and stores nothing twice", async () => {
    const { ingest, readings } = await rig();
    ingest.handle(dec(hello(1)), "serial");
    for (const s of [5, 6]) await ingest.handle(dec(data(s, s)), "serial");
    const far = await ingest.handle(dec(data(2 ** 32 - 16, -1)), "serial");
    expect(far).toEqual({
      kind: "nack",
      deviceId: DEV,
      seq: 2 ** 32 - 16,
      reason: NackReason.SEQ_OUT_OF_RANGE,
    });
    const ahead = await ingest.handle(dec(data(6 + SEQ_MAX_JUMP + 1, -2)), "serial");
    expect(ahead).toMatchObject({ kind: "nack", reason: NackReason.SEQ_OUT_OF_RANGE });
    // The device's resends of 5 and 6 are duplicates, not new frames at 2^32 + 5.
    for (const s of [5, 6])
      expect(await ingest.handle(dec(data(s, s)), "serial")).toMatchObject({ kind: "ack" });
    expect(await readings()).toEqual([5, 6]);
    const d = ingest.counters.devices.get(DEV)!;
    expect(ingest.counters.rejected.SEQ_OUT_OF_RANGE).toBe(2);
    expect(d.seq.gaps).toBe(0);
    // Within the bound a jump is a gap, not a refusal.
    expect(await ingest.handle(dec(data(6 + SEQ_MAX_JUMP, 7)), "serial")).toMatchObject({ kind: "ack" });
    expect(d.seq.gaps).toBe(SEQ_MAX_JUMP - 1);
  });

  it("error: extended numbers stay exact (below 2^53): the boot that would start past 2^53 - 2^32 is refused", () => {
    const t = new SequenceTracker();
    const last = 2 ** 53 - 2 * 2 ** 32; // a boot's block ending just below the limit
    t.restore(last + 7, { id: 1, base: last });
    t.hello(2);
    expect(t.extend(0)).toBe(2 ** 53 - 2 ** 32); // the last block
    t.record(2 ** 53 - 2 ** 32);
    t.hello(3);
    expect(t.extend(0)).toBeUndefined();
    expect(t.outOfRange).toBe(1);
    expect(t.boot).toEqual({ id: 2, base: 2 ** 53 - 2 ** 32 }); // still the boot before
  });

  it("behavior: frames restored with no boot (a store written before boots were tracked): the first HELLO after the restart starts a new space, so a rebooted device's frames are stored, not refused as reused numbers", async () => {
    const { ingest, store, readings } = await rig();
    for (let s = 0; s < 5; s++) await ingest.handle(dec(data(s, s)), "serial"); // no HELLO: no boot
    expect(store.devices().get(DEV)).toMatchObject({ lastSeq: 4, bootId: undefined });
    const again = new Ingest({ sink: store, clock, storedRaw: storedRawOf(store) });
    again.counters.device(DEV).seq.restore(store.devices().get(DEV)!.lastSeq, undefined);
    // The device rebooted: its HELLO, then its numbering from 0 again, other readings.
    again.handle(dec(hello(9)), "serial");
    again.handle(dec(hello(9)), "serial"); // a repeated HELLO changes nothing
    for (let s = 0; s < 5; s++)
      expect(await again.handle(dec(data(s, 100 + s)), "serial")).toMatchObject({ kind: "ack" });
    expect(again.counters.rejected).toEqual({});
    expect(store.devices().get(DEV)).toEqual({ lastSeq: 2 ** 32 + 4, bootId: 9, base: 2 ** 32 });
    expect(await readings()).toEqual([0, 1, 2, 3, 4, 100, 101, 102, 103, 104]);
  });

  it("behavior: the boot's sequence space survives a gateway restart", async () => {
    const { ingest, store } = await rig();
    ingest.handle(dec(hello(7)), "serial");
    for (let s = 0; s < 3; s++) await ingest.handle(dec(data(s, s)), "serial");
    ingest.handle(dec(hello(8)), "serial");
    for (let s = 0; s < 3; s++) await ingest.handle(dec(data(s, 10 + s)), "serial");
    // The new boot starts at the next multiple of 2^32 (frame.seq mod 2^32 = seq in receipts).
    expect(store.devices().get(DEV)).toEqual({ lastSeq: 2 ** 32 + 2, bootId: 8, base: 2 ** 32 });
    // A restarted gateway restores the state; the device resends without a HELLO.
    const again = new Ingest({
      sink: store,
      clock,
      storedRaw: storedRawOf(store),
    });
    const st = store.devices().get(DEV)!;
    again.counters.device(DEV).seq.restore(st.lastSeq, { id: st.bootId!, base: st.base });
    expect(await again.handle(dec(data(2, 12)), "serial")).toMatchObject({ kind: "ack" });
    expect(again.counters.duplicates).toBe(1);
    expect(await again.handle(dec(data(3, 13)), "serial")).toMatchObject({ kind: "ack" });
    expect(store.lastSeq(DEV)).toBe(2 ** 32 + 3);
  });

  it("property: random reboots (some with their HELLO lost), wraps, resends and far jumps: every ACKed frame is stored (exactly once when no HELLO is lost), nothing unACKed is claimed", async () => {
    type Op =
      | { t: "send"; n: number }
      | { t: "resend"; back: number }
      | { t: "reboot"; restartAt: number; helloLost: boolean }
      | { t: "reconnect" }
      | { t: "far"; delta: number };
    const op: fc.Arbitrary<Op> = fc.oneof(
      {
        weight: 10,
        arbitrary: fc.record({ t: fc.constant("send" as const), n: fc.integer({ min: 1, max: 5 }) }),
      },
      { weight: 4, arbitrary: fc.record({ t: fc.constant("resend" as const), back: fc.nat(40) }) },
      {
        weight: 1,
        arbitrary: fc.record({
          t: fc.constant("reboot" as const),
          restartAt: fc.oneof(fc.constant(0), fc.constant(2 ** 32 - 3), fc.nat(100)),
          helloLost: fc.boolean(),
        }),
      },
      { weight: 1, arbitrary: fc.record({ t: fc.constant("reconnect" as const) }) },
      {
        weight: 1,
        arbitrary: fc.record({
          t: fc.constant("far" as const),
          delta: fc.oneof(
            fc.integer({ min: SEQ_MAX_JUMP + 1, max: 2 ** 31 }),
            fc.integer({ min: -(2 ** 31), max: -(SEQ_MAX_JUMP + 1) }),
          ),
        }),
      },
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 60 }), async (ops) => {
        const { ingest, readings } = await rig();
        let boot = 1;
        let next = 0; // next u32 seq of this boot
        let reading = 0;
        let lostSoFar = false;
        const sent = new Map<number, number>(); // seq of this boot → reading
        const acked = new Set<number>(); // readings the device saw acknowledged
        const send = async (seq: number, r: number): Promise<IngestReply> => {
          let reply = await ingest.handle(dec(data(seq, r)), "serial");
          if (reply.kind === "nack" && reply.reason === NackReason.SCHEMA_MISMATCH) {
            // As firmware does: HELLO, then the resend.
            ingest.handle(dec(hello(boot)), "serial");
            reply = await ingest.handle(dec(data(seq, r)), "serial");
          }
          if (reply.kind === "ack") acked.add(r);
          return reply;
        };
        ingest.handle(dec(hello(boot)), "serial");
        for (const o of ops) {
          if (o.t === "send")
            for (let i = 0; i < o.n; i++) {
              const seq = next >>> 0;
              next = (next + 1) >>> 0;
              sent.set(seq, ++reading);
              await send(seq, reading);
            }
          else if (o.t === "resend") {
            const seqs = [...sent.keys()];
            const seq = seqs[Math.max(0, seqs.length - 1 - o.back)];
            if (seq !== undefined) await send(seq, sent.get(seq)!);
          } else if (o.t === "reboot") {
            boot++;
            next = o.restartAt;
            sent.clear();
            if (o.helloLost) lostSoFar = true;
            else ingest.handle(dec(hello(boot)), "serial");
          } else if (o.t === "reconnect") ingest.handle(dec(hello(boot)), "serial");
          else {
            const last = [...sent.keys()].at(-1);
            if (last === undefined) continue;
            const reply = await send((last + o.delta) >>> 0, -1);
            // After a lost HELLO the gateway may open the device's boot late, at this very
            // frame: the first frame of a boot is never out of range.
            if (!lostSoFar)
              expect(reply).toMatchObject({ kind: "nack", reason: NackReason.SEQ_OUT_OF_RANGE });
          }
        }
        const stored = await readings();
        // Every ACKed reading is stored, and only readings that were sent (never the far-off
        // garbage). Exactly once unless a HELLO was lost: then a frame filed under the old boot
        // and resent after a later HELLO is stored again (PROTOCOL.md, "A lost HELLO").
        if (!lostSoFar) expect(new Set(stored).size).toBe(stored.length);
        expect([...new Set(stored)].sort((a, b) => a - b)).toEqual([...acked].sort((a, b) => a - b));
      }),
      { numRuns: 200 },
    );
  });
});
