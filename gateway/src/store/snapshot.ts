/**
 * A point-in-time copy of a store that another process (the running gateway) holds open, so
 * `vigil receipt` can read while production runs: LevelDB allows one process per database.
 *
 * LevelDB never modifies a table file (`*.ldb`, `*.sst`) after writing it, so those are hard-linked
 * (copied when linking is impossible); the append-only files (`*.log`, `MANIFEST-*`, `CURRENT`) are
 * copied. A copy taken while they are appended to is what a crash would leave, and LevelDB
 * recovers it (a torn record at the end of a log is ignored). The copy is consistent as long as no
 * flush or compaction created or deleted a file meanwhile: the folder is listed before and after,
 * and the snapshot is retaken until both listings agree. The watermark is copied first, so it never
 * claims more than the copied database holds.
 */
import { copyFile, link, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { VigilError } from "../core/errors.ts";
import { makeDir } from "../core/make-dir.ts";

export interface StoreSnapshot {
  /** Store folder of the snapshot (open it with LevelFrameStore, `create: false`). */
  dir: string;
  /** Deletes the snapshot. */
  remove(): Promise<void>;
}

const IMMUTABLE = /\.(ldb|sst)$/;

async function place(src: string, dst: string, immutable: boolean): Promise<void> {
  if (immutable)
    try {
      return await link(src, dst);
    } catch {
      // EXDEV (snapshot on another file system) or EPERM: fall back to a copy.
    }
  await copyFile(src, dst);
}

/**
 * Snapshots the store in `storeDir` (the folder holding `db/` and `watermark`) into a new folder
 * beside it (same file system, so table files are linked), or in the OS temp folder when the
 * store's parent is not writable. Retries up to `attempts` times while LevelDB rewrites files.
 */
export async function snapshotStore(storeDir: string, attempts = 10): Promise<StoreSnapshot> {
  const base = await mkdtemp(join(dirname(storeDir), ".vigil-snapshot-")).catch(() =>
    mkdtemp(join(tmpdir(), "vigil-snapshot-")),
  );
  const remove = () => rm(base, { recursive: true, force: true });
  try {
    for (let i = 0; i < attempts; i++) {
      const out = join(base, `s${i}`);
      const db = join(out, "db");
      await makeDir(db, 0o700);
      try {
        await copyFile(join(storeDir, "watermark"), join(out, "watermark")).catch(
          (e: NodeJS.ErrnoException) => {
            if (e.code !== "ENOENT") throw e;
          },
        );
        const before = (await readdir(join(storeDir, "db"))).filter((n) => n !== "LOCK").sort();
        for (const n of before) await place(join(storeDir, "db", n), join(db, n), IMMUTABLE.test(n));
        const after = (await readdir(join(storeDir, "db"))).filter((n) => n !== "LOCK").sort();
        if (before.join("/") === after.join("/")) return { dir: out, remove };
      } catch (e) {
        // A file deleted by a compaction between listing and copying: take the snapshot again.
        if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
      }
      await rm(out, { recursive: true, force: true });
    }
    throw new VigilError(
      "STORE_SNAPSHOT",
      `the store in ${storeDir} kept changing during ${attempts} snapshot attempts; try again, or stop the gateway`,
    );
  } catch (e) {
    await remove();
    throw e;
  }
}
