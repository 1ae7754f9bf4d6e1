/**
 * `mkdir -p` that cannot spin. Node's own recursive mkdir loops for ever when the file system
 * answers ENOENT for a folder whose parent exists (procfs and sysfs do: `mkdir /proc/x`), which
 * made `vigil start --data-dir /proc/x` hang at 100 % CPU instead of failing. Here an ENOENT under
 * an existing parent is thrown as it is (the usual ErrnoException: code, syscall, path).
 */
import { mkdirSync, statSync } from "node:fs";
import { mkdir, stat } from "node:fs/promises";
import { dirname } from "node:path";

const code = (e: unknown): string | undefined => (e as NodeJS.ErrnoException | null)?.code;

/** Creates `path` and any missing parents (each with `mode`, default 0o777 before the umask). */
export async function makeDir(path: string, mode?: number): Promise<void> {
  try {
    await mkdir(path, { mode });
    return;
  } catch (e) {
    if (code(e) === "EEXIST" && (await isDir(path))) return;
    if (code(e) !== "ENOENT" || (await exists(dirname(path))) || dirname(path) === path) throw e;
  }
  await makeDir(dirname(path), mode);
  try {
    await mkdir(path, { mode });
  } catch (e) {
    // Made meanwhile by another caller: what was asked for exists.
    if (!(code(e) === "EEXIST" && (await isDir(path)))) throw e;
  }
}

/** {@link makeDir}, synchronously. */
export function makeDirSync(path: string, mode?: number): void {
  try {
    mkdirSync(path, { mode });
    return;
  } catch (e) {
    if (code(e) === "EEXIST" && isDirSync(path)) return;
    if (code(e) !== "ENOENT" || existsSync(dirname(path)) || dirname(path) === path) throw e;
  }
  makeDirSync(dirname(path), mode);
  try {
    mkdirSync(path, { mode });
  } catch (e) {
    if (!(code(e) === "EEXIST" && isDirSync(path))) throw e;
  }
}

/**
 * Whether `p` is a folder (following links). A name that is taken by anything else, a dangling
 * link included, is not: mkdir's own EEXIST is then the error to report.
 */
async function isDir(p: string): Promise<boolean> {
  return stat(p).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

function isDirSync(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** Whether `p` exists; only ENOENT means no (another error: it is there, and mkdir's error stands). */
async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    (e: unknown) => code(e) !== "ENOENT",
  );
}

function existsSync(p: string): boolean {
  try {
    statSync(p);
    return true;
  } catch (e) {
    return code(e) !== "ENOENT";
  }
}
