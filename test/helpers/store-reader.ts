/**
 * An independent reader of a stopped gateway's store: opens the LevelDB database with
 * classic-level and decodes it from the layout documented in gateway/src/store/codec.ts alone
 * (no store code), so tests check what is on disk, not what the store believes.
 *
 *   `L` index u64 BE → deviceId u32 BE ‖ seq u64 BE ‖ receivedUs u64 BE ‖ timestampUs u64 BE ‖ raw frame
 *   `E` index u64 BE → a leaf record (counted, not decoded here)
 */
import { ClassicLevel } from "classic-level";
import { join } from "node:path";

export interface DiskFrame {
  index: number;
  deviceId: number;
  seq: number;
  raw: Buffer;
}

const u64 = (b: Buffer, o: number): number => b.readUInt32BE(o) * 2 ** 32 + b.readUInt32BE(o + 4);

/** Every frame (`L`) and the number of leaf records (`E`) in `<dataDir>/store/db`. */
export async function readStoreFromDisk(storeDir: string): Promise<{ frames: DiskFrame[]; leaves: number }> {
  const db = new ClassicLevel<Buffer, Buffer>(join(storeDir, "db"), {
    keyEncoding: "buffer",
    valueEncoding: "buffer",
    createIfMissing: false,
  });
  await db.open();
  try {
    const frames: DiskFrame[] = [];
    for await (const [k, v] of db.iterator({ gte: Buffer.of(0x4c), lt: Buffer.of(0x4d) }))
      frames.push({
        index: u64(k, 1),
        deviceId: v.readUInt32BE(0),
        seq: u64(v, 4),
        raw: Buffer.from(v.subarray(28)),
      });
    let leaves = 0;
    for await (const _ of db.keys({ gte: Buffer.of(0x45), lt: Buffer.of(0x46) })) leaves++;
    return { frames, leaves };
  } finally {
    await db.close();
  }
}
