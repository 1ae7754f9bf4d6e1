/**
 * Merkle tree compatible with OpenZeppelin's `MerkleProof.verify` (commutative keccak256 of
 * sorted pairs) and laid out exactly like `@openzeppelin/merkle-tree`'s `SimpleMerkleTree`
 * with `sortLeaves: false`: an array of 2n−1 nodes, root at 0, children of i at 2i+1 and
 * 2i+2, leaf i at position 2n−2−i. Same leaves in the same order give the same root and the
 * same proofs as that library (checked in test/attest/merkle.test.ts), without its hex
 * strings: nodes live in one Uint32Array (8 words per node) and each internal node costs
 * one keccak permutation.
 */
import { hashNodePair } from "../core/keccak.ts";

export class MerkleTree {
  /** 8 little-endian u32 words per node (the node's 32 bytes in order). */
  readonly nodes: Uint32Array;
  readonly leafCount: number;

  /** Wraps finished nodes; use {@link MerkleTree.fromPacked} or {@link MerkleBuilder}. */
  constructor(nodes: Uint32Array, leafCount: number) {
    this.nodes = nodes;
    this.leafCount = leafCount;
  }

  /** Builds from leaves packed in one buffer of 32·n bytes (leaf i at bytes 32i..32i+31). */
  static fromPacked(leaves: Uint8Array): MerkleTree {
    const builder = new MerkleBuilder(leaves);
    builder.step(Infinity);
    return builder.result();
  }

  static fromLeaves(leaves: readonly Uint8Array[]): MerkleTree {
    const packed = new Uint8Array(32 * leaves.length);
    leaves.forEach((l, i) => {
      if (l.length !== 32) throw new RangeError(`leaf ${i} must be 32 bytes, is ${l.length}`);
      packed.set(l, 32 * i);
    });
    return MerkleTree.fromPacked(packed);
  }

  get root(): Uint8Array {
    return this.node(0);
  }

  node(i: number): Uint8Array {
    return new Uint8Array(this.nodes.buffer, this.nodes.byteOffset + 32 * i, 32).slice();
  }

  leaf(i: number): Uint8Array {
    return this.node(this.nodes.length / 8 - 1 - i);
  }

  /** Sibling path from leaf `i` to the root, as accepted by `MerkleProof.verify`. */
  proof(i: number): Uint8Array[] {
    if (!Number.isInteger(i) || i < 0 || i >= this.leafCount)
      throw new RangeError(`leaf index ${i} is outside 0..${this.leafCount - 1}`);
    const out: Uint8Array[] = [];
    let k = this.nodes.length / 8 - 1 - i;
    while (k > 0) {
      out.push(this.node(k % 2 === 1 ? k + 1 : k - 1));
      k = Math.floor((k - 1) / 2);
    }
    return out;
  }
}

/**
 * Builds a tree in slices so a caller on the event loop can yield between them
 * (`step(maxHashes)` returns true when done).
 */
export class MerkleBuilder {
  private readonly nodes: Uint32Array;
  private readonly n: number;
  private next: number;

  constructor(packedLeaves: Uint8Array) {
    if (packedLeaves.length === 0 || packedLeaves.length % 32 !== 0)
      throw new RangeError("leaves must be a non-empty multiple of 32 bytes");
    const n = packedLeaves.length / 32;
    const total = 2 * n - 1;
    this.n = n;
    this.nodes = new Uint32Array(8 * total);
    const bytes = new Uint8Array(this.nodes.buffer);
    for (let i = 0; i < n; i++) bytes.set(packedLeaves.subarray(32 * i, 32 * i + 32), 32 * (total - 1 - i));
    this.next = total - 1 - n;
  }

  /** Hashes up to `maxHashes` internal nodes; true when the root is done. */
  step(maxHashes: number): boolean {
    const nodes = this.nodes;
    let i = this.next;
    const stop = Math.max(-1, i - maxHashes);
    for (; i > stop; i--) {
      const l = 2 * i + 1;
      const r = l + 1;
      if (lessOrEqual(nodes, l, r)) hashNodePair(nodes, l, r, i);
      else hashNodePair(nodes, r, l, i);
    }
    this.next = i;
    return i < 0;
  }

  result(): MerkleTree {
    if (this.next >= 0) throw new Error("MerkleBuilder.result() before the tree is complete");
    return new MerkleTree(this.nodes, this.n);
  }
}

/** Byte-wise comparison of nodes a and b (big-endian order of their bytes). */
function lessOrEqual(nodes: Uint32Array, a: number, b: number): boolean {
  const ao = a * 8;
  const bo = b * 8;
  for (let k = 0; k < 8; k++) {
    const x = nodes[ao + k]!;
    const y = nodes[bo + k]!;
    if (x !== y) {
      // Words are little-endian: byte-wise order is the order of the byte-swapped words.
      const xs = ((x & 0xff) << 24) | ((x & 0xff00) << 8) | ((x >>> 8) & 0xff00) | (x >>> 24);
      const ys = ((y & 0xff) << 24) | ((y & 0xff00) << 8) | ((y >>> 8) & 0xff00) | (y >>> 24);
      return xs >>> 0 < ys >>> 0;
    }
  }
  return true;
}

/** Recomputes a root from a leaf and its proof (OpenZeppelin `MerkleProof.processProof`). */
export function processProof(leaf: Uint8Array, proof: readonly Uint8Array[]): Uint8Array {
  const nodes = new Uint32Array(8 * 3);
  const bytes = new Uint8Array(nodes.buffer);
  bytes.set(leaf, 0);
  for (const p of proof) {
    if (p.length !== 32) throw new RangeError("proof elements must be 32 bytes");
    bytes.set(p, 32);
    if (lessOrEqual(nodes, 0, 1)) hashNodePair(nodes, 0, 1, 2);
    else hashNodePair(nodes, 1, 0, 2);
    bytes.copyWithin(0, 64, 96);
  }
  return bytes.slice(0, 32);
}
