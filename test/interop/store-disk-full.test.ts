/**
 * The store on a real full filesystem: a 6 MiB tmpfs mounted by the test (needs root, as in CI;
 * interop, not `npm test`, because a developer's `npm test` runs unprivileged).
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import { LevelFrameStore } from "../../gateway/src/store/level.ts";
import { StoreUnavailableError } from "../../gateway/src/store/errors.ts";
import type { FrameRecord } from "../../gateway/src/store/types.ts";
import { encodeFrame, FrameType } from "../../gateway/src/protocol/frame.ts";

function bigRecord(deviceId: number, seq: number): FrameRecord {
  const ts = 1_764_000_000_000_000 + seq;
  const raw = encodeFrame({
    type: FrameType.Data,
    deviceId,
    seq,
    timestampUs: ts,
    flags: 0,
    values: new Float32Array(32).fill(seq % 1000),
  });
  return { deviceId, seq, receivedUs: ts, timestampUs: ts, raw };
}

describe("LevelFrameStore on a full tmpfs", () => {
  it("behavior: a real full filesystem (tmpfs): typed DISK_FULL, reserve released, resumes by itself, acknowledged frames all kept", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-tmpfs-"));
    try {
      execFileSync("mount", ["-t", "tmpfs", "-o", "size=6m", "tmpfs", dir], { stdio: "pipe" });
    } catch (e) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(
        `this test needs to mount a small tmpfs (run as root, as CI does): mount -t tmpfs -o size=6m tmpfs ${dir} failed: ${String((e as Error).message).split("\n")[0]}`,
      );
    }
    let s: LevelFrameStore | undefined;
    try {
      const opts = {
        dir,
        reserveBytes: 512 << 10,
        minFreeBytes: 0,
        recoverIntervalMs: 50,
        spaceCheckIntervalMs: 60_000,
      };
      s = new LevelFrameStore(opts);
      await s.open();
      expect(existsSync(join(dir, "reserve.bin"))).toBe(true);
      const acked: number[] = [];
      let err: unknown;
      let seq = 0;
      while (!err && seq < 200_000) {
        const batch = Array.from({ length: 200 }, () => ++seq);
        const res = await Promise.allSettled(batch.map((q) => s!.append(bigRecord(1, q))));
        res.forEach((r, i) => {
          if (r.status === "fulfilled") acked.push(batch[i]!);
          else err ??= r.reason;
        });
      }
      expect(err).toBeInstanceOf(StoreUnavailableError);
      expect((err as StoreUnavailableError).reason).toBe("DISK_FULL");
      expect((err as Error).message).not.toMatch(/\//); // no paths in the message; they stay in `cause`
      expect(acked.length).toBeGreaterThan(1000);
      await vi.waitFor(() => expect(existsSync(join(dir, "reserve.bin"))).toBe(false), 2000);
      const refused = await s.append(bigRecord(1, seq + 1)).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(StoreUnavailableError);
      // Space returns: the store reopens, recreates its reserve and accepts frames again by itself.
      execFileSync("mount", ["-o", "remount,size=64m", dir]);
      await vi.waitFor(() => expect(s!.stats().state).toBe("ok"), 10_000);
      expect(existsSync(join(dir, "reserve.bin"))).toBe(true);
      const next = acked[acked.length - 1]! + 1;
      expect(await s.append(bigRecord(1, next))).toBe("stored");
      acked.push(next);
      await s.close();
      s = new LevelFrameStore(opts);
      await s.open();
      expect(s.lastSeq(1)).toBeGreaterThanOrEqual(next);
      for (const q of acked) expect(await s.has(1, q)).toBe(true);
    } finally {
      await s?.close();
      execFileSync("umount", [dir]);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
