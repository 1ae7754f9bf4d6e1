/**
 * The store's format record (gateway/src/store/format.ts): written at the first writable open,
 * assumed 1 for a store from before it, and a newer format refused before any record is read.
 */
import { afterEach, describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ClassicLevel } from "classic-level";
import { LevelFrameStore } from "../../gateway/src/store/level.ts";
import { StoreFormatError, StoreIntegrityError } from "../../gateway/src/store/errors.ts";
import { M_FORMAT, STORE_FORMAT } from "../../gateway/src/store/format.ts";
import { salvageStore } from "../../gateway/src/store/salvage.ts";
import { storeCommand } from "../../gateway/src/cli/store.ts";
import { record } from "./abstract.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function storeDir(): string {
  const d = mkdtempSync(join(tmpdir(), "vigil-format-"));
  dirs.push(d);
  return d;
}

const open = async (dir: string, inspectOnly = false): Promise<LevelFrameStore> => {
  const s = new LevelFrameStore({ dir, reserveBytes: 0, minFreeBytes: 0, inspectOnly });
  await s.open();
  return s;
};

/** Reads or changes the format record with LevelDB itself (the store closed). */
async function withDb<T>(dir: string, fn: (db: ClassicLevel<Buffer, Buffer>) => Promise<T>): Promise<T> {
  const db = new ClassicLevel<Buffer, Buffer>(join(dir, "db"), {
    keyEncoding: "buffer",
    valueEncoding: "buffer",
  });
  await db.open();
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n, 0);
  return b;
};

describe("store format", () => {
  it("behavior: a new store records this version's format (Mformat, u32 big-endian)", async () => {
    const dir = storeDir();
    const s = await open(dir);
    expect(s.format).toBe(STORE_FORMAT);
    expect(await s.append(record(1, 0))).toBe("stored");
    await s.close();
    expect(await withDb(dir, (db) => db.get(M_FORMAT))).toEqual(u32(1));
  });

  it("behavior: a store from before the record opens as format 1 with its frames, and gets the record; an inspecting open writes nothing", async () => {
    const dir = storeDir();
    const s = await open(dir);
    await s.append(record(1, 0));
    await s.close();
    await withDb(dir, (db) => db.del(M_FORMAT));
    const check = await open(dir, true);
    expect(check.format).toBe(1);
    await check.close();
    expect(await withDb(dir, (db) => db.get(M_FORMAT))).toBeUndefined();
    const again = await open(dir);
    expect(again.format).toBe(1);
    expect((await again.getFrame(1))?.deviceId).toBe(1);
    await again.close();
    expect(await withDb(dir, (db) => db.get(M_FORMAT))).toEqual(u32(1));
  });

  it("error: a store of a newer format is refused (StoreFormatError naming both formats) before anything is read or written, and the lock is released", async () => {
    const dir = storeDir();
    const s = await open(dir);
    await s.append(record(1, 0));
    await s.close();
    await withDb(dir, (db) => db.put(M_FORMAT, u32(STORE_FORMAT + 1)));
    const watermark = readFileSync(join(dir, "watermark"));
    for (const inspectOnly of [false, true]) {
      const err = await open(dir, inspectOnly).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StoreFormatError);
      expect(err).toMatchObject({ code: "STORE_FORMAT", found: STORE_FORMAT + 1, supported: STORE_FORMAT });
      expect((err as StoreFormatError).shortMessage).toMatch(
        /^the store was written by a newer Vigil \(store format 2; this version reads formats up to 1\) .*run the newer version again/,
      );
    }
    // Untouched, and not left locked: LevelDB opens it.
    expect(readFileSync(join(dir, "watermark"))).toEqual(watermark);
    expect(await withDb(dir, (db) => db.get(M_FORMAT))).toEqual(u32(STORE_FORMAT + 1));
  });

  it("error: vigil store check on a newer store says so in one line and does not advise a salvage (which refuses it too)", async () => {
    const data = storeDir();
    const dir = join(data, "store");
    const s = await open(dir);
    await s.append(record(1, 0));
    await s.close();
    await withDb(dir, (db) => db.put(M_FORMAT, u32(STORE_FORMAT + 1)));
    let out = "";
    const code = await storeCommand(["check", "--data-dir", data], {
      out: (x) => (out += x),
      err: (x) => (out += x),
    });
    expect(code).toBe(1);
    expect(out).toMatch(
      /^the store was written by a newer Vigil \(store format 2; .*run the newer version again[^\n]*\n$/,
    );
    expect(out).not.toContain("salvage");
  });

  it("error: a format record that is not 4 bytes is a damaged store (StoreIntegrityError)", async () => {
    const dir = storeDir();
    await (await open(dir)).close();
    await withDb(dir, (db) => db.put(M_FORMAT, Buffer.of(1)));
    const err = await open(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreIntegrityError);
    expect((err as StoreIntegrityError).shortMessage).toMatch(/format record is damaged \(1 bytes, not 4\)/);
  });

  it("behavior: a salvage refuses a newer store, and the store it writes records its format", async () => {
    const dir = storeDir();
    const s = await open(dir);
    await s.append(record(1, 0));
    await s.close();
    const to = join(storeDir(), "salvaged");
    await salvageStore(dir, to);
    expect(await withDb(to, (db) => db.get(M_FORMAT))).toEqual(u32(STORE_FORMAT));
    await withDb(dir, (db) => db.put(M_FORMAT, u32(STORE_FORMAT + 1)));
    const err = await salvageStore(dir, join(storeDir(), "salvaged")).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreFormatError);
  });
});
