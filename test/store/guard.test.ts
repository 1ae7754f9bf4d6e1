/**
 * The free-space guard's own failures (a reserve file that cannot be recreated, a free-space probe
 * that throws) are logged with their code and counted (`stats().guardErrors`), never swallowed
 * and never fatal: the store stays in its safe state and the next check tries again.
 */
import { describe, expect, it, vi } from "vitest";
import { ManualTimers } from "../../gateway/src/core/timers.ts";
import type { StoreGuard } from "../../gateway/src/store/recovery.ts";
import { MemoryFrameStore } from "../../gateway/src/store/memory.ts";
import { MemoryKv } from "../../gateway/src/store/kv.ts";
import { silentLogger } from "../../gateway/src/core/log.ts";

describe("store guard failures", () => {
  it("error: restoring the reserve fails — logged with its code, counted, the store stays refusing until it succeeds", async () => {
    let room = false;
    let restoreFails = true;
    const guard: StoreGuard = {
      hasRoom: () => Promise.resolve(room),
      releaseReserve: () => Promise.resolve(),
      restoreReserve: () =>
        restoreFails
          ? Promise.reject(
              Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" }),
            )
          : Promise.resolve(),
      checkIntervalMs: 1000,
    };
    const warnings: Array<Record<string, unknown>> = [];
    const logger: typeof silentLogger = {
      ...silentLogger,
      warn: ((o: object) => void warnings.push(o as Record<string, unknown>)) as typeof silentLogger.warn,
      child: () => logger,
    };
    const store = new MemoryFrameStore({ guard, timers: new ManualTimers(), logger });
    await store.open();
    try {
      await store.checkRoom();
      expect(store.stats().state).toBe("low-space");
      room = true;
      await store.checkRoom(); // room is back, but the reserve cannot be recreated
      expect(store.stats().state).toBe("low-space");
      expect(store.stats().guardErrors).toBe(1);
      expect(warnings.at(-1)).toMatchObject({ code: "ENOSPC", failures: 1 });
      restoreFails = false;
      await store.checkRoom();
      expect(store.stats().state).toBe("ok");
      expect(store.stats().guardErrors).toBe(1);
    } finally {
      await store.close();
    }
  });

  it("error: a reopen that failed for lack of space is not tried again until the guard sees room (each failed LevelDB open leaves an empty log file behind)", async () => {
    let room = true;
    const guard: StoreGuard = {
      hasRoom: () => Promise.resolve(room),
      releaseReserve: () => Promise.resolve(),
      restoreReserve: () => Promise.resolve(),
      checkIntervalMs: 1000,
    };
    const kv = new MemoryKv();
    const timers = new ManualTimers();
    const store = new MemoryFrameStore(
      { guard, timers, logger: silentLogger, groupCommit: { flushIntervalMs: 0, maxBatchRecords: 1 } },
      kv,
    );
    await store.open();
    try {
      room = false;
      kv.faults.diskFull = true;
      const raw = Buffer.alloc(30);
      await expect(store.append({ deviceId: 1, seq: 1, receivedUs: 1, timestampUs: 1, raw })).rejects.toThrow(
        /disk full/,
      );
      expect(store.stats().state).toBe("unavailable");
      kv.faults.failOpen = true; // LevelDB cannot write its MANIFEST: the open fails with ENOSPC
      const opens = vi.spyOn(kv, "open");
      for (let i = 0; i < 5; i++) expect(await store.recover()).toBe(false);
      expect(opens).toHaveBeenCalledTimes(1);
      expect(store.stats().lastError).toMatch(/not enough free disk space yet to reopen the store/);
      // Space comes back: the next attempt reopens, and the store accepts again.
      room = true;
      kv.faults.failOpen = false;
      kv.faults.diskFull = false;
      expect(await store.recover()).toBe(true);
      expect(opens).toHaveBeenCalledTimes(2);
      expect(store.stats().state).toBe("ok");
    } finally {
      await store.close();
    }
  });
});
