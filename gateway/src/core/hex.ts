/** Hex strings and bytes: one home for the conversions every stage needs. */

/** A 0x-prefixed hex string. */
export type Hex = `0x${string}`;

/**
 * Decodes 0x-prefixed, even-length hex. Throws TypeError for malformed hex and RangeError when
 * `expectedLength` is given and differs; both name `field`.
 */
export function hexToBytes(hex: string, expectedLength?: number, field = "value"): Uint8Array {
  if (!/^0x([0-9a-fA-F]{2})*$/.test(hex))
    throw new TypeError(`${field}: expected 0x-prefixed even-length hex`);
  const out = Uint8Array.from(Buffer.from(hex.slice(2), "hex"));
  if (expectedLength !== undefined && out.length !== expectedLength) {
    throw new RangeError(`${field}: expected ${expectedLength} bytes, got ${out.length}`);
  }
  return out;
}

/** Lower-case 0x-prefixed hex of `bytes`. */
export function bytesToHex(bytes: Uint8Array): Hex {
  return `0x${Buffer.from(bytes).toString("hex")}`;
}

/**
 * True for a 20-byte account or contract address: 0x and 40 hex digits, either case. The
 * EIP-55 checksum of mixed-case input is not checked; every caller compares addresses in lower
 * case.
 */
export function isAddress(s: unknown): s is Hex {
  return typeof s === "string" && /^0x[0-9a-fA-F]{40}$/.test(s);
}
