/**
 * The store's format number (`Mformat`, u32 big-endian): which layout of the records codec.ts
 * describes this store is written in. A Vigil opens a store of its own format or older (older
 * layouts are read as they are, codec.ts "legacy"), and refuses a newer one with
 * {@link StoreFormatError} before reading any record: an older program would misread records it
 * does not know (a flag bit, a new record version) instead of failing. A store without the record
 * was written before it existed, in format 1; it gets the record at its next writable open.
 *
 * Format 1: the layout codec.ts describes when the record was introduced (frame records with the
 * clock-unverified flag, leaf records version 0x01, `S` records with boot id and base).
 */
import { metaKey } from "./codec.ts";
import { StoreFormatError, StoreIntegrityError } from "./errors.ts";
import type { Kv } from "./kv.ts";

/** The format this version writes and the newest it reads. */
export const STORE_FORMAT = 1;
export const M_FORMAT = metaKey("format");

/** The store's format (1 when it has no format record); throws when it is newer than this version reads. */
export async function checkStoreFormat(kv: Kv): Promise<{ format: number; recorded: boolean }> {
  const v = await kv.get(M_FORMAT);
  if (v === undefined) return { format: 1, recorded: false };
  if (v.length !== 4)
    throw new StoreIntegrityError(`the store's format record is damaged (${v.length} bytes, not 4)`, [
      `format record of ${v.length} bytes`,
    ]);
  const format = v.readUInt32BE(0);
  if (format > STORE_FORMAT) throw new StoreFormatError(format, STORE_FORMAT);
  return { format, recorded: true };
}

/** The write that records this version's format. */
export function formatRecord(): { type: "put"; key: Buffer; value: Buffer } {
  const value = Buffer.alloc(4);
  value.writeUInt32BE(STORE_FORMAT, 0);
  return { type: "put", key: M_FORMAT, value };
}
