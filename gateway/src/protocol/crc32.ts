import { crc32 as zlibCrc32 } from "node:zlib";

/**
 * CRC-32/ISO-HDLC (poly 0x04C11DB7 reflected, init and xorout 0xFFFFFFFF; check
 * "123456789" → 0xCBF43926), the CRC of Ethernet and zlib. Node's zlib computes it natively
 * (Node ≥ 20.15), which is several times faster than a table in JavaScript, so no library.
 */
export function crc32(data: Uint8Array): number {
  return zlibCrc32(data) >>> 0;
}
