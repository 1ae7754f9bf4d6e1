/**
 * Frames stored while the gateway clock is not known good are marked clock-unverified in their
 * store record (README "Time without a real-time clock"); the mark survives a restart, reaches
 * the frame's receipt, and frames stored after the clock became good are not marked.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { BatchSealer } from "../../gateway/src/attest/sealer.ts";
import { GatewaySigner } from "../../gateway/src/attest/signer.ts";
import { ReceiptBuilder, type Bundle } from "../../gateway/src/attest/receipt.ts";
import { receiptCommand } from "../../gateway/src/cli/receipt.ts";
import { verifyReceipt } from "../../gateway/src/attest/verify.ts";
import { vigilDomain } from "../../gateway/src/chain/eip712.ts";
import { generateKey } from "../../gateway/src/chain/keys.ts";
import { FakeClock } from "../../gateway/src/core/clock.ts";
import { ClockTrust } from "../../gateway/src/ingest/clock-trust.ts";
import { Ingest } from "../../gateway/src/ingest/ingest.ts";
import {
  decodeFrame,
  encodeFrame,
  FrameType,
  NackReason,
  type Frame,
} from "../../gateway/src/protocol/frame.ts";
import {
  decodeRecord,
  encodeRecord,
  FLAG_CLOCK_UNVERIFIED,
  RECORD_FIXED,
  writeU64,
} from "../../gateway/src/store/codec.ts";
import { LevelFrameStore } from "../../gateway/src/store/level.ts";
import type { StoredFrame } from "../../gateway/src/store/types.ts";
import { readStoreFromDisk } from "../helpers/store-reader.ts";

const DAY_US = 86_400_000_000;
const SYNC_DIR = "/run/systemd/timesync";

function data(seq: number, ts: number) {
  const f: Frame = {
    type: FrameType.Data,
    deviceId: 7,
    seq,
    timestampUs: ts,
    flags: 0,
    values: Float32Array.of(1),
  };
  const raw = encodeFrame(f);
  return { frame: decodeFrame(raw), raw };
}

async function frames(store: LevelFrameStore): Promise<StoredFrame[]> {
  const out: StoredFrame[] = [];
  for await (const f of store.framesByDevice(7)) out.push(f);
  return out;
}

describe("the clock-unverified mark in the store record", () => {
  it("behavior: records written before the flags byte (byte 4 = 0) read unflagged; flagged ones round-trip at the largest seq", () => {
    const raw = Buffer.from([1, 2, 3, 4]);
    const old = Buffer.alloc(RECORD_FIXED + raw.length);
    old.writeUInt32BE(7, 0);
    writeU64(old, 4, 2 ** 40 + 5);
    writeU64(old, 12, 1_764_000_000_000_000);
    writeU64(old, 20, 1_764_000_000_000_001);
    raw.copy(old, RECORD_FIXED);
    const d = decodeRecord(3, old);
    expect(d).toMatchObject({ index: 3, deviceId: 7, seq: 2 ** 40 + 5 });
    expect(d.clockUnverified).toBeUndefined();
    expect(encodeRecord(d)).toEqual(old);

    const rec = {
      deviceId: 7,
      seq: Number.MAX_SAFE_INTEGER,
      receivedUs: 1,
      timestampUs: 2,
      raw,
      clockUnverified: true as const,
    };
    const enc = encodeRecord(rec);
    expect(enc[4]).toBe(FLAG_CLOCK_UNVERIFIED);
    expect(decodeRecord(1, enc)).toEqual({ ...rec, index: 1 });
  });
});

describe("Ingest → LevelFrameStore with a clock that becomes known good", () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("behavior: frames stored while untrusted are marked (3 days ahead ones accepted too), later ones not; the marks survive a restart and reach the receipts", async () => {
    dir = mkdtempSync(join(tmpdir(), "vigil-clock-mark-"));
    const files = new Set([SYNC_DIR]); // timesyncd runs and has not synchronised yet
    const trust = new ClockTrust({ syncDir: SYNC_DIR, exists: (p) => files.has(p), recheckMs: 0 });
    const clock = new FakeClock();
    let store = new LevelFrameStore({ dir, reserveBytes: 0, minFreeBytes: 0 });
    await store.open();
    const ingest = new Ingest({ sink: store, clock, clockTrusted: () => trust.trusted() });
    const now = clock.nowUs();
    expect(await ingest.handle(data(1, now), "serial")).toMatchObject({ kind: "ack" });
    expect(await ingest.handle(data(2, now + 3 * DAY_US), "serial")).toMatchObject({ kind: "ack" });
    files.add(join(SYNC_DIR, "synchronized")); // NTP synchronised
    expect(await ingest.handle(data(3, now), "serial")).toMatchObject({ kind: "ack" });
    expect(await ingest.handle(data(4, now + 3 * DAY_US), "serial")).toMatchObject({
      kind: "nack",
      reason: NackReason.ABSURD_TIMESTAMP,
    });
    expect(ingest.counters.clockUnverified).toBe(2);
    expect(ingest.counters.accepted).toBe(3);
    const marks = (fs: StoredFrame[]) => fs.map((f) => [f.seq, f.clockUnverified === true]);
    expect(marks(await frames(store))).toEqual([
      [1, true],
      [2, true],
      [3, false],
    ]);

    // A restart: a new store object on the same folder. On disk, read without the store's code:
    await store.close();
    expect((await readStoreFromDisk(dir)).frames.map((f) => [f.seq, f.clockUnverified])).toEqual([
      [1, true],
      [2, true],
      [3, false],
    ]);
    store = new LevelFrameStore({ dir, reserveBytes: 0, minFreeBytes: 0 });
    await store.open();
    try {
      expect(marks(await frames(store))).toEqual([
        [1, true],
        [2, true],
        [3, false],
      ]);
      const sealer = new BatchSealer({
        store,
        signer: new GatewaySigner(generateKey("secp256k1")),
        gatewayId: `0x${"ab".repeat(32)}`,
        domain: vigilDomain(31337, "0x" + "44".repeat(20)),
        maxLeaves: 16,
      });
      await sealer.sealNow();
      const rb = new ReceiptBuilder(store);
      const marked = await rb.forSeq(7, 2);
      const plain = await rb.forSeq(7, 3);
      expect(marked.frame.clockUnverified).toBe(true);
      expect(plain.frame.clockUnverified).toBe(false);
      // The mark is informational: the receipt verifies with either value.
      expect(await verifyReceipt(marked)).toMatchObject({ ok: true });
      expect(
        await verifyReceipt({ ...marked, frame: { ...marked.frame, clockUnverified: false } }),
      ).toMatchObject({
        ok: true,
      });
    } finally {
      await store.close();
    }
    // `vigil receipt` says how many exported frames carry the mark.
    let out = "";
    let err = "";
    const io = { out: (x: string) => void (out += x), err: (x: string) => void (err += x) };
    expect(await receiptCommand(["--store", dir, "--device", "00000007"], io)).toBe(0);
    expect((JSON.parse(out) as Bundle).receipts.map((r) => r.frame.clockUnverified)).toEqual([
      true,
      true,
      false,
    ]);
    expect(err).toContain(
      "exported 3 receipts\n2 of them were stored before the gateway clock was known good",
    );
    out = err = "";
    expect(await receiptCommand(["--store", dir, "--device", "00000007", "--seq", "1"], io)).toBe(0);
    expect(err).toMatch(
      /^the frame was stored before the gateway clock was known good \(frame\.clockUnverified\)/,
    );
    out = err = "";
    expect(await receiptCommand(["--store", dir, "--device", "00000007", "--seq", "3"], io)).toBe(0);
    expect(err).toBe("");
  });
});
