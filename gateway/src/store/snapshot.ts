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
 *
 * A snapshot folder is named for its owner, `.vigil-snapshot-<pid>@<host>-XXXXXX` (in the OS temp
 * folder `vigil-snapshot-…`): an export cut short (SIGKILL, a crash) leaves it behind, its hard
 * links pinning table files compaction has deleted since, so the next snapshot and the gateway's
 * store open ({@link removeStaleSnapshots}) remove those whose owner no longer runs on this host.
 */
import { readdirSync, rmSync } from "node:fs";
import { copyFile, link, mkdtemp, readdir, rm } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
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

/** Beside the store, and in the OS temp folder when the store's parent is not writable. */
const BESIDE = ".vigil-snapshot-";
const IN_TMP = "vigil-snapshot-";

/** `<pid>@<host>-` + mkdtemp's 6 characters. Names without an owner (earlier versions) never match. */
const OWNED = /^\.?vigil-snapshot-(\d+)@(.+)-[A-Za-z0-9]{6}$/;

/** The folders that may hold snapshots of the store in `storeDir`, with their name prefix. */
function places(storeDir: string): Array<[string, string]> {
  return [
    [dirname(storeDir), BESIDE],
    [tmpdir(), IN_TMP],
  ];
}

/** Whether process `pid` exists (EPERM: it does, another user's). */
function running(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== "ESRCH";
  }
}

/** The folders in `parent` (of `prefix`) that snapshots on this host made, by owner PID. */
function ownedIn(parent: string, prefix: string, names: string[]): Array<[string, number]> {
  const host = hostname();
  const out: Array<[string, number]> = [];
  for (const n of names) {
    const m = n.startsWith(prefix) ? OWNED.exec(n) : null;
    if (m && m[2] === host) out.push([join(parent, n), Number(m[1])]);
  }
  return out;
}

/**
 * Removes the snapshot folders beside `storeDir` (and in the OS temp folder) that an export cut
 * short left: those whose owner process no longer runs on this host (a PID reused since keeps its
 * folder until that process ends). Never throws; resolves with the folders removed (one that
 * cannot be removed is left for the next sweep).
 */
export async function removeStaleSnapshots(storeDir: string): Promise<string[]> {
  const removed: string[] = [];
  for (const [parent, prefix] of places(storeDir)) {
    const names = await readdir(parent).catch(() => [] as string[]); // gone or unreadable: none of ours
    for (const [dir, pid] of ownedIn(parent, prefix, names))
      if (!running(pid))
        await rm(dir, { recursive: true, force: true }).then(
          () => removed.push(dir),
          () => undefined,
        );
  }
  return removed;
}

/**
 * Removes, synchronously, every snapshot folder of `storeDir` this process owns, one being taken
 * included: for a signal handler, which cannot wait for promises before the process exits.
 */
export function removeOwnSnapshotsSync(storeDir: string): void {
  for (const [parent, prefix] of places(storeDir)) {
    let names: string[];
    try {
      names = readdirSync(parent);
    } catch {
      continue;
    }
    for (const [dir, pid] of ownedIn(parent, prefix, names))
      if (pid === process.pid)
        try {
          rmSync(dir, { recursive: true, force: true });
        } catch {
          // left for the next snapshot's sweep
        }
  }
}

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
 * store's parent is not writable, after removing the stale snapshots there
 * ({@link removeStaleSnapshots}). Retries up to `attempts` times while LevelDB rewrites files.
 */
export async function snapshotStore(storeDir: string, attempts = 10): Promise<StoreSnapshot> {
  await removeStaleSnapshots(storeDir);
  const owner = `${process.pid}@${hostname()}-`;
  const base = await mkdtemp(join(dirname(storeDir), BESIDE + owner)).catch(() =>
    mkdtemp(join(tmpdir(), IN_TMP + owner)),
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
