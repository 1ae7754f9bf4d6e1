/**
 * A store that finds damaged data while the gateway runs makes the gateway fatal: Runtime.fatal
 * settles (vigil start then stops and exits 1, cli/start.ts) and no frame is acknowledged over it.
 */
import { describe, expect, it } from "vitest";
import { resolveConfig } from "../../gateway/src/config/config.ts";
import { FakeClock } from "../../gateway/src/core/clock.ts";
import { FrameType, type Frame } from "../../gateway/src/protocol/frame.ts";
import { Runtime } from "../../gateway/src/runtime.ts";
import { MemoryKv } from "../../gateway/src/store/kv.ts";
import { MemoryFrameStore } from "../../gateway/src/store/memory.ts";
import { StoreUnavailableError } from "../../gateway/src/store/errors.ts";
import { silentLogger } from "../../gateway/src/core/log.ts";
import { decoded as dec } from "../helpers/frames.ts";

const clock = new FakeClock();
const data = (seq: number): Frame => ({
  type: FrameType.Data,
  deviceId: 9,
  seq,
  timestampUs: clock.nowUs(),
  flags: 0,
  values: new Float32Array([1, 2]),
});

describe("Runtime: a store that turns corrupt while running", () => {
  it("behavior: fatal settles with the store's CORRUPTION error, and later frames are refused, never ACKed", async () => {
    const kv = new MemoryKv();
    const store = new MemoryFrameStore({}, kv);
    const rt = new Runtime({
      config: resolveConfig({
        http: { port: 0 }, // never the default 9479: another gateway may hold it
        mqtt: { embedded: { enabled: true, host: "127.0.0.1", port: 0 } },
        models: { enabled: false },
        attest: { enabled: false },
        log: { statsIntervalMs: 0 },
      }),
      store,
      clock,
    });
    await rt.start();
    try {
      expect(await rt.ingest.handle(dec(data(0)), "serial")).toMatchObject({ kind: "ack" });
      let fatal: StoreUnavailableError | undefined;
      void rt.fatal.then((e) => (fatal = e as StoreUnavailableError));
      kv.faults.corruptReads = true;
      await expect(store.getFrame(1)).rejects.toMatchObject({ reason: "CORRUPTION" });
      await rt.fatal;
      expect(fatal).toMatchObject({ code: "STORE_UNAVAILABLE", reason: "CORRUPTION" });
      expect(store.stats().state).toBe("corrupt");
      const reply = await rt.ingest.handle(dec(data(1)), "serial");
      expect(reply).toMatchObject({ kind: "nack" });
    } finally {
      await rt.stop();
    }
  });
});

describe("Runtime: retention pruning", () => {
  it("error: a failed pass is logged with its code and counted, never thrown; the next pass runs again", async () => {
    const store = new MemoryFrameStore();
    const lines: Array<Record<string, unknown>> = [];
    const log: typeof silentLogger = {
      ...silentLogger,
      warn: ((o: object) => void lines.push(o as Record<string, unknown>)) as typeof silentLogger.warn,
      child: () => log,
    };
    const rt = new Runtime({
      config: resolveConfig({
        http: { port: 0 }, // never the default 9479: another gateway may hold it
        mqtt: { embedded: { enabled: true, host: "127.0.0.1", port: 0 } },
        models: { enabled: false },
        attest: { enabled: false },
        log: { statsIntervalMs: 0 },
      }),
      store,
      log,
    });
    await rt.start();
    try {
      let calls = 0;
      store.prune = () => {
        calls++;
        return Promise.reject(new StoreUnavailableError("IO_ERROR", "pruning failed: storage I/O error"));
      };
      await rt.prune();
      await rt.prune();
      expect(calls).toBe(2);
      expect((rt.statsFields().store as { pruneFailures: number }).pruneFailures).toBe(2);
      expect(lines.filter((l) => l.code === "STORE_UNAVAILABLE")).toHaveLength(2);
    } finally {
      await rt.stop();
    }
  });
});
