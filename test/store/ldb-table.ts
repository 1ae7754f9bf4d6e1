/**
 * Reading a LevelDB table file's layout, for tests that damage one block on purpose (LevelDB's
 * table format, doc/table_format.md: a 48-byte footer holding the index block's handle; index
 * entries are prefix-compressed separator keys whose values are data block handles). The table
 * must be uncompressed: {@link compactUncompressed} rewrites a database into one such table.
 */
import { readdirSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { ClassicLevel } from "classic-level";

/** A LevelDB varint32/64 at `at.o`, which it advances. */
export function varint(b: Buffer, at: { o: number }): number {
  let v = 0;
  for (let shift = 0; ; shift += 7) {
    const byte = b[at.o++]!;
    v += (byte & 0x7f) * 2 ** shift;
    if (byte < 0x80) return v;
  }
}

/** Rewrites the database in `db` into one uncompressed table file and returns its path. */
export async function compactUncompressed(db: string): Promise<string> {
  const raw = new ClassicLevel<Buffer, Buffer>(db, {
    keyEncoding: "buffer",
    valueEncoding: "buffer",
    compression: false,
  });
  await raw.open();
  await raw.compactRange(Buffer.of(0), Buffer.of(0xff)); // one table, whatever was written before
  await raw.close();
  const tables = readdirSync(db).filter((f) => f.endsWith(".ldb"));
  if (tables.length !== 1) throw new Error(`expected one table in ${db}, found ${tables.length}`);
  return join(db, tables[0]!);
}

/** A data block: its offset and size in the file, and the first byte of its separator key. */
export interface DataBlock {
  offset: number;
  size: number;
  firstByte: number;
}

/** The data blocks of an uncompressed table file, in key order. */
export async function dataBlocks(path: string): Promise<{ file: Buffer; blocks: DataBlock[] }> {
  const file = await readFile(path);
  const footer = { o: file.length - 48 };
  varint(file, footer); // metaindex offset
  varint(file, footer); // metaindex size
  const indexAt = varint(file, footer);
  const indexSize = varint(file, footer);
  if (file[indexAt + indexSize] !== 0) throw new Error("the index block is compressed");
  const index = file.subarray(indexAt, indexAt + indexSize);
  const restarts = index.length - 4 * (index.readUInt32LE(index.length - 4) + 1);
  const blocks: DataBlock[] = [];
  let key = Buffer.alloc(0);
  for (const at = { o: 0 }; at.o < restarts;) {
    const shared = varint(index, at);
    const own = varint(index, at);
    const valueLength = varint(index, at);
    key = Buffer.concat([key.subarray(0, shared), index.subarray(at.o, at.o + own)]);
    at.o += own;
    const value = { o: at.o };
    blocks.push({ firstByte: key[0]!, offset: varint(index, value), size: varint(index, value) });
    at.o += valueLength;
  }
  return { file, blocks };
}
