import { describe, expect, it } from "vitest";
import { readSources, hashSources, solcVersion } from "../../contracts/scripts/compile.ts";
import { SOURCES_HASH } from "../../contracts/artifacts/index.ts";
import {
  ZERO_HASH,
  assertBatchHeader,
  chainHead,
  hashBatchHeader,
  nextHead,
  vigilDomain,
  type BatchHeader,
} from "../../gateway/src/chain/eip712.ts";
import { toCompactSignature } from "../../gateway/src/chain/signature.ts";
import {
  generateKey,
  importKey,
  p256PublicKey,
  secp256k1Address,
  signP256,
  signSecp256k1,
} from "../../gateway/src/chain/keys.ts";

const h: BatchHeader = {
  gatewayId: `0x${"11".repeat(32)}`,
  seq: 1n,
  prevHead: ZERO_HASH,
  root: `0x${"22".repeat(32)}`,
  leafCount: 3,
  firstTimestamp: 1n,
  lastTimestamp: 2n,
  modelHash: ZERO_HASH,
};

describe("eip712 + keys", () => {
  it("behavior: committed artifacts were built from the current contracts/src (run npm run build:contracts)", () => {
    expect(SOURCES_HASH).toBe(hashSources(readSources(), solcVersion()));
  });

  it("behavior: nextHead is keccak256(prevHead ‖ hashStruct(header))", () => {
    expect(nextHead(ZERO_HASH, h)).toBe(chainHead(ZERO_HASH, hashBatchHeader(h)));
    expect(nextHead(ZERO_HASH, h)).not.toBe(nextHead(ZERO_HASH, { ...h, seq: 2n }));
  });

  it("args: header fields are range-checked with the field named", () => {
    expect(() => assertBatchHeader({ ...h, seq: 1n << 64n })).toThrow(/seq/);
    expect(() => assertBatchHeader({ ...h, leafCount: 2 ** 32 })).toThrow(/leafCount/);
    expect(() => assertBatchHeader({ ...h, root: "0x12" })).toThrow(/root/);
    expect(() => vigilDomain(1n, "0x1234")).toThrow(/verifyingContract/);
  });

  it("behavior: known-answer keys (anvil dev key #0) and signature encodings", () => {
    expect(secp256k1Address("0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")).toBe(
      "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
    );
    const digest = `0x${"ab".repeat(32)}` as const;
    const k = generateKey("secp256k1");
    const sig = signSecp256k1(digest, k.privateKey);
    expect(sig.length).toBe(2 + 130);
    expect([27, 28]).toContain(Number.parseInt(sig.slice(130), 16));
    const compact = toCompactSignature(sig);
    expect(BigInt(compact.vs) & ((1n << 255n) - 1n)).toBe(BigInt(`0x${sig.slice(66, 130)}`));
    const p = generateKey("p256");
    const ps = signP256(digest, p.privateKey);
    expect(ps.length).toBe(2 + 128);
    const pN = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
    expect(BigInt(`0x${ps.slice(66)}`) <= pN / 2n).toBe(true);
    expect(p256PublicKey(p.privateKey).x).toMatch(/^0x[0-9a-f]{64}$/);
    expect(() => importKey("secp256k1", `0x${"00".repeat(32)}`)).toThrow(RangeError);
  });
});
