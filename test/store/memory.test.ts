import { describe, expect, it, vi } from "vitest";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { MemoryFrameStore } from "../../gateway/src/store/memory.ts";
import { MemoryKv } from "../../gateway/src/store/kv.ts";
import { StoreUnavailableError } from "../../gateway/src/store/errors.ts";
import type { Timers } from "../../gateway/src/core/timers.ts";
import { abstractFrameStoreSuite, record } from "./abstract.ts";
import { P_LOG, u64Key } from "../../gateway/src/store/codec.ts";

abstractFrameStoreSuite("MemoryFrameStore", async (opts) => {
  const kv = new MemoryKv();
  let store = new MemoryFrameStore(opts, kv);
  await store.open();
  return {
    store,
    async reopen() {
      await store.close();
      store = new MemoryFrameStore(opts, kv);
      await store.open();
      return store;
    },
    async cleanup() {
      await store.close();
    },
  };
});

/** Manual timers: tests fire them explicitly (deterministic recovery). */
function manualTimers(): Timers & { fire(): void; count(): number } {
  let jobs: { fn: () => void; ms: number; id: number }[] = [];
  let id = 0;
  return {
    setTimeout(fn, ms) {
      jobs.push({ fn, ms, id: ++id });
      return id;
    },
    clearTimeout(h) {
      jobs = jobs.filter((j) => j.id !== h);
    },
    fire() {
      const j = jobs;
      jobs = [];
      for (const x of j) x.fn();
    },
    count: () => jobs.length,
  };
}

describe("MemoryFrameStore: disk-full handling (simulated)", () => {
  it("error: a failed write rejects its frames with DISK_FULL, refuses more, and recovers by itself", async () => {
    const timers = manualTimers();
    const kv = new MemoryKv();
    const s = new MemoryFrameStore(
      { timers, groupCommit: { flushIntervalMs: 0, maxBatchRecords: 2 }, recoverIntervalMs: 500 },
      kv,
    );
    await s.open();
    const first = Promise.all([s.append(record(1, 2)), s.append(record(1, 3))]);
    timers.fire();
    await first;
    kv.faults.diskFull = true;
    const err = await Promise.all([s.append(record(1, 4)), s.append(record(1, 5))]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreUnavailableError);
    expect((err as StoreUnavailableError).reason).toBe("DISK_FULL");
    expect(String((err as Error).message)).not.toMatch(/\/mem\//); // OS detail stays in `cause`
    expect(s.stats().state).toBe("unavailable");
    const again = await s.append(record(1, 4)).catch((e: unknown) => e);
    expect((again as StoreUnavailableError).reason).toBe("DISK_FULL");
    // Still full: a recovery attempt fails and is rescheduled.
    timers.fire();
    await vi.waitFor(() => expect(timers.count()).toBe(1)); // the failed attempt rescheduled itself
    expect(s.stats().state).toBe("unavailable");
    kv.faults.diskFull = false;
    timers.fire();
    await vi.waitFor(() => expect(s.stats().state).toBe("ok"));
    // The refused frames are accepted on resend; nothing was lost or duplicated.
    timers.fire();
    const outs = await Promise.all([s.append(record(1, 3)), s.append(record(1, 4)), s.append(record(1, 5))]);
    expect(outs).toEqual(["duplicate", "stored", "stored"]);
    expect(s.lastSeq(1)).toBe(5);
    timers.fire();
    await s.close();
  });
});

describe("MemoryFrameStore: damage found while recovering", () => {
  it("error: a stored value that no longer decodes, found by a recovery's checks, makes the store corrupt (not retried as a passing I/O fault)", async () => {
    const timers = manualTimers();
    const kv = new MemoryKv();
    const s = new MemoryFrameStore(
      { timers, groupCommit: { flushIntervalMs: 0, maxBatchRecords: 1 }, recoverIntervalMs: 500 },
      kv,
    );
    await s.open();
    for (let i = 0; i < 4; i++) {
      const p = s.append(record(1, i));
      timers.fire();
      await p;
    }
    kv.faults.diskFull = true;
    const failed = s.append(record(1, 4)).catch((e: unknown) => e);
    timers.fire();
    expect(await failed).toBeInstanceOf(StoreUnavailableError);
    expect(s.stats().state).toBe("unavailable");
    // Meanwhile arrival index 2's value is damaged under the store (shorter than a record).
    (kv as unknown as { map: Map<string, Buffer> }).map.set(
      u64Key(P_LOG, 2).toString("latin1"),
      Buffer.alloc(6),
    );
    kv.faults.diskFull = false;
    timers.fire();
    await vi.waitFor(() => expect(s.stats().state).toBe("corrupt"));
    expect(timers.count()).toBe(0); // no further recovery attempt is scheduled
    const refused = await s.append(record(1, 4)).catch((e: unknown) => e);
    expect((refused as StoreUnavailableError).reason).toBe("CORRUPTION");
    expect((refused as Error).message).toMatch(/frame record 2 is damaged/);
    await s.close();
  });
});

describe("MemoryFrameStore: process lifetime", () => {
  it("behavior: records waiting for the flush timer keep the process alive (the timer is not unref'd)", () => {
    const core = fileURLToPath(new URL("../../gateway/src/store/memory.ts", import.meta.url));
    const script = `
      const { MemoryFrameStore } = await import(${JSON.stringify(core)});
      const s = new MemoryFrameStore({ groupCommit: { flushIntervalMs: 200, maxBatchRecords: 100 } });
      await s.open();
      const raw = Buffer.alloc(30);
      console.log(await s.append({ deviceId: 1, seq: 1, receivedUs: 1, timestampUs: 1, raw }));
      await s.close();`;
    const out = execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      encoding: "utf8",
    });
    expect(out.trim()).toBe("stored");
  });
});
