// `vigil store salvage` when LevelDB's own repair dies (storage audit D1): classic-level's prebuilt
// LevelDB keeps its assertions, and a damaged table whose keys are out of order fails one inside
// the repair (table_builder.cc), which ended the whole salvage with exit 134, no report and a work
// copy left in the temporary folder. The repair now runs in a child process: its death is named,
// the copy is read as the damaged store stands, and the exit status is 1. `vigil store check` on
// the same store stops at the damaged block with a line of its own (storage audit D4).
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { open } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { storeCommand } from "../../gateway/src/cli/store.ts";
import { LevelFrameStore } from "../../gateway/src/store/level.ts";
import { record } from "./abstract.ts";
import { compactUncompressed, dataBlocks, varint } from "./ldb-table.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/**
 * A stopped gateway's data folder of 600 frames whose one table has two kinds of damage: the first
 * data block's trailer names no block type (LevelDB reads it as "Corruption: bad block type", and
 * its repair rebuilds the table), and the first key of the third block starts with 0xff, so that
 * block's keys are out of order; LevelDB reads blocks without checking their CRC by default, and
 * the rebuild asserts on the order.
 */
async function outOfOrderStore(): Promise<string> {
  const dataDir = mkdtempSync(join(tmpdir(), "vigil-salvage-abort-"));
  dirs.push(dataDir);
  const s = new LevelFrameStore({
    dir: join(dataDir, "store"),
    reserveBytes: 0,
    minFreeBytes: 0,
    freeBytes: async () => 2 ** 40,
  });
  await s.open();
  for (let i = 0; i < 600; i++) expect(await s.append(record(1 + (i % 4), i))).toBe("stored");
  await s.close();
  const path = await compactUncompressed(join(dataDir, "store", "db"));
  const { file, blocks } = await dataBlocks(path);
  expect(blocks.length).toBeGreaterThan(3);
  const fh = await open(path, "r+");
  await fh.write(Buffer.of(0x7f), 0, 1, blocks[0]!.offset + blocks[0]!.size);
  // A block's first entry: shared (0), unshared and value lengths, then the key's bytes.
  const at = { o: blocks[2]!.offset };
  varint(file, at);
  varint(file, at);
  varint(file, at);
  await fh.write(Buffer.of(0xff), 0, 1, at.o);
  await fh.close();
  return dataDir;
}

const salvageWork = (): string[] =>
  readdirSync(tmpdir()).filter((f) => f.startsWith("vigil-salvage-") && !f.includes("abort"));

describe("vigil store salvage: LevelDB's repair dies", () => {
  it("error: check stops at the damaged block and names salvage; salvage's repair dies: named, the copy is read as the damaged store stands, exit 1, no work copy left behind", async () => {
    const dataDir = await outOfOrderStore();
    let checked = "";
    const checkCode = await storeCommand(["check", "--data-dir", dataDir], {
      out: (x) => (checked += x),
      err: (x) => (checked += x),
    });
    // The check stops at the damaged block, says so and names salvage (storage audit D4: it ended
    // in the generic line advising to run the check itself).
    expect(checkCode).toBe(1);
    expect(checked).toMatch(
      /^✘ .*\/store could not be read to its end: reading the store failed: database corruption \(Corruption: bad block type\); what comes after that point was not checked\nrun "vigil store salvage --data-dir .* --to NEW_DIR" to copy out what is intact\n$/,
    );
    const before = salvageWork();
    const to = join(dataDir, "salvaged");
    let out = "";
    const code = await storeCommand(["salvage", "--data-dir", dataDir, "--to", to], {
      out: (x) => (out += x),
      err: (x) => (out += x),
    });
    expect(code, out).toBe(1);
    expect(out).toMatch(
      /✘ LevelDB's repair of the copy did not complete \(LevelDB ended it with SIGABRT: Assertion `r->options\.comparator->Compare\(key, Slice\(r->last_key\)\) > 0' failed\), so the copy was read as the damaged store stands/,
    );
    expect(out).toMatch(/^copied \d+ entries/m);
    expect(readdirSync(join(to, "store", "db")).some((f) => f === "CURRENT")).toBe(true);
    expect(salvageWork()).toEqual(before);
  }, 60_000);
});
