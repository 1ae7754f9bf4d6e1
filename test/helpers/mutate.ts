/**
 * Frame mutators for property tests and the fuzzer. Purely random bytes never pass a CRC,
 * so fuzzing starts from valid frames and mutates them (bit flips, byte writes, truncation,
 * extension, insertion, deletion, length-field edits, CRC-fixed payload edits).
 */
import { crc32 } from "../../gateway/src/protocol/crc32.ts";
import type { Rng } from "../../device-sim/src/rng.ts";

export const MUTATIONS = [
  "flip",
  "write",
  "truncate",
  "extend",
  "insert",
  "delete",
  "length",
  "resealed",
  "nanResealed",
] as const;
export type Mutation = (typeof MUTATIONS)[number];

/** Applies one mutation; "resealed" kinds recompute the CRC so payload checks get exercised. */
export function mutate(frame: Buffer, kind: Mutation, r: Rng): Buffer {
  const b = Buffer.from(frame);
  switch (kind) {
    case "flip": {
      const i = r.int(0, b.length - 1);
      b[i] = b[i]! ^ (1 << r.int(0, 7));
      return b;
    }
    case "write":
      b[r.int(0, b.length - 1)] = r.int(0, 255);
      return b;
    case "truncate":
      return b.subarray(0, r.int(0, b.length - 1));
    case "extend":
      return Buffer.concat([b, r.bytes(r.int(1, 300))]);
    case "insert": {
      const i = r.int(0, b.length);
      return Buffer.concat([b.subarray(0, i), r.bytes(r.int(1, 8)), b.subarray(i)]);
    }
    case "delete": {
      const i = r.int(0, b.length - 1);
      return Buffer.concat([b.subarray(0, i), b.subarray(i + r.int(1, 4))]);
    }
    case "length":
      b.writeUInt16LE(r.int(0, 0xffff), 2);
      return b;
    case "resealed":
    case "nanResealed": {
      if (b.length < 9) return b;
      const crcAt = b.length - 4;
      if (kind === "resealed") {
        const i = r.int(0, crcAt - 1);
        b[i] = r.int(0, 255);
      } else if (crcAt >= 8) {
        b.writeFloatLE(r.chance(0.5) ? NaN : -Infinity, Math.max(4, crcAt - 4));
      }
      b.writeUInt32LE(crc32(b.subarray(0, crcAt)), crcAt);
      return b;
    }
  }
}
