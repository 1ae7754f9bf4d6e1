/**
 * Files replaced whole or not at all: the data goes to a fresh temporary file in the same folder,
 * is synced, and is renamed over the target; the folder is synced after the rename, which POSIX
 * needs for the new name itself to survive a power cut. A reader sees the old file or the new one,
 * never a part of either, and a failure leaves no temporary file behind.
 */
import { randomBytes } from "node:crypto";
import { closeSync, fchmodSync, fsyncSync, openSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { link, lstat, open, rename, rm, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/** Options of {@link writeFileAtomic}. */
export interface AtomicWriteOptions {
  /**
   * Permission bits of the new file: given at creation, then set exactly (fchmod), so neither the
   * umask nor a folder's default ACL changes them. Default: 0o666 less the umask, as fs.writeFile.
   */
  mode?: number;
  /**
   * Refuse to replace an existing file: the write fails with EEXIST. The file is put in place
   * with link(2), which never replaces, so a file that appears while the data is written is kept;
   * on a file system without hard links (FAT) it falls back to a check before the rename. Default
   * false (an existing file is replaced).
   */
  exclusive?: boolean;
}

/**
 * Writes `data` to `path` atomically and durably (see the module comment). The folder must exist.
 * @throws Node's file-system error (`code` such as EACCES, ENOSPC, EISDIR, EEXIST), with `path` the
 *   target and `syscall` "write" whatever step failed (the original is its `cause`), so
 *   core/errors fileError() says "cannot write PATH: …" rather than naming the temporary file.
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  o: AtomicWriteOptions = {},
): Promise<void> {
  const tmp = tempName(path);
  let tmpExists = false;
  try {
    // "wx": a fresh file, never an existing one or a link planted at the name.
    const fh = await open(tmp, "wx", o.mode ?? 0o666);
    tmpExists = true;
    try {
      if (o.mode !== undefined) await fh.chmod(o.mode);
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    if (o.exclusive) await linkInto(tmp, path);
    else await rename(tmp, path);
    tmpExists = false;
    await syncDir(dirname(path));
  } catch (e) {
    if (tmpExists) await rm(tmp, { force: true }).catch(() => undefined);
    throw asWriteOf(e, path);
  }
}

/**
 * {@link writeFileAtomic} for callers that must stay synchronous (the Mosquitto export runs inside
 * the runtime's registry watch). Without `exclusive`: no such caller.
 */
export function writeFileAtomicSync(
  path: string,
  data: string | Uint8Array,
  o: Omit<AtomicWriteOptions, "exclusive"> = {},
): void {
  const tmp = tempName(path);
  let fd: number | undefined;
  let tmpExists = false;
  try {
    fd = openSync(tmp, "wx", o.mode ?? 0o666);
    tmpExists = true;
    if (o.mode !== undefined) fchmodSync(fd, o.mode);
    writeFileSync(fd, data);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
    tmpExists = false;
    syncDirSync(dirname(path));
  } catch (e) {
    try {
      if (fd !== undefined) closeSync(fd);
      if (tmpExists) rmSync(tmp, { force: true });
    } catch {
      // the first error is the one to report
    }
    throw asWriteOf(e, path);
  }
}

/**
 * Renames `from` to `to` and syncs `to`'s folder, so the new name survives a power cut (a
 * rename alone may be lost with the folder's unsynced metadata).
 */
export async function renameDurable(from: string, to: string): Promise<void> {
  await rename(from, to);
  await syncDir(dirname(to));
}

/** A name in `path`'s folder that no other writer (process or call) picks: pid and 48 random bits. */
function tempName(path: string): string {
  return join(dirname(path), `${basename(path)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
}

/** link(2) then unlink: puts `tmp` at `path` unless something is there (EEXIST). */
async function linkInto(tmp: string, path: string): Promise<void> {
  try {
    await link(tmp, path);
  } catch (e) {
    // No hard links on this file system (Linux says EPERM for FAT): check, then rename.
    if (!["EPERM", "ENOTSUP", "EOPNOTSUPP", "ENOSYS"].some((c) => isErrno(e, c))) throw e;
    const there = await lstat(path).then(
      () => true,
      (x: unknown) => (isErrno(x, "ENOENT") ? false : Promise.reject(x)),
    );
    if (there) throw Object.assign(new Error(`EEXIST: ${path} exists`), { code: "EEXIST", path });
    await rename(tmp, path);
    return;
  }
  await unlink(tmp);
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function syncDirSync(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function isErrno(e: unknown, code: string): boolean {
  return (e as { code?: unknown } | null)?.code === code;
}

/** A file-system error of any step as one writing `path` (see writeFileAtomic's @throws). */
function asWriteOf(e: unknown, path: string): unknown {
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code !== "string" || typeof (e as { path?: unknown }).path !== "string") return e;
  return Object.assign(new Error(`${code}: cannot write ${path}`, { cause: e }), {
    code,
    syscall: "write",
    path,
  });
}
