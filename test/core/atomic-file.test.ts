// writeFileAtomic: whole files or nothing, with their mode, and never a temporary file left behind.
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import { renameDurable, writeFileAtomic, writeFileAtomicSync } from "../../gateway/src/core/atomic-file.ts";
import { fileError } from "../../gateway/src/core/errors.ts";

// link(2) refused as on a file system without hard links (FAT), when a test asks for it.
const fs = vi.hoisted(() => ({ linkError: undefined as string | undefined }));
vi.mock("node:fs/promises", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs/promises")>();
  return {
    ...real,
    link: (from: string, to: string) =>
      fs.linkError
        ? Promise.reject(Object.assign(new Error(fs.linkError), { code: fs.linkError, path: from, dest: to }))
        : real.link(from, to),
  };
});

const fresh = () => mkdtempSync(join(tmpdir(), "vigil-atomic-"));
const failure = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: unknown) => e,
  );
const thrown = (f: () => void): unknown => {
  try {
    f();
  } catch (e) {
    return e;
  }
  return undefined;
};

describe("writeFileAtomic", () => {
  it("behavior: writes the content with the given mode exactly, or the umask's default; replaces an existing file; leaves only the file", async () => {
    const dir = fresh();
    const f = join(dir, "a.json");
    await writeFileAtomic(f, "one\n", { mode: 0o640 });
    expect(readFileSync(f, "utf8")).toBe("one\n");
    expect(statSync(f).mode & 0o777).toBe(0o640);
    await writeFileAtomic(f, new TextEncoder().encode("two\n"), { mode: 0o600 });
    expect(readFileSync(f, "utf8")).toBe("two\n");
    expect(statSync(f).mode & 0o777).toBe(0o600);
    const g = join(dir, "b.json");
    await writeFileAtomic(g, "");
    writeFileSync(join(dir, "c.json"), "");
    expect(statSync(g).mode & 0o777).toBe(statSync(join(dir, "c.json")).mode & 0o777);
    expect(readdirSync(dir).sort()).toEqual(["a.json", "b.json", "c.json"]);
  });

  it("behavior: exclusive refuses an existing file (EEXIST, file untouched) and writes a new one", async () => {
    const dir = fresh();
    const f = join(dir, "deployment.json");
    writeFileSync(f, "old");
    const e = await failure(writeFileAtomic(f, "new", { exclusive: true }));
    expect(e).toMatchObject({ code: "EEXIST", path: f });
    expect(readFileSync(f, "utf8")).toBe("old");
    const g = join(dir, "other.json");
    await writeFileAtomic(g, "new", { exclusive: true });
    expect(readFileSync(g, "utf8")).toBe("new");
    expect(readdirSync(dir).sort()).toEqual(["deployment.json", "other.json"]);
  });

  it("behavior: exclusive on a file system without hard links checks, then renames", async () => {
    const dir = fresh();
    fs.linkError = "EPERM";
    try {
      const f = join(dir, "d.json");
      await writeFileAtomic(f, "new", { exclusive: true });
      expect(readFileSync(f, "utf8")).toBe("new");
      expect(await failure(writeFileAtomic(f, "newer", { exclusive: true }))).toMatchObject({
        code: "EEXIST",
        path: f,
      });
      expect(readFileSync(f, "utf8")).toBe("new");
      expect(readdirSync(dir)).toEqual(["d.json"]);
    } finally {
      fs.linkError = undefined;
    }
  });

  it("error: a failed write leaves no temporary file, and names the target, not the temporary file", async () => {
    const dir = fresh();
    // The target is a folder: the temporary file is written, the rename fails.
    const folder = join(dir, "out");
    mkdirSync(folder);
    const e = await failure(writeFileAtomic(folder, "x"));
    expect(e).toMatchObject({ code: "EISDIR", path: folder });
    expect(fileError(e)?.shortMessage).toBe(`cannot write ${folder}: it is a folder (EISDIR)`);
    // The data cannot be written (after the temporary file is created).
    expect(await failure(writeFileAtomic(join(dir, "f"), 42 as never))).toBeInstanceOf(TypeError);
    // A part of the path is a file: nothing is created.
    writeFileSync(join(dir, "file"), "");
    const inFile = join(dir, "file", "x.json");
    expect(fileError(await failure(writeFileAtomic(inFile, "x")))?.shortMessage).toBe(
      `cannot write ${inFile}: a part of the path is not a folder (ENOTDIR)`,
    );
    expect(readdirSync(dir).sort()).toEqual(["file", "out"]);
    expect(readdirSync(folder)).toEqual([]);
  });

  it.skipIf(process.getuid?.() === 0)(
    "error: a folder this user cannot write is EACCES, with nothing left in it (root writes anyway: skipped)",
    async () => {
      const dir = fresh();
      chmodSync(dir, 0o500);
      try {
        expect(await failure(writeFileAtomic(join(dir, "f"), "x"))).toMatchObject({ code: "EACCES" });
        expect(readdirSync(dir)).toEqual([]);
      } finally {
        chmodSync(dir, 0o700);
      }
    },
  );
});

describe("writeFileAtomicSync", () => {
  it("behavior: the same file, mode and replacement; a failed write leaves no temporary file", () => {
    const dir = fresh();
    const f = join(dir, "vigil.acl");
    writeFileAtomicSync(f, "one\n", { mode: 0o600 });
    writeFileAtomicSync(f, "two\n", { mode: 0o600 });
    expect(readFileSync(f, "utf8")).toBe("two\n");
    expect(statSync(f).mode & 0o777).toBe(0o600);
    const folder = join(dir, "out");
    mkdirSync(folder);
    expect(fileError(thrown(() => writeFileAtomicSync(folder, "x")))?.shortMessage).toBe(
      `cannot write ${folder}: it is a folder (EISDIR)`,
    );
    expect(thrown(() => writeFileAtomicSync(join(dir, "g"), 42 as never))).toBeInstanceOf(TypeError);
    expect(readdirSync(dir).sort()).toEqual(["out", "vigil.acl"]);
  });
});

describe("renameDurable", () => {
  it("behavior: moves the file (and syncs its new folder)", async () => {
    const dir = fresh();
    writeFileSync(join(dir, "k.next"), "key");
    await renameDurable(join(dir, "k.next"), join(dir, "k"));
    expect(readdirSync(dir)).toEqual(["k"]);
    expect(readFileSync(join(dir, "k"), "utf8")).toBe("key");
  });
});
