/**
 * An independent reader of a stopped gateway's store: opens the LevelDB database with
 * classic-level and decodes it from the layout documented in gateway/src/store/codec.ts alone
 * (no store code), so tests check what is on disk, not what the store believes.
 *
 *   `L` index u64 BE → deviceId u32 BE ‖ flags u8 (bit 0: clock-unverified) ‖ seq u56 BE ‖ receivedUs u64 BE ‖
 *     timestampUs u64 BE ‖ raw frame
 *   `E` index u64 BE → 0x01 ‖ receivedUs u64 ‖ leaf hash 32 ‖ preimage (the hash is what is sealed)
 *   `B` seq u64 → sealed batch JSON; `V` seq u64 → packed 32-byte leaves; `A` seq u64 → anchor JSON
 *   `Manchored` → u64 last anchored batch seq
 */
import { ClassicLevel } from "classic-level";
import { join } from "node:path";

export interface DiskFrame {
  index: number;
  deviceId: number;
  seq: number;
  receivedUs: number;
  raw: Buffer;
  /** Flags bit 0: stored while the gateway clock was not known good. */
  clockUnverified: boolean;
}

export interface DiskBatch {
  seq: number;
  /** The sealed batch record as stored (JSON). */
  json: {
    header: { seq: number; prevHead: string; root: string; leafCount: number } & Record<string, unknown>;
    head: string;
    firstIndex: number;
    lastIndex: number;
  } & Record<string, unknown>;
  leaves: Buffer;
  anchored: boolean;
}

export interface DiskStore {
  frames: DiskFrame[];
  /** Leaf records: index → sealed leaf hash. */
  leafHashes: Map<number, Buffer>;
  leaves: number;
  batches: DiskBatch[];
  anchoredThrough: number;
}

const u64 = (b: Buffer, o: number): number => b.readUInt32BE(o) * 2 ** 32 + b.readUInt32BE(o + 4);

/** Everything a check needs from `<dataDir>/store/db`, decoded from the documented layout. */
export async function readStoreFromDisk(storeDir: string): Promise<DiskStore> {
  const db = new ClassicLevel<Buffer, Buffer>(join(storeDir, "db"), {
    keyEncoding: "buffer",
    valueEncoding: "buffer",
    createIfMissing: false,
  });
  await db.open();
  try {
    const range = (p: number) => db.iterator({ gte: Buffer.of(p), lt: Buffer.of(p + 1) });
    const frames: DiskFrame[] = [];
    for await (const [k, v] of range(0x4c))
      frames.push({
        index: u64(k, 1),
        deviceId: v.readUInt32BE(0),
        seq: (v.readUInt32BE(4) & 0xffffff) * 2 ** 32 + v.readUInt32BE(8),
        receivedUs: u64(v, 12),
        raw: Buffer.from(v.subarray(28)),
        clockUnverified: (v[4]! & 1) === 1,
      });
    const leafHashes = new Map<number, Buffer>();
    for await (const [k, v] of range(0x45)) leafHashes.set(u64(k, 1), Buffer.from(v.subarray(9, 41)));
    const packed = new Map<number, Buffer>();
    for await (const [k, v] of range(0x56)) packed.set(u64(k, 1), Buffer.from(v));
    const anchors = new Set<number>();
    for await (const [k] of range(0x41)) anchors.add(u64(k, 1));
    const batches: DiskBatch[] = [];
    for await (const [k, v] of range(0x42)) {
      const seq = u64(k, 1);
      batches.push({
        seq,
        json: JSON.parse(v.toString("utf8")) as DiskBatch["json"],
        leaves: packed.get(seq) ?? Buffer.alloc(0),
        anchored: anchors.has(seq),
      });
    }
    const m = await db.get(Buffer.from("Manchored", "latin1"));
    return { frames, leafHashes, leaves: leafHashes.size, batches, anchoredThrough: m ? u64(m, 0) : 0 };
  } finally {
    await db.close();
  }
}
