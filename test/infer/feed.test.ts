/**
 * How ingest feeds inference: frames the store refused still reach the models (alerts keep
 * flowing while the disk is full), and each device is fed in increasing sequence only.
 */
import { describe, expect, it } from "vitest";
import { resolveConfig } from "../../gateway/src/config/config.ts";
import { Runtime } from "../../gateway/src/runtime.ts";
import { MemoryKv } from "../../gateway/src/store/kv.ts";
import { MemoryFrameStore } from "../../gateway/src/store/memory.ts";
import { FrameType, type Frame } from "../../gateway/src/protocol/frame.ts";
import { FakeClock } from "../../gateway/src/core/clock.ts";
import { CMAPSS_CHANNELS, CMAPSS_WIDTH } from "../../gateway/src/infer/features/cmapss.ts";
import { tempModels } from "./helpers.ts";
import { decoded as dec } from "../helpers/frames.ts";

const clock = new FakeClock();
const data = (seq: number): Frame => ({
  type: FrameType.Data,
  deviceId: 7,
  seq,
  timestampUs: clock.nowUs(),
  flags: 0,
  values: new Float32Array(CMAPSS_WIDTH).fill(1),
});

describe("ingest → inference feed (runtime wiring)", () => {
  it("behavior: refused frames (store down) are still inferred; late and repeated frames are not fed twice", async () => {
    const kv = new MemoryKv();
    const store = new MemoryFrameStore({ recoverIntervalMs: 60_000 }, kv);
    const rt = new Runtime({
      config: resolveConfig({
        dataDir: "/nonexistent-vigil-test",
        mqtt: { embedded: { enabled: false } },
        http: { enabled: false },
        attest: { enabled: false },
        models: { dir: tempModels() },
        log: { statsIntervalMs: 0 },
      }),
      store,
      clock,
    });
    await rt.start();
    const ingest = rt.ingest;
    const inf = { loop: rt.loop! };
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
      kv.faults.diskFull = true;
      expect(await ingest.handle(dec(data(4)), "serial")).toMatchObject({ kind: "nack" });
      expect(inf.loop.counters.framesSeen).toBe(3);
      // When the store is back, the resend is stored but not fed a second time.
      kv.faults.diskFull = false;
      expect(await store.recover()).toBe(true);
      expect(await ingest.handle(dec(data(4)), "serial")).toMatchObject({ kind: "ack" });
      const seqs: number[] = [];
      for await (const f of store.framesByIndex(1, store.stats().lastIndex)) seqs.push(f.seq);
      expect(seqs).toEqual([1, 3, 2, 4]);
      expect(inf.loop.counters.framesSeen).toBe(3);
    } finally {
      await rt.stop();
    }
  });
});
