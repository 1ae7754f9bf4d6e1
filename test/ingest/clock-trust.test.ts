/**
 * A gateway booted with a stale clock (a Pi without RTC before NTP) accepts frames beyond the skew
 * limit instead of NACKing them ABSURD_TIMESTAMP, and marks what it stores, until the clock is
 * known good (the mark in the store: clock-mark.test.ts).
 */
import { describe, expect, it } from "vitest";
import { FakeClock } from "../../gateway/src/core/clock.ts";
import { ClockTrust } from "../../gateway/src/ingest/clock-trust.ts";
import { Ingest } from "../../gateway/src/ingest/ingest.ts";
import { MemorySink } from "../../gateway/src/ingest/memory-sink.ts";
import {
  encodeFrame,
  decodeFrame,
  FrameType,
  NackReason,
  type Frame,
} from "../../gateway/src/protocol/frame.ts";

const DAY_MS = 86_400_000;

function frame(seq: number, ts: number): { frame: ReturnType<typeof decodeFrame>; raw: Buffer } {
  const f: Frame = {
    type: FrameType.Data,
    deviceId: 7,
    seq,
    timestampUs: ts,
    flags: 0,
    values: Float32Array.from([1]),
  };
  const raw = encodeFrame(f);
  return { frame: decodeFrame(raw), raw };
}

/** A machine whose timesyncd state is `files` (paths that exist). */
function trust(files: string[], now: () => number, mono: () => number = () => 0): ClockTrust {
  const set = new Set(files);
  return new ClockTrust({ syncDir: "/run/systemd/timesync", exists: (p) => set.has(p), now, mono });
}

describe("ClockTrust", () => {
  it("behavior: timesyncd present and not synchronised → untrusted; synchronised, or no timesyncd → trusted", () => {
    const now = () => 1_700_000_000_000;
    expect(trust(["/run/systemd/timesync"], now).untrustedReason()).toMatch(/timesyncd has not synchronised/);
    expect(trust(["/run/systemd/timesync", "/run/systemd/timesync/synchronized"], now).trusted()).toBe(true);
    expect(trust([], now).trusted()).toBe(true);
  });

  it("behavior: a clock behind the chain's latest block is untrusted until it catches up with the advancing bound", () => {
    let wall = 1_700_000_000_000 - 3 * DAY_MS; // 3 days behind
    let mono = 0;
    const t = trust(
      [],
      () => wall,
      () => mono,
    );
    t.noteLowerBound(1_700_000_000); // block time, seconds
    expect(t.untrustedReason()).toMatch(/is 259200 s behind the chain's latest block/);
    // NTP steps the clock; 10 s later the bound has advanced 10 s too.
    mono += 10_000;
    wall = 1_700_000_000_000 + 10_000;
    expect(t.trusted()).toBe(true);
    // Within the tolerance (30 s) is fine: blocks are not minted every millisecond.
    wall -= 20_000;
    expect(t.trusted()).toBe(true);
  });
});

describe("ClockTrust.trusted (asked once per frame)", () => {
  it("behavior: reuses its answer for recheckMs of the monotonic clock, and a new lower bound is judged at once", () => {
    const files = new Set(["/run/systemd/timesync"]);
    let stats = 0;
    let mono = 0;
    let wall = 1_700_000_000_000;
    const t = new ClockTrust({
      exists: (p) => (stats++, files.has(p)),
      now: () => wall,
      mono: () => mono,
      recheckMs: 1000,
    });
    expect(t.trusted()).toBe(false);
    const after = stats;
    files.add("/run/systemd/timesync/synchronized");
    mono += 999;
    expect(t.trusted()).toBe(false); // cached
    expect(stats).toBe(after);
    mono += 1;
    expect(t.trusted()).toBe(true);
    // A block time 3 days ahead of the wall clock: untrusted now, not after recheckMs.
    wall -= 3 * DAY_MS;
    t.noteLowerBound(1_700_000_000);
    expect(t.trusted()).toBe(false);
  });
});

describe("Ingest with an untrusted clock", () => {
  it("behavior: frames 3 days ahead of the gateway clock are ACKed and counted while untrusted, NACKed once trusted", async () => {
    const clock = new FakeClock();
    const device = clock.nowUs() + 3 * DAY_MS * 1000; // correctly timestamped; the gateway is behind
    let good = false;
    const sink = new MemorySink();
    const ingest = new Ingest({ sink, clock, clockTrusted: () => good });
    expect(await ingest.handle(frame(1, device), "serial")).toEqual({ kind: "ack", deviceId: 7, seq: 1 });
    expect(ingest.counters.clockUnverified).toBe(1);
    expect(ingest.counters.snapshot().clockUnverified).toBe(1);
    expect(sink.records[0]).toMatchObject({ timestampUs: device, clockUnverified: true });
    good = true;
    expect(await ingest.handle(frame(2, device), "serial")).toMatchObject({
      kind: "nack",
      reason: NackReason.ABSURD_TIMESTAMP,
    });
    expect(ingest.counters.clockUnverified).toBe(1);
  });
});
