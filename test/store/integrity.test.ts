// Storage faults on a real LevelDB store of a stopped gateway that acknowledged 200 frames: each
// damage is detected at open (never silently started over, never a raw stack trace), `vigil store
// check` reports it, and `vigil store salvage` copies out what is intact and names what was lost.
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { open } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { storeCommand } from "../../gateway/src/cli/store.ts";
import { VigilError } from "../../gateway/src/core/errors.ts";
import { StoreIntegrityError } from "../../gateway/src/store/integrity.ts";
import { StoreUnavailableError } from "../../gateway/src/store/errors.ts";
import { LevelFrameStore } from "../../gateway/src/store/level.ts";
import { MemoryKv } from "../../gateway/src/store/kv.ts";
import { MemoryFrameStore } from "../../gateway/src/store/memory.ts";
import { fakeBatch, leafRecord, record } from "./abstract.ts";
import { LEAF_FIXED, P_LEAF, P_LOG, u64Key } from "../../gateway/src/store/codec.ts";
import { ClassicLevel } from "classic-level";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const N = 200;
const make = (dir: string): LevelFrameStore =>
  new LevelFrameStore({ dir, reserveBytes: 0, minFreeBytes: 0, freeBytes: async () => 2 ** 40 });

/** A data folder whose store acknowledged N frames and was stopped; `compacted`: moved to a table file. */
async function stopped(compacted: boolean): Promise<{ dataDir: string; dir: string; db: string }> {
  const dataDir = mkdtempSync(join(tmpdir(), "vigil-integrity-"));
  dirs.push(dataDir);
  const dir = join(dataDir, "store");
  const s = make(dir);
  await s.open();
  for (let i = 0; i < N; i++) expect(await s.append(record(1 + (i % 4), Math.floor(i / 4)))).toBe("stored");
  await s.close();
  if (compacted) {
    // Reopening replays the write-ahead log into a table file; closing leaves it there.
    const again = make(dir);
    await again.open();
    await again.close();
  }
  return { dataDir, dir, db: join(dir, "db") };
}

const files = (db: string, ext: string): string[] =>
  readdirSync(db)
    .filter((f) => f.endsWith(ext))
    .map((f) => join(db, f));

async function flip(path: string, count: number): Promise<void> {
  const fh = await open(path, "r+");
  const size = (await fh.stat()).size;
  const buf = Buffer.alloc(1);
  for (let i = 0; i < count; i++) {
    const at = Math.floor(((i + 1) * size) / (count + 2));
    await fh.read(buf, 0, 1, at);
    buf[0] = buf[0]! ^ 0xff; // never a no-op
    await fh.write(buf, 0, 1, at);
  }
  await fh.close();
}

async function openError(dir: string): Promise<unknown> {
  const s = make(dir);
  return s.open().then(
    async () => {
      await s.close();
      return undefined;
    },
    (e: unknown) => e,
  );
}

/** An open store in a new data folder: 10 frames of device 1, sealed as batch 1. */
async function sealedTen(): Promise<{ dataDir: string; s: LevelFrameStore }> {
  const dataDir = mkdtempSync(join(tmpdir(), "vigil-integrity-"));
  dirs.push(dataDir);
  const s = make(join(dataDir, "store"));
  await s.open();
  for (let i = 0; i < 10; i++) await s.append(record(1, i));
  await s.saveBatch(fakeBatch(1, `0x${"00".repeat(32)}`, 1, 10), new Uint8Array(320));
  return { dataDir, s };
}

async function cli(...argv: string[]): Promise<{ code: number; out: string }> {
  let out = "";
  const code = await storeCommand(argv, { out: (x) => (out += x), err: (x) => (out += x) });
  return { code, out };
}

async function salvageAndReopen(dataDir: string): Promise<{ out: string; frames: number }> {
  const to = join(dataDir, "salvaged");
  const r = await cli("salvage", "--data-dir", dataDir, "--to", to);
  expect(r.code).toBe(0);
  const s = make(join(to, "store"));
  await s.open();
  const frames = s.stats().lastIndex;
  // The salvaged store accepts frames again.
  expect(await s.append(record(9, 0))).toBe("stored");
  await s.close();
  expect((await cli("check", "--data-dir", to)).code).toBe(0);
  return { out: r.out, frames };
}

describe("store integrity on a real LevelDB store", () => {
  it("error: a folder that holds no store is named as such, with no salvage advice (there is nothing to salvage)", async () => {
    const r = await cli("check", "--data-dir", join(tmpdir(), "vigil-no-store-here"));
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/vigil-no-store-here\/store holds no Vigil store .*check the path/);
    expect(r.out).not.toContain("salvage");
  });

  it("behavior: check only inspects: a store without a watermark does not get one (it would record a loss as acknowledged)", async () => {
    const { dataDir } = await stopped(true);
    const wm = join(dataDir, "store", "watermark");
    expect(existsSync(wm)).toBe(true);
    rmSync(wm);
    const r = await cli("check", "--data-dir", dataDir);
    expect(r.code).toBe(0);
    expect(r.out).toContain("! no watermark: what the store acknowledged is unknown");
    expect(existsSync(wm)).toBe(false);
  });

  it("behavior: an intact store checks clean", async () => {
    const { dataDir } = await stopped(true);
    const r = await cli("check", "--data-dir", dataDir);
    expect(r).toMatchObject({ code: 0 });
    expect(r.out).toContain(`${N} entries`);
    expect(r.out).toContain("✔ intact");
  });

  it("error: the write-ahead log truncated to half: refused at open, check says so, salvage names what is lost", async () => {
    const { dataDir, dir, db } = await stopped(false);
    const [log] = files(db, ".log");
    truncateSync(log!, Math.floor(statSync(log!).size / 2));
    const e = await openError(dir);
    expect(e).toBeInstanceOf(StoreIntegrityError);
    expect((e as VigilError).shortMessage).toMatch(/lost or damaged data it had acknowledged .*entries lost/);
    expect((await cli("check", "--data-dir", dataDir)).code).toBe(1);
    const { out, frames } = await salvageAndReopen(dataDir);
    expect(frames).toBeGreaterThan(0);
    expect(frames).toBeLessThan(N);
    expect(out).toContain(`had acknowledged ${N} entries; ${N - frames} are not in the copy`);
  });

  it("error: 40 flipped bytes in the write-ahead log are detected, not started over", async () => {
    const { dataDir, dir, db } = await stopped(false);
    await flip(files(db, ".log")[0]!, 40);
    const e = await openError(dir);
    expect(e).toBeInstanceOf(VigilError);
    expect((await cli("check", "--data-dir", dataDir)).code).toBe(1);
    await salvageAndReopen(dataDir);
  });

  it("error: CURRENT deleted on a compacted store: never recreated over the data; salvage recovers every frame", async () => {
    const { dataDir, dir, db } = await stopped(true);
    const tables = files(db, ".ldb");
    expect(tables.length).toBeGreaterThan(0);
    unlinkSync(join(db, "CURRENT"));
    const e = await openError(dir);
    expect(e).toBeInstanceOf(StoreIntegrityError);
    expect((e as VigilError).shortMessage).toMatch(/CURRENT file is missing.*not recreated/);
    // The old table files are still there: nothing was deleted by a fresh database.
    for (const t of tables) expect(existsSync(t)).toBe(true);
    expect(existsSync(join(db, "CURRENT"))).toBe(false);
    const { frames } = await salvageAndReopen(dataDir);
    expect(frames).toBe(N);
  });

  it("error: a truncated table file is a typed error at open (no stack trace) and salvage keeps what it can read", async () => {
    const { dataDir, dir, db } = await stopped(true);
    const [table] = files(db, ".ldb");
    truncateSync(table!, Math.floor(statSync(table!).size / 2));
    const e = await openError(dir);
    expect(e).toBeInstanceOf(VigilError);
    expect((await cli("check", "--data-dir", dataDir)).code).toBe(1);
    const { frames } = await salvageAndReopen(dataDir);
    expect(frames).toBeLessThan(N);
  });

  it("security: salvage never writes to the source, even when its db folder is a link to another disk", async () => {
    const { dataDir, db } = await stopped(false);
    const elsewhere = join(dataDir, "other-disk-db");
    renameSync(db, elsewhere);
    symlinkSync(elsewhere, db);
    const before = readdirSync(elsewhere).map((f) => [f, statSync(join(elsewhere, f)).mtimeMs]);
    const { frames } = await salvageAndReopen(dataDir);
    expect(frames).toBe(N);
    expect(readdirSync(elsewhere).map((f) => [f, statSync(join(elsewhere, f)).mtimeMs])).toEqual(before);
  });

  it("error: stored values that do not decode (a short frame record, a leaf of no known kind) are named by index: a typed error at open, every one listed by check, no stack trace", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "vigil-integrity-"));
    dirs.push(dataDir);
    const s = make(join(dataDir, "store"));
    await s.open();
    for (let i = 0; i < 10; i++) await s.append(record(1, i));
    await s.appendLeaf(leafRecord(1, 0)); // arrival index 11
    await s.append(record(1, 10)); // 12
    await s.close();
    const db = new ClassicLevel<Buffer, Buffer>(join(dataDir, "store", "db"), {
      keyEncoding: "buffer",
      valueEncoding: "buffer",
    });
    await db.open();
    await db.put(u64Key(P_LOG, 3), Buffer.alloc(6));
    await db.put(u64Key(P_LOG, 7), Buffer.alloc(6));
    const leaf = (await db.get(u64Key(P_LEAF, 11)))!;
    leaf[LEAF_FIXED] = 0x09; // the preimage's kind tag
    await db.put(u64Key(P_LEAF, 11), leaf);
    await db.close();

    const e = await openError(join(dataDir, "store"));
    expect(e).toBeInstanceOf(StoreIntegrityError);
    const r = await cli("check", "--data-dir", dataDir);
    expect(r.code).toBe(1);
    expect(r.out).toContain("- frame record 3 is damaged (6 bytes, fewer than its fixed 28)");
    expect(r.out).toContain("- frame record 7 is damaged (6 bytes, fewer than its fixed 28)");
    expect(r.out).toMatch(
      /- leaf record 11 is damaged \(leaf tag 0x09 is not INFERENCE, ALERT or SENSOR_FAULT\)/,
    );
    // Present, not missing: the entries around them are read and checked.
    expect(r.out).not.toMatch(/arrival indexes missing/);
    expect(r.out).not.toMatch(/^\s+at /m);
  });

  it("error: salvage into a folder that is not empty is refused and touches nothing; a salvage that fails says so in one sentence", async () => {
    const { dataDir } = await stopped(false);
    const to = join(dataDir, "busy");
    mkdirSync(join(to, "store"), { recursive: true });
    writeFileSync(join(to, "store", "watermark"), "another store's");
    // Typed errors: the CLI prints their one sentence and exits 1 (cli/main.ts).
    await expect(cli("salvage", "--data-dir", dataDir, "--to", to)).rejects.toThrowError(
      new StoreIntegrityError(
        `${join(to, "store")} already exists and is not empty; salvage into a new folder`,
      ),
    );
    expect(readdirSync(join(to, "store"))).toEqual(["watermark"]);
    // A salvage that fails while writing (here: the target is under a file) is one sentence too.
    writeFileSync(join(dataDir, "a-file"), "x");
    const bad = await cli("salvage", "--data-dir", dataDir, "--to", join(dataDir, "a-file", "new")).catch(
      (e: unknown) => e,
    );
    expect(bad).toBeInstanceOf(StoreIntegrityError);
    expect((bad as Error).message).toMatch(
      /the salvage into .*a-file\/new\/store failed \(.*\); nothing was kept there, the source is unchanged/,
    );
  });

  it("behavior: an entry lost inside a sealed batch: salvage keeps the batch and the other entries, and the salvaged store opens and accepts frames", async () => {
    const { dataDir, s } = await sealedTen();
    await s.close();
    // Entry 3 disappears from under the store (a damaged table).
    const db = new ClassicLevel<Buffer, Buffer>(join(dataDir, "store", "db"), {
      keyEncoding: "buffer",
      valueEncoding: "buffer",
    });
    await db.open();
    await db.del(u64Key(P_LOG, 3));
    await db.close();
    expect(await openError(join(dataDir, "store"))).toBeInstanceOf(StoreIntegrityError);
    const to = join(dataDir, "salvaged");
    const r = await cli("salvage", "--data-dir", dataDir, "--to", to);
    expect(r.out).toContain("lost for good inside sealed batches: arrival indexes 3");
    const t = make(join(to, "store"));
    await t.open();
    expect(t.stats()).toMatchObject({ lastIndex: 10, sealedThrough: 10 });
    expect(await t.append(record(1, 10))).toBe("stored");
    await t.close();
    // …and keeps opening: the gap is recorded, not taken for new damage.
    expect(await openError(join(to, "store"))).toBeUndefined();
    // The procedure of "vigil store --help": the salvaged store goes in place of the damaged one,
    // so the files next to it (keystore, deployment, tokens) stay where the config names them.
    writeFileSync(join(dataDir, "gateway.key"), "kept\n");
    renameSync(join(dataDir, "store"), join(dataDir, "store.damaged"));
    renameSync(join(to, "store"), join(dataDir, "store"));
    const placed = make(join(dataDir, "store"));
    await placed.open();
    expect(placed.stats()).toMatchObject({ lastIndex: 11, sealedThrough: 10 });
    await placed.close();
    expect(existsSync(join(dataDir, "gateway.key"))).toBe(true);
  });

  it("error: a first open that cannot write its watermark is one typed error and leaves the store closed (not locked): once the cause is gone it opens", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "vigil-integrity-"));
    dirs.push(dataDir);
    const dir = join(dataDir, "store");
    mkdirSync(join(dir, "watermark.new"), { recursive: true }); // where the first write must go
    const s = make(dir);
    const e = await s.open().then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(StoreUnavailableError);
    expect((e as Error).message).toBe("opening the store failed: storage I/O error");
    expect(s.stats().state).toBe("closed");
    rmSync(join(dir, "watermark.new"), { recursive: true });
    const again = make(dir);
    await again.open();
    expect(await again.append(record(1, 0))).toBe("stored");
    await again.close();
  });

  it("error: check on a store the gateway holds says it is in use, not damaged (no salvage advice)", async () => {
    const { dataDir, dir } = await stopped(false);
    const held = make(dir);
    await held.open();
    try {
      const r = await cli("check", "--data-dir", dataDir);
      expect(r).toEqual({
        code: 1,
        out: `${dir} is in use by another process (is the gateway running?); stop it, then run check again\n`,
      });
    } finally {
      await held.close();
    }
  });

  it("behavior: salvage of an intact store whose oldest batch was pruned reports nothing lost (pruned entries are not losses)", async () => {
    const { dataDir, s } = await sealedTen();
    await s.markAnchored(1, {
      chainId: 1,
      contract: `0x${"00".repeat(20)}`,
      txHash: null,
      blockNumber: null,
      confirmations: 0,
      anchoredAtUs: 1,
    });
    expect(await s.prune({ retentionUs: 0 })).toBe(10);
    for (let i = 10; i < 15; i++) await s.append(record(1, i));
    await s.close();
    const r = await cli("salvage", "--data-dir", dataDir, "--to", join(dataDir, "salvaged"));
    expect(r.out).toContain(
      "the damaged store had acknowledged 15 entries, 10 of them pruned on purpose before (retention); 0 are not in the copy",
    );
  });

  it("error: 40 flipped bytes in a table file are found at open or by store check", async () => {
    const { dataDir, dir, db } = await stopped(true);
    await flip(files(db, ".ldb")[0]!, 40);
    const e = await openError(dir);
    const r = await cli("check", "--data-dir", dataDir);
    // Either the open checks refuse the store, or the full check finds the damage.
    expect(e instanceof VigilError || r.code === 1).toBe(true);
    expect(r.code).toBe(1);
  });

  it("error: read-only tools never create a store: a wrong path is an error", async () => {
    const nowhere = mkdtempSync(join(tmpdir(), "vigil-nostore-"));
    dirs.push(nowhere);
    const r = await cli("check", "--data-dir", nowhere);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/holds no Vigil store/);
    expect(existsSync(join(nowhere, "store", "db"))).toBe(false);
  });
});

describe("store integrity on the memory store", () => {
  it("error: entries lost under the store (the watermark says more) refuse the open", async () => {
    const kv = new MemoryKv();
    const s = new MemoryFrameStore({}, kv);
    await s.open();
    for (let i = 1; i <= 10; i++) await s.append(record(1, i));
    await s.close();
    // The database loses its last group commit (as a truncated log would).
    await kv.open();
    const last = Buffer.alloc(16);
    last.writeUInt32BE(7, 4);
    await kv.write([{ type: "put", key: Buffer.from("Mlast", "latin1"), value: last }], true);
    await kv.close();
    const again = new MemoryFrameStore({}, kv);
    await expect(again.open()).rejects.toThrow(/log ends at arrival index 7 but 10 were acknowledged/);
  });
});
