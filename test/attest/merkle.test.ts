import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { keccak_256, keccakP } from "@noble/hashes/sha3.js";
import { SimpleMerkleTree } from "@openzeppelin/merkle-tree";
import { keccak256, keccakBackend, keccakF1600 } from "../../gateway/src/core/keccak.ts";
import { instantiateKeccakWasm } from "../../gateway/src/core/keccak-wasm.ts";
import { MerkleTree, processProof } from "../../gateway/src/attest/merkle.ts";
import {
  frameLeaf,
  frameLeafPreimage,
  inferenceLeafPreimage,
  alertLeafPreimage,
  leafFromPreimage,
} from "../../gateway/src/core/leaf.ts";

const hex = (b: Uint8Array): string => "0x" + Buffer.from(b).toString("hex");

// Keccak round constants (FIPS 202 §3.2.5) as (low, high) halves, independent of keccak.ts.
const RC_FOR_TEST = new Int32Array(
  [
    "0000000000000001",
    "0000000000008082",
    "800000000000808a",
    "8000000080008000",
    "000000000000808b",
    "0000000080000001",
    "8000000080008081",
    "8000000000008009",
    "000000000000008a",
    "0000000000000088",
    "0000000080008009",
    "000000008000000a",
    "000000008000808b",
    "800000000000008b",
    "8000000000008089",
    "8000000000008003",
    "8000000000008002",
    "8000000000000080",
    "000000000000800a",
    "800000008000000a",
    "8000000080008081",
    "8000000000008080",
    "0000000080000001",
    "8000000080008008",
  ].flatMap((h) => [parseInt(h.slice(8), 16) | 0, parseInt(h.slice(0, 8), 16) | 0]),
);

describe("keccak256", () => {
  it("known answers: empty string and 'abc' (Ethereum keccak, not SHA3)", () => {
    expect(hex(keccak256(new Uint8Array()))).toBe(
      "0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470",
    );
    expect(hex(keccak256(Buffer.from("abc")))).toBe(
      "0x4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45",
    );
  });
  it("behavior: the WebAssembly permutation is in use on Node (unless VIGIL_KECCAK=js)", () => {
    expect(keccakBackend).toBe(process.env.VIGIL_KECCAK === "js" ? "js" : "wasm");
  });
  it("property: both permutations (WebAssembly and 32-bit JS) equal @noble/hashes keccakP", () => {
    const wasm = instantiateKeccakWasm(RC_FOR_TEST)!;
    fc.assert(
      fc.property(fc.uint32Array({ minLength: 50, maxLength: 50 }), (words) => {
        const ref = Uint32Array.from(words);
        keccakP(ref);
        const js = Uint32Array.from(words);
        keccakF1600(js);
        wasm.state.set(words);
        wasm.permute();
        return ref.every((w, i) => w === js[i] && w === wasm.state[i]);
      }),
      { numRuns: 200 },
    );
  });
  it("property: equals @noble/hashes keccak_256 for any input up to 3 blocks", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 420 }), (d) => hex(keccak256(d)) === hex(keccak_256(d))),
      { numRuns: 300 },
    );
  });
});

describe("leaves", () => {
  it("behavior: every leaf preimage has odd length (never a 64-byte node preimage)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 8, maxLength: 248 }), fc.nat(), fc.nat(), (raw, seq, rx) => {
        const p = frameLeafPreimage({ seq, receivedUs: rx, raw: Buffer.from(raw) });
        return (
          p.length % 2 === 1 &&
          p[0] === 1 &&
          hex(frameLeaf({ seq, receivedUs: rx, raw: Buffer.from(raw) })) === hex(keccak_256(p))
        );
      }),
    );
    const z = new Uint8Array(32);
    expect(
      inferenceLeafPreimage({
        modelHash: z,
        inputWindowHash: z,
        deviceId: 1,
        timestampUs: 2,
        outputs: [0.5, 1],
      }).length % 2,
    ).toBe(1);
    expect(
      alertLeafPreimage({
        modelHash: z,
        inputWindowHash: z,
        deviceId: 1,
        timestampUs: 2,
        severity: 2,
        rule: "vib_high",
        score: 0.9,
      }).length % 2,
    ).toBe(1);
    expect(() => leafFromPreimage(new Uint8Array(64))).toThrow(RangeError);
  });

  it("behavior: INFERENCE/ALERT preimages equal an independent DataView encoding, stay separate and zero-padded", () => {
    // Reference layout from the leaf.ts header, written with a DataView into a fresh buffer.
    const reference = (
      kind: number,
      mh: Uint8Array,
      wh: Uint8Array,
      dev: number,
      ts: number,
      tail: number[],
    ) => {
      const n = 77 + tail.length;
      const b = new Uint8Array(n % 2 === 1 ? n : n + 1);
      const dv = new DataView(b.buffer);
      b[0] = kind;
      b.set(mh, 1);
      b.set(wh, 33);
      dv.setUint32(65, dev);
      dv.setBigUint64(69, BigInt(ts));
      b.set(tail, 77);
      return b;
    };
    const f32be = (v: number): number[] => {
      const b = new Uint8Array(4);
      new DataView(b.buffer).setFloat32(0, v);
      return [...b];
    };
    const made: Array<[Uint8Array, Uint8Array]> = [];
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.nat({ max: 0xffffffff }),
        fc.nat(),
        fc.array(fc.float({ noNaN: true }), { maxLength: 40 }),
        fc.constantFrom("rul-warning", "score-high", "x"),
        (mh, wh, dev, ts, outs, rule) => {
          const inf = inferenceLeafPreimage({
            modelHash: mh,
            inputWindowHash: wh,
            deviceId: dev,
            timestampUs: ts,
            outputs: outs,
          });
          const count = [outs.length >> 8, outs.length & 0xff];
          const infRef = reference(2, mh, wh, dev, ts, [...count, ...outs.flatMap(f32be)]);
          const score = outs[0] ?? 0.25;
          const al = alertLeafPreimage({
            modelHash: mh,
            inputWindowHash: wh,
            deviceId: dev,
            timestampUs: ts,
            severity: 2,
            rule,
            score,
          });
          const alRef = reference(3, mh, wh, dev, ts, [
            2,
            rule.length,
            ...Buffer.from(rule, "ascii"),
            ...f32be(score),
          ]);
          made.push([inf, infRef], [al, alRef]);
          return hex(inf) === hex(infRef) && hex(al) === hex(alRef);
        },
      ),
      { numRuns: 2000 },
    );
    // Thousands of preimages share slabs: none was overwritten by a later one.
    for (const [p, ref] of made) expect(hex(p)).toBe(hex(ref));
  });
});

describe("MerkleTree", () => {
  const leaves = (n: number): Uint8Array[] =>
    Array.from({ length: n }, (_, i) => keccak_256(Uint8Array.of(1, i & 0xff, i >> 8)));
  it.each([1, 2, 3, 4, 5, 7, 8, 33, 100])(
    "behavior: root and proofs equal @openzeppelin/merkle-tree SimpleMerkleTree (%i leaves)",
    (n) => {
      const ls = leaves(n);
      const oz = SimpleMerkleTree.of(ls, { sortLeaves: false });
      const t = MerkleTree.fromLeaves(ls);
      expect(hex(t.root)).toBe(oz.root);
      for (let i = 0; i < n; i++) {
        expect(t.proof(i).map(hex)).toEqual(oz.getProof(i));
        expect(hex(processProof(ls[i]!, t.proof(i)))).toBe(oz.root);
        expect(SimpleMerkleTree.verify(oz.root, ls[i]!, t.proof(i))).toBe(true);
      }
    },
  );
  it("error: a changed proof element or leaf gives another root", () => {
    const ls = leaves(9);
    const t = MerkleTree.fromLeaves(ls);
    const p = t.proof(4);
    p[1] = Uint8Array.from(p[1]!, (b, i) => (i === 0 ? b ^ 1 : b));
    expect(hex(processProof(ls[4]!, p))).not.toBe(hex(t.root));
    expect(() => t.proof(9)).toThrow(RangeError);
  });
});
