// `vigil store salvage` on a store whose batch records are gone (operator audit, finding 2): the
// copy must not look complete. What the source had sealed is learned from its watermark and batch
// counter, a key range that stops on a read error is named, and the exit status is 1.
import { mkdtempSync, rmSync } from "node:fs";
import { open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ClassicLevel } from "classic-level";
import { afterEach, describe, expect, it, vi } from "vitest";
import { storeCommand } from "../../gateway/src/cli/store.ts";
import { M_BATCH } from "../../gateway/src/store/context.ts";
import { P_BATCH } from "../../gateway/src/store/codec.ts";
import { LevelFrameStore } from "../../gateway/src/store/level.ts";
import { describeSalvage, salvageProblems, type SalvageReport } from "../../gateway/src/store/salvage.ts";
import type { AnchorRecord } from "../../gateway/src/store/types.ts";
import { fakeBatch, leafRecord, record } from "./abstract.ts";
import { compactUncompressed, dataBlocks } from "./ldb-table.ts";

const dirs: string[] = [];
afterEach(() => {
  vi.restoreAllMocks();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const BATCHES = 6;
const PER = 100;
const ENTRIES = BATCHES * PER + 2;

const make = (dir: string): LevelFrameStore =>
  new LevelFrameStore({ dir, reserveBytes: 0, minFreeBytes: 0, freeBytes: async () => 2 ** 40 });

const anchor: AnchorRecord = {
  chainId: 1,
  contract: `0x${"00".repeat(20)}`,
  txHash: null,
  blockNumber: null,
  confirmations: 0,
  anchoredAtUs: 1,
};

/** A stopped gateway's data folder: 6 sealed and anchored batches of 100 entries (frames and leaves), 2 entries unsealed. */
async function sixAnchored(): Promise<{ dataDir: string; db: string }> {
  const dataDir = mkdtempSync(join(tmpdir(), "vigil-salvage-"));
  dirs.push(dataDir);
  const s = make(join(dataDir, "store"));
  await s.open();
  let prev = `0x${"00".repeat(32)}`;
  let index = 0;
  for (let seq = 1; seq <= BATCHES; seq++) {
    const first = index + 1;
    for (let i = 0; i < PER; i++, index++)
      if (index % 8 === 7) await s.appendLeaf(leafRecord(1, index));
      else expect(await s.append(record(1 + (index % 4), index))).toBe("stored");
    const b = fakeBatch(seq, prev, first, index);
    await s.saveBatch(b, new Uint8Array(32 * PER));
    await s.markAnchored(seq, anchor);
    prev = b.head;
  }
  await s.append(record(9, 0));
  await s.append(record(9, 1));
  await s.close();
  return { dataDir, db: join(dataDir, "store", "db") };
}

async function cli(...argv: string[]): Promise<{ code: number; out: string }> {
  let out = "";
  const code = await storeCommand(argv, { out: (x) => (out += x), err: (x) => (out += x) });
  return { code, out };
}

/**
 * Makes every data block of the table file that holds batch records (B keys) unreadable, the
 * way the audit's flipped bytes did ("corrupted compressed block contents"), but deterministically:
 * the store is first rewritten into one uncompressed table (reopened with compression off and
 * compacted), so its index block can be parsed here (LevelDB's
 * table format: a 48-byte footer holding the index block's handle; index entries are
 * prefix-compressed separator keys whose values are data block handles), and each such block's
 * trailer type byte is set to a value that is neither "none" nor "snappy": LevelDB then reads
 * the whole block as "Corruption: bad block type", whatever the bytes in it, and its repair drops it.
 */
async function destroyBatchBlocks(db: string): Promise<number> {
  const path = await compactUncompressed(db);
  const { blocks } = await dataBlocks(path);
  // Block i holds the keys above separator i-1 up to separator i.
  const hit = blocks.filter(
    (b, i) => b.firstByte >= P_BATCH && (i === 0 || blocks[i - 1]!.firstByte <= P_BATCH),
  );
  expect(hit.length).toBeGreaterThan(0);
  const fh = await open(path, "r+");
  for (const b of hit) await fh.write(Buffer.of(0x7f), 0, 1, b.offset + b.size);
  await fh.close();
  return hit.length;
}

describe("vigil store salvage: sealed batches lost", () => {
  it("error: the table blocks holding the batch records are unreadable (the audit's scenario): the report names batches 1-6 as lost and anchored, advises anchor resync, exit 1 with the copy written", async () => {
    const { dataDir, db } = await sixAnchored();
    await destroyBatchBlocks(db);
    expect((await cli("check", "--data-dir", dataDir)).code).toBe(1);
    const to = join(dataDir, "salvaged");
    const r = await cli("salvage", "--data-dir", dataDir, "--to", to);
    expect(r.code).toBe(1);
    expect(r.out).toContain(`copied ${ENTRIES} entries`);
    expect(r.out).toContain(
      `the damaged store had acknowledged ${ENTRIES} entries; 0 of these entries are not in the copy, but the copy is not complete (✘ below)`,
    );
    expect(r.out).toMatch(
      /LevelDB's repair dropped what it could not read: table #\d+: Corruption: bad block type/,
    );
    expect(r.out).toContain(
      "✘ sealed batches lost: the damaged store had sealed 6 batches (through arrival index 600), the copy keeps 0: " +
        "batch 1 was missing or damaged, so batches 1-6 were dropped (6 of them anchored on chain)",
    );
    expect(r.out).toContain(
      `✘ before starting the gateway on the copy, reconcile it with the chain: vigil anchor resync -c FILE --data-dir ${to}`,
    );
    expect(r.out).toContain("do not put it in place before acting on the ✘ lines (exit status 1)");
    // The copy is written all the same: every entry, unsealed.
    const copy = make(join(to, "store"));
    await copy.open();
    expect(copy.stats()).toMatchObject({ lastIndex: ENTRIES, sealedThrough: 0, lastBatchSeq: 0 });
    await copy.close();
  });

  it("error: a key range that stops on a read error is named (never taken for fewer batches), exit 1", async () => {
    const { dataDir } = await sixAnchored();
    // LevelDB's repair leaves a readable database in practice, so the read error is injected:
    // the iterator over the batch records fails after its second record.
    const iterator = ClassicLevel.prototype.iterator;
    vi.spyOn(ClassicLevel.prototype, "iterator").mockImplementation(function (
      this: ClassicLevel<Buffer, Buffer>,
      ...args: Parameters<typeof iterator>
    ) {
      const it = iterator.apply(this, args) as ReturnType<typeof iterator>;
      const range = args[0] as { gte?: Buffer } | undefined;
      if (range?.gte?.[0] !== P_BATCH) return it;
      const next = it.next.bind(it);
      let n = 0;
      it.next = (async () => {
        if (++n > 2)
          throw Object.assign(new Error("Corruption: block checksum mismatch"), { code: "LEVEL_CORRUPTION" });
        return next();
      }) as typeof it.next;
      return it;
    } as typeof iterator);
    const to = join(dataDir, "salvaged");
    const r = await cli("salvage", "--data-dir", dataDir, "--to", to);
    expect(r.code).toBe(1);
    // The count comes from the counters, and the batch records are read one by one: all are kept.
    expect(r.out).toContain(
      `copied ${ENTRIES} entries (${ENTRIES - 75} frames, 75 inference/alert leaves) and 6 batches`,
    );
    expect(r.out).toContain(
      "✘ the batch records (B keys) after batch 2 could not be read (Corruption: block checksum mismatch): what that range held from there on is not in the copy",
    );
    expect(r.out).toContain("vigil anchor resync -c FILE");
  });

  it("error: without a watermark and batch counter the number of batches is a lower bound and said to be", async () => {
    const { dataDir, db } = await sixAnchored();
    const raw = new ClassicLevel<Buffer, Buffer>(db, { keyEncoding: "buffer", valueEncoding: "buffer" });
    await raw.open();
    await raw.del(M_BATCH);
    await raw.close();
    await rm(join(dataDir, "store", "watermark"));
    await destroyBatchBlocks(db);
    const r = await cli("salvage", "--data-dir", dataDir, "--to", join(dataDir, "salvaged"));
    expect(r.code).toBe(1);
    // The packed leaves and index records that survived name batch 6.
    expect(r.out).toContain("✘ sealed batches lost: the damaged store had sealed at least 6 batches");
    expect(r.out).toContain(
      "✘ how many batches the damaged store had sealed beyond 6 cannot be learned (its watermark and batch counter are gone or unreadable, and its database is damaged)",
    );
  });

  it("behavior: nothing to go by at all is said plainly; a complete salvage has no ✘ line", () => {
    const base: SalvageReport = {
      entries: 10,
      frames: 10,
      leaves: 0,
      damaged: [],
      lostSealed: [],
      acknowledged: 10,
      prunedThrough: 0,
      renumbered: 0,
      batchesKept: 0,
      firstBatchLost: undefined,
      batchesDropped: 0,
      sourceBatches: 0,
      sourceBatchesKnown: true,
      sourceSealedThrough: 0,
      sourceAnchored: 0,
      keptSealedThrough: 0,
      anchorsLost: 0,
      headMismatch: false,
      readErrors: [],
      repairDropped: [],
    };
    expect(salvageProblems(base)).toEqual([]);
    expect(describeSalvage(base)).not.toContain("✘");
    const unknown = {
      ...base,
      sourceBatchesKnown: false,
      repairDropped: ["table #5: Corruption: bad block type"],
    };
    expect(describeSalvage(unknown)).toContain(
      "✘ how many batches the damaged store had sealed cannot be learned (its watermark and batch counter are gone or unreadable, and its database is damaged): sealed batches may be missing from the copy",
    );
    expect(describeSalvage(unknown)).toContain("vigil anchor resync -c FILE --data-dir NEW_DIR");
  });
});
