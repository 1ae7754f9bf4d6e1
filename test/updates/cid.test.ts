// CIDs of files above one chunk, against vectors Kubo publishes in its own test suite.
//
// Kubo (ipfs/kubo, test/cli/cid_profiles_test.go and test/cli/add_test.go) pins the CIDs that
// `ipfs add` prints for files of pseudo-random bytes at the chunker and max-links thresholds of
// its import profiles. The bytes come from test/cli/testutils/random_deterministic.go: the
// ChaCha20 key stream (RFC 8439, 96-bit zero nonce, counter from 0) under key sha256(seed),
// which node:crypto's "chacha20" reproduces with a 16-byte zero IV (4-byte counter ‖ nonce).
//
// No published vector uses exactly `--cid-version=1` with its default 256 KiB chunks (Kubo's
// threshold tests use profiles). So each parameter of KUBO_CIDV1_OPTIONS is checked by a vector in
// which only the other parameters differ: the CIDv1 + raw leaves + 174 links + balanced layout
// against the `test-cid-v1` profile (1 MiB chunks), and the 256 KiB chunks + 174 links + balanced
// layout against `unixfs-v0-2015` (CIDv0, dag-pb leaves), each at and just past its thresholds.
import { createCipheriv, createHash } from "node:crypto";
import { fixedSize } from "ipfs-unixfs-importer/chunker";
import { describe, expect, it } from "vitest";
import { cidV1, KUBO_CIDV1_OPTIONS, unixfsCid } from "../../gateway/src/updates/cid.ts";

const KiB = 1024;
const MiB = 1024 * KiB;

/** Kubo's DeterministicRandomReaderBytes(size, seed), streamed in 1 MiB pieces. */
async function* kuboBytes(size: number, seed: string): AsyncGenerator<Uint8Array> {
  const key = createHash("sha256").update(seed).digest();
  const chacha = createCipheriv("chacha20", key, Buffer.alloc(16));
  for (let left = size; left > 0; left -= MiB) yield chacha.update(Buffer.alloc(Math.min(MiB, left)));
}

/** `--cid-version=1` options with another chunk size (Kubo profile `test-cid-v1`: 1 MiB, 174 links). */
const CIDV1_1MIB = { ...KUBO_CIDV1_OPTIONS, chunker: fixedSize({ chunkSize: MiB }) };
/** `--cid-version=1` options with CIDv0 and dag-pb leaves (Kubo profile `unixfs-v0-2015`: 256 KiB, 174 links). */
const V0_2015 = { ...KUBO_CIDV1_OPTIONS, cidVersion: 0 as const, rawLeaves: false };

describe("CID of multi-chunk files (Kubo vectors)", () => {
  it("behavior: the generator is Kubo's (its vector for one raw 1 MiB leaf is sha256 of these bytes)", async () => {
    // cid_profiles_test.go, unixfs-v1-2025 FileAtChunkSizeCID: 1048576 bytes, seed "chunk-v1-seed".
    const chunks: Uint8Array[] = [];
    for await (const c of kuboBytes(MiB, "chunk-v1-seed")) chunks.push(c);
    const cid = await unixfsCid(Buffer.concat(chunks), CIDV1_1MIB);
    expect(cid.toString()).toBe("bafkreiacndfy443ter6qr2tmbbdhadvxxheowwf75s6zehscklu6ezxmta");
    expect(Buffer.from(cid.multihash.digest)).toEqual(
      createHash("sha256").update(Buffer.concat(chunks)).digest(),
    );
  });

  it("behavior: 256 KiB chunks with 174 links per node (unixfs-v0-2015 thresholds)", async () => {
    // cid_profiles_test.go (unixfsV02015) and add_test.go ("legacy-cid-v0 applies UnixFSChunker=size-262144 and UnixFSFileMaxLinks").
    const cases: Array<[number, string, string]> = [
      [256 * KiB, "chunk-v0-seed", "QmWmRj3dFDZdb6ABvbmKhEL6TmPbAfBZ1t5BxsEyJrcZhE"], // one chunk
      [256 * KiB + 1, "chunk-v0-seed", "QmYyLxtzZyW22zpoVAtKANLRHpDjZtNeDjQdJrcQNWoRkJ"], // two leaves
      [174 * 256 * KiB, "v0-seed", "QmUbBALi174SnogsUzLpYbD4xPiBSFANF4iztWCsHbMKh2"], // 174 links, one layer
      [174 * 256 * KiB + 1, "v0-seed", "QmV81WL765sC8DXsRhE5fJv2rwhS4icHRaf3J9Zk5FdRnW"], // 175 leaves: two layers
      [175 * 256 * KiB, "v0-seed", "QmepeWtdmS1hHXx1oZXsPUv6bMrfRRKfZcoPPU4eEfjnbf"], // "44800KiB"
    ];
    for (const [size, seed, want] of cases)
      expect((await unixfsCid(kuboBytes(size, seed), V0_2015)).toString(), `${size} bytes`).toBe(want);
  });

  it("behavior: CIDv1, raw leaves, 174 links per node, balanced (test-cid-v1 and unixfs-v1-2025 thresholds)", async () => {
    // add_test.go, "test-cid-v1 applies UnixFSChunker=size-1048576": "175MiB", seed "v1-seed",
    // 175 raw leaves over a two-layer balanced DAG (root with 2 links).
    expect((await unixfsCid(kuboBytes(175 * MiB, "v1-seed"), CIDV1_1MIB)).toString()).toBe(
      "bafybeidhd7lo2n2v7lta5yamob3xwhbxcczmmtmhquwhjesi35jntf7mpu",
    );
    // cid_profiles_test.go, unixfs-v1-2025 FileOverChunkSizeCID: 1048577 bytes, dag-pb root over two raw leaves.
    expect((await unixfsCid(kuboBytes(MiB + 1, "chunk-v1-seed"), CIDV1_1MIB)).toString()).toBe(
      "bafybeigmix7t42i6jacydtquhet7srwvgpizfg7gjbq7627d35mjomtu64",
    );
  });

  it("behavior: cidV1 uses exactly those parameters (256 KiB chunks, raw leaves, CIDv1)", async () => {
    // A file of 256 KiB + 1 gets a dag-pb root over two raw leaves, base32 CIDv1.
    const cid = await unixfsCid(kuboBytes(256 * KiB + 1, "chunk-v0-seed"));
    expect(cid.version).toBe(1);
    expect(cid.code).toBe(0x70); // dag-pb
    expect(await cidV1(kuboBytes(256 * KiB + 1, "chunk-v0-seed"))).toBe(cid.toString());
    // One chunk exactly: the raw leaf itself (sha256 of the bytes).
    const one = await unixfsCid(kuboBytes(256 * KiB, "chunk-v0-seed"));
    expect(one.code).toBe(0x55); // raw
  });
});
