/**
 * The free-space guard's own failures (a reserve file that cannot be recreated, a free-space probe
 * that throws) are logged with their code and counted (`stats().guardErrors`), never swallowed
 * and never fatal: the store stays in its safe state and the next check tries again.
 */
import { describe, expect, it } from "vitest";
import { ManualTimers } from "../../gateway/src/core/timers.ts";
import type { StoreGuard } from "../../gateway/src/store/recovery.ts";
import { MemoryFrameStore } from "../../gateway/src/store/memory.ts";
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
});
