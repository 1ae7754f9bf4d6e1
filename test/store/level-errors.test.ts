// LevelDB's errors translated at the store's boundary: a read-only file system and a permission
// problem are named as such, not as "locked by another process" (LevelDB's message names the LOCK
// file's path, which the old rule took for a lock held; storage audit D3: an operator was sent
// looking for a second gateway that did not exist). A real lock still reads as one.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ClassicLevel } from "classic-level";
import { describe, expect, it } from "vitest";
import { StoreUnavailableError, translateLevelError } from "../../gateway/src/store/errors.ts";
import { LevelFrameStore } from "../../gateway/src/store/level.ts";

/** classic-level's failed open: LEVEL_DATABASE_NOT_OPEN caused by the OS-level error (as seen here). */
const failedOpen = (causeCode: string, message: string): Error =>
  Object.assign(new Error("Database failed to open"), {
    code: "LEVEL_DATABASE_NOT_OPEN",
    cause: Object.assign(new Error(message), { code: causeCode }),
  });

describe("store: LevelDB errors at the boundary", () => {
  it("error: a read-only file system is named, with the path and the fix, not as a lock", () => {
    const e = translateLevelError(
      failedOpen("LEVEL_IO_ERROR", "IO error: /var/lib/vigil/store/db/LOCK: Read-only file system"),
      "opening the store",
    );
    expect(e).toBeInstanceOf(StoreUnavailableError);
    expect(e.reason).toBe("IO_ERROR");
    expect(e.message).toBe(
      "opening the store failed: the store's file system is read-only (/var/lib/vigil/store/db/LOCK); remount it read-write, or give a dataDir on a writable file system",
    );
  });

  it("error: a permission problem is named, with the path and the fix, not as a lock", () => {
    const e = translateLevelError(
      failedOpen("LEVEL_IO_ERROR", "IO error: /var/lib/vigil/store/db/LOCK: Permission denied"),
      "recovering the store",
    );
    expect(e.message).toBe(
      "recovering the store failed: permission denied on /var/lib/vigil/store/db/LOCK; run the command as the user that owns the store's files (the Pi service runs as vigil: sudo -u vigil vigil …), or fix their permissions",
    );
    expect(e.message).not.toMatch(/locked/);
  });

  it("error: a store another process holds (a real LevelDB lock) is still named as locked", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-lock-"));
    const holder = new ClassicLevel(join(dir, "db"), { createIfMissing: true });
    await holder.open();
    try {
      const store = new LevelFrameStore({
        dir,
        reserveBytes: 0,
        minFreeBytes: 0,
        freeBytes: async () => 2 ** 40,
      });
      const err = await store.open().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(StoreUnavailableError);
      expect((err as Error).message).toMatch(
        /the store is locked by another process \(is the gateway running\?\)/,
      );
    } finally {
      await holder.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
