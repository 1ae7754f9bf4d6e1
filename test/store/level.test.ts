import { describe, expect, it } from "vitest";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LevelFrameStore } from "../../gateway/src/store/level.ts";
import { StoreUnavailableError } from "../../gateway/src/store/errors.ts";
import { silentLogger } from "../../gateway/src/core/log.ts";
import { abstractFrameStoreSuite, record } from "./abstract.ts";

const HUGE = 2 ** 40;

abstractFrameStoreSuite("LevelFrameStore", async (opts) => {
  const dir = mkdtempSync(join(tmpdir(), "vigil-store-"));
  // Free space is injected: the suite is about behaviour, not this machine's disk.
  const make = (): LevelFrameStore =>
    new LevelFrameStore({ ...opts, dir, reserveBytes: 4096, freeBytes: async () => HUGE });
  let store = make();
  await store.open();
  return {
    store,
    async reopen() {
      await store.close();
      store = make();
      await store.open();
      return store;
    },
    async cleanup() {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

describe("LevelFrameStore: disk space", () => {
  it("behavior: below the free-space watermark frames are refused (DISK_FULL) and accepted again when space returns", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-store-"));
    let free = HUGE;
    const s = new LevelFrameStore({
      dir,
      reserveBytes: 4096,
      minFreeBytes: 1 << 20,
      spaceCheckIntervalMs: 60_000,
      freeBytes: async () => free,
    });
    try {
      await s.open();
      expect(statSync(join(dir, "reserve.bin")).size).toBe(4096);
      expect(await s.append(record(1, 1))).toBe("stored");
      free = 1000;
      await s.checkRoom();
      const err = await s.append(record(1, 2)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StoreUnavailableError);
      expect((err as StoreUnavailableError).reason).toBe("DISK_FULL");
      expect(await s.getFrame(1)).toBeDefined(); // reads go on
      free = HUGE;
      await s.checkRoom();
      expect(await s.append(record(1, 2))).toBe("stored");
    } finally {
      await s.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("LevelFrameStore: disk space at the line", () => {
  it("behavior: refusing below minFreeBytes resumes only above minFreeBytes × 1.25, so a disk hovering at the line does not flip the state at every check", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-store-"));
    const min = 1 << 20;
    let free = HUGE;
    const s = new LevelFrameStore({
      dir,
      reserveBytes: 4096,
      minFreeBytes: min,
      spaceCheckIntervalMs: 60_000,
      freeBytes: async () => free,
    });
    try {
      await s.open();
      free = min - 1;
      await s.checkRoom();
      expect(s.stats().state).toBe("low-space");
      // Back above the line, but not by the margin: still refusing.
      for (const f of [min, min + 1, Math.floor(min * 1.25) - 1]) {
        free = f;
        await s.checkRoom();
        expect(s.stats().state).toBe("low-space");
      }
      free = Math.floor(min * 1.25);
      await s.checkRoom();
      expect(s.stats().state).toBe("ok");
      // Accepting: only below the line again is refused.
      free = min;
      await s.checkRoom();
      expect(s.stats().state).toBe("ok");
    } finally {
      await s.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("LevelFrameStore: compaction after pruning", () => {
  it("error: a failed compaction is logged with its code and counted; pruning itself stands", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-store-"));
    const warnings: Array<Record<string, unknown>> = [];
    const logger: typeof silentLogger = {
      ...silentLogger,
      warn: ((o: object) => void warnings.push(o as Record<string, unknown>)) as typeof silentLogger.warn,
      child: () => logger,
    };
    // afterPrune is the hook prune() calls once pruned keys are deleted.
    class Probe extends LevelFrameStore {
      compactAfterPrune(through: number): Promise<void> {
        return this.afterPrune(through);
      }
    }
    const s = new Probe({ dir, reserveBytes: 0, freeBytes: async () => HUGE, logger });
    await s.open();
    try {
      const kv = (s as unknown as { levelKv: { compact: () => Promise<void> } }).levelKv;
      kv.compact = () =>
        Promise.reject(Object.assign(new Error("IO error: compaction failed"), { code: "LEVEL_IO_ERROR" }));
      await s.compactAfterPrune(10);
      expect(s.compactionErrors).toBe(2); // the log and the leaf ranges
      expect(warnings.map((w) => w.code)).toEqual(["LEVEL_IO_ERROR", "LEVEL_IO_ERROR"]);
    } finally {
      await s.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
