/** core/hex.ts: the address check every stage shares (deployment files, EIP-712, tokens, CLI flags). */
import { describe, expect, it } from "vitest";
import { bytesToHex, hexToBytes, isAddress } from "../../gateway/src/core/hex.ts";

describe("isAddress", () => {
  it("input: 0x and exactly 40 hex digits, either case", () => {
    expect(isAddress(`0x${"ab".repeat(20)}`)).toBe(true);
    expect(isAddress(`0x${"AB".repeat(20)}`)).toBe(true);
    expect(isAddress("0x5FbDB2315678afecb367f032d93F642f64180aa3")).toBe(true);
  });

  it("input: refuses near misses and non-strings", () => {
    for (const v of [
      `0x${"ab".repeat(19)}`, // 19 bytes
      `0x${"ab".repeat(21)}`, // 21 bytes
      `0X${"ab".repeat(20)}`, // capital X
      `${"ab".repeat(20)}`, // no prefix
      `0x${"ab".repeat(19)}ag`, // not hex
      ` 0x${"ab".repeat(20)}`, // leading space
      `0x${"ab".repeat(20)}\n`, // trailing newline
      "vitalik.eth",
      "",
      undefined,
      null,
      42,
      { address: `0x${"ab".repeat(20)}` },
    ])
      expect(isAddress(v), String(v)).toBe(false);
  });
});

describe("hexToBytes / bytesToHex", () => {
  it("input: round-trips and names the field on a length mismatch", () => {
    const b = Uint8Array.from([0, 1, 254, 255]);
    expect(hexToBytes(bytesToHex(b))).toEqual(b);
    expect(() => hexToBytes("0x0001", 3, "key")).toThrow(/^key: expected 3 bytes, got 2$/);
    expect(() => hexToBytes("0x123", undefined, "key")).toThrow(TypeError);
  });
});
