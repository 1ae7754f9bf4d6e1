/**
 * The committed receipt vectors (test/vectors/receipts.json): the gateway still produces exactly
 * these bytes, and every value is recomputed here independently, from RECEIPTS.md's rules with
 * ethers and noble primitives (not the gateway's leaf, Merkle or EIP-712 code): leaf preimage and
 * its padding, leaf, proof length, root, hashStruct, domain separator, digest, head, signature.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { TypedDataEncoder, concat, getBytes, keccak256, recoverAddress, Signature } from "ethers";
import { p256 } from "@noble/curves/nist.js";
import { signDigest, importKey } from "../../gateway/src/chain/keys.ts";
import { verifyReceipt } from "../../gateway/src/attest/verify.ts";
import type { AnyReceipt } from "../../gateway/src/attest/receipt.ts";
import { VECTORS_FILE, buildVectors, leafFieldsOf, type VectorFile } from "./receipts.ts";

const file = JSON.parse(readFileSync(VECTORS_FILE, "utf8")) as VectorFile;
const trust = {
  chainId: BigInt(file.trust.chainId),
  registry: file.trust.registry,
  gatewayId: file.trust.gatewayId,
};

const u = (v: number | bigint, bytes: number): string =>
  BigInt(v)
    .toString(16)
    .padStart(2 * bytes, "0");
const f32 = (v: number): string => {
  const dv = new DataView(new ArrayBuffer(4));
  dv.setFloat32(0, v);
  return u(dv.getUint32(0), 4);
};
/** RECEIPTS.md "Leaf": one 0x00 pad byte when tag ‖ body has even length. */
const padded = (hex: string): string => ((hex.length / 2) % 2 === 0 ? `${hex}00` : hex);

function preimageFromFields(r: AnyReceipt): string {
  if (r.kind === "frame")
    return "0x" + padded(`01${u(r.frame.seq, 8)}${u(r.frame.receivedUs, 8)}${r.frame.raw.slice(2)}`);
  const x = leafFieldsOf(r);
  const head = `${x.modelHash.slice(2)}${x.inputWindowHash.slice(2)}${x.deviceId}${u(x.timestampUs, 8)}`;
  if (r.kind === "inference") {
    // RECEIPTS.md: a JSON 0 stands for either zero, a null for NaN or ±Inf; the preimage holds the
    // exact value. Such an output is taken from the preimage once it is checked to be one of those.
    const at = 2 + 2 * (1 + 32 + 32 + 4 + 8 + 2); // hex offset of the first output in the preimage
    const outs = r.inference.outputs.map((o, i) => {
      const exact = x.preimage.slice(at + 8 * i, at + 8 * (i + 1));
      const v = Buffer.from(exact, "hex").readFloatBE(0);
      if (o === null) expect(Number.isFinite(v), `output ${i} is null: NaN or ±Inf`).toBe(false);
      else if (o === 0) expect(v === 0, `output ${i} is 0: +0 or −0`).toBe(true);
      else return f32(o);
      return exact;
    });
    return "0x" + padded(`02${head}${u(r.inference.outputs.length, 2)}${outs.join("")}`);
  }
  // ALERT (0x03) and SENSOR_FAULT (0x04) share one layout.
  const a = r.kind === "alert" ? r.alert : r.sensorFault;
  const tag = r.kind === "alert" ? "03" : "04";
  const rule = Buffer.from(a.rule, "ascii").toString("hex");
  return "0x" + padded(`${tag}${head}${u(a.severity, 1)}${u(a.rule.length, 1)}${rule}${f32(a.score)}`);
}

const TYPES = {
  BatchHeader: [
    { name: "gatewayId", type: "bytes32" },
    { name: "seq", type: "uint64" },
    { name: "prevHead", type: "bytes32" },
    { name: "root", type: "bytes32" },
    { name: "leafCount", type: "uint32" },
    { name: "firstTimestamp", type: "uint64" },
    { name: "lastTimestamp", type: "uint64" },
    { name: "modelHash", type: "bytes32" },
  ],
};

describe("receipt vectors (test/vectors/receipts.json)", () => {
  it("behavior: the gateway produces exactly the committed vectors (regenerate only on purpose: npx tsx test/vectors/receipts.ts)", async () => {
    expect(JSON.parse(JSON.stringify(await buildVectors()))).toEqual(file);
  });

  it("behavior: frame, inference and alert vectors exist for both key types, and the padding rule is exercised", () => {
    for (const kt of ["secp256k1", "p256"])
      for (const kind of ["frame", "inference", "alert"])
        expect(
          file.vectors.some((v) => v.keyType === kt && v.kind === kind),
          `${kind} ${kt}`,
        ).toBe(true);
    const lens = file.vectors.map((v) => v.expect.leafPreimage.length / 2 - 1);
    expect(lens.every((n) => n % 2 === 1)).toBe(true); // always odd: never a 64-byte node preimage
    // An ALERT with a 7-character rule has an even body: it carries the pad byte.
    expect(file.vectors.some((v) => v.kind === "alert" && v.expect.leafPreimage.endsWith("00"))).toBe(true);
  });

  it.each(file.vectors.map((v) => [v.name, v] as const))(
    "behavior: %s recomputed independently",
    async (_n, v) => {
      const r = v.receipt;
      const e = v.expect;
      // Leaf
      const pre = preimageFromFields(r);
      expect(pre).toBe(e.leafPreimage);
      if (r.kind !== "frame") expect(leafFieldsOf(r).preimage).toBe(pre);
      expect(keccak256(pre)).toBe(e.leaf);
      expect(r.leaf).toBe(e.leaf);
      // Proof: sorted-pair keccak (OpenZeppelin MerkleProof), length from the leaf's position
      let node = r.leaf;
      for (const s of r.proof) node = keccak256(node < s ? concat([node, s]) : concat([s, node]));
      expect(node).toBe(e.root);
      expect(r.batch.header.root).toBe(e.root);
      const n = r.batch.header.leafCount;
      expect(r.proof.length).toBe(Math.floor(Math.log2(2 * n - 1 - r.leafIndex)));
      expect(r.proof.length).toBe(e.proofLength);
      // EIP-712
      const h = r.batch.header;
      const domain = {
        name: r.batch.domain.name,
        version: r.batch.domain.version,
        chainId: r.batch.domain.chainId,
        verifyingContract: r.batch.domain.verifyingContract,
      };
      expect(TypedDataEncoder.hashStruct("BatchHeader", TYPES, h)).toBe(e.structHash);
      expect(TypedDataEncoder.hashDomain(domain)).toBe(e.domainSeparator);
      expect(TypedDataEncoder.hash(domain, TYPES, h)).toBe(e.digest);
      expect(r.batch.digest).toBe(e.digest);
      expect(keccak256(concat([h.prevHead, e.structHash]))).toBe(e.head);
      expect(r.batch.head).toBe(e.head);
      // Signature
      const key = file.keys[v.keyType];
      expect(r.batch.signer.publicKey).toBe(key.publicKey);
      if (v.keyType === "secp256k1") {
        expect(recoverAddress(e.digest, Signature.from(r.batch.signature)).toLowerCase()).toBe(key.publicKey);
        expect(r.batch.signer.address?.toLowerCase()).toBe(key.publicKey);
      } else {
        const sig = getBytes(r.batch.signature);
        expect(sig).toHaveLength(64);
        expect(
          p256.verify(sig, getBytes(e.digest), getBytes(`0x04${key.publicKey.slice(2)}`), {
            prehash: false,
            lowS: true,
          }),
        ).toBe(true);
      }
      // RFC 6979: signing again gives the same bytes.
      expect(
        signDigest(importKey(v.keyType, key.privateKey as `0x${string}`), e.digest as `0x${string}`),
      ).toBe(r.batch.signature);
      // And the reference verifier agrees.
      expect(await verifyReceipt(r, { trust })).toMatchObject({ ok: true });
    },
  );

  it.each(file.invalid.map((v) => [v.name, v] as const))(
    "error: invalid vector %s fails with its reason",
    async (_n, v) => {
      expect(await verifyReceipt(v.receipt, { trust })).toMatchObject({ ok: false, reason: v.reason });
    },
  );
});
