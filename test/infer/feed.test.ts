/**
 * How ingest feeds inference: frames the store refused still reach the models (alerts keep
 * flowing while the disk is full), and each device is fed in increasing sequence only.
 */
import { describe, expect, it } from "vitest";
import { FakePublisher } from "../../gateway/src/alerts/publisher.ts";
import { VigilError } from "../../gateway/src/core/errors.ts";
import { Ingest } from "../../gateway/src/ingest/ingest.ts";
import { MemorySink } from "../../gateway/src/ingest/memory-sink.ts";
import { createInference } from "../../gateway/src/infer/index.ts";
import { decodeFrame, encodeFrame, FrameType, type Frame } from "../../gateway/src/protocol/frame.ts";
import { FakeClock } from "../../gateway/src/core/clock.ts";
import { CMAPSS_CHANNELS, CMAPSS_WIDTH } from "../../gateway/src/infer/features/cmapss.ts";
import { tempModels } from "./helpers.ts";

const clock = new FakeClock();
const dec = (f: Frame) => {
  const raw = encodeFrame(f);
  return { frame: decodeFrame(raw), raw };
};
const data = (seq: number): Frame => ({
  type: FrameType.Data,
  deviceId: 7,
  seq,
  timestampUs: clock.nowUs(),
  flags: 0,
  values: new Float32Array(CMAPSS_WIDTH).fill(1),
});

describe("ingest → inference feed", () => {
  it("behavior: refused frames (store down) are still inferred; late and repeated frames are not fed twice", async () => {
    const sink = new MemorySink();
    const ingest = new Ingest({ sink, clock });
    const inf = await createInference({
      modelsDir: tempModels(),
      ingest,
      publisher: new FakePublisher(),
      site: "s",
      gatewayId: "g",
      clock,
    });
    await inf.start();
    try {
      ingest.handle(
        dec({
          type: FrameType.Hello,
          deviceId: 7,
          bootId: 1,
          firmware: { major: 1, minor: 0, patch: 0 },
          profile: "cmapss-fd001",
          channels: CMAPSS_CHANNELS.map((name) => ({ name, unit: 0 })),
        }),
        "serial",
      );
      await ingest.handle(dec(data(1)), "serial");
      await ingest.handle(dec(data(3)), "serial");
      expect(inf.loop.counters.framesSeen).toBe(2);
      // A late frame (gap fill) is stored but would break the window's time order.
      expect(await ingest.handle(dec(data(2)), "serial")).toMatchObject({ kind: "ack" });
      expect(inf.loop.counters.framesSeen).toBe(2);
      // Disk full: the frame is NACKed (the device keeps it) but the model still sees it.
      sink.failWith = new VigilError("DISK_FULL", "no space");
      expect(await ingest.handle(dec(data(4)), "serial")).toMatchObject({ kind: "nack" });
      expect(inf.loop.counters.framesSeen).toBe(3);
      // When the store is back, the resend is stored but not fed a second time.
      sink.failWith = undefined;
      expect(await ingest.handle(dec(data(4)), "serial")).toMatchObject({ kind: "ack" });
      expect(sink.records.map((r) => r.seq)).toEqual([1, 3, 2, 4]);
      expect(inf.loop.counters.framesSeen).toBe(3);
    } finally {
      await inf.stop();
    }
  });
});
