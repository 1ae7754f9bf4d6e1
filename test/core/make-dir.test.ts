// makeDir / makeDirSync: `mkdir -p` without Node's endless loop on a file system that answers
// ENOENT under an existing parent (procfs), and with the usual errors otherwise.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { makeDir, makeDirSync } from "../../gateway/src/core/make-dir.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const scratch = (): string => {
  const d = mkdtempSync(join(tmpdir(), "vigil-make-dir-"));
  dirs.push(d);
  return d;
};

describe("makeDir", () => {
  it("behavior: creates missing parents with the mode, and accepts a folder that exists", async () => {
    const d = scratch();
    await makeDir(join(d, "a", "b", "c"), 0o700);
    makeDirSync(join(d, "x", "y"), 0o700);
    for (const p of [join(d, "a"), join(d, "a", "b", "c"), join(d, "x", "y")])
      expect(statSync(p).mode & 0o777).toBe(0o700);
    await makeDir(join(d, "a", "b"));
    makeDirSync(join(d, "x"));
  });

  it("error: a file in the way is EEXIST; a folder that cannot be made under an existing parent is ENOENT at once (Node's recursive mkdir spins for ever on /proc)", async () => {
    const d = scratch();
    writeFileSync(join(d, "f"), "");
    await expect(makeDir(join(d, "f"))).rejects.toMatchObject({ code: "EEXIST" });
    await expect(makeDir(join(d, "f", "g"))).rejects.toMatchObject({ code: "ENOTDIR" });
    // A dangling link in the way: mkdir's EEXIST, not the stat that follows the link.
    symlinkSync(join(d, "nowhere"), join(d, "link"));
    await expect(makeDir(join(d, "link"))).rejects.toMatchObject({ code: "EEXIST", syscall: "mkdir" });
    expect(() => makeDirSync(join(d, "link"))).toThrow(
      expect.objectContaining({ code: "EEXIST", syscall: "mkdir" }),
    );
    await expect(makeDir("/proc/vigil-make-dir-test/x")).rejects.toMatchObject({
      code: "ENOENT",
      syscall: "mkdir",
      path: "/proc/vigil-make-dir-test",
    });
    expect(() => makeDirSync("/proc/vigil-make-dir-test")).toThrow(
      expect.objectContaining({ code: "ENOENT", syscall: "mkdir" }),
    );
  });

  it("error: vigil start --data-dir under /proc exits 1 with one line naming the folder (it hung at 100 % CPU)", async () => {
    const r = await promisify(execFile)(
      process.execPath,
      ["bin/vigil.js", "start", "--data-dir", "/proc/vigil-x"],
      {
        timeout: 60_000,
        killSignal: "SIGKILL", // the old hang ignored SIGTERM
      },
    ).then(
      () => ({ code: 0, stderr: "" }),
      (e: { code: number; stderr: string }) => e,
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      "vigil start: cannot mkdir /proc/vigil-x: no such file or folder (ENOENT); check the path (the folder it names must exist).\n",
    );
  }, 90_000);
});
