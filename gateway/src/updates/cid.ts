/**
 * IPFS content identifiers of release files, computed the way `ipfs add --cid-version=1` (Kubo)
 * does by default: UnixFS file, fixed-size chunks of 256 KiB, raw leaves, balanced DAG with at most
 * 174 links per node, sha2-256, CIDv1 in base32. A file of one chunk is its raw leaf
 * (`bafkrei…`, = sha256 of the bytes); larger files get a dag-pb root (`bafybei…`).
 *
 * Built on ipfs-unixfs-importer (the importer of js-ipfs/Helia) with those options pinned, since its
 * own defaults have changed across majors; only the CID is kept (blocks are discarded).
 */
import { createReadStream } from "node:fs";
import { importByteStream, importBytes, type ImporterOptions } from "ipfs-unixfs-importer";
import { fixedSize } from "ipfs-unixfs-importer/chunker";
import { balanced } from "ipfs-unixfs-importer/layout";
import { CID } from "multiformats/cid";

/** Kubo's `ipfs add` defaults with `--cid-version=1` (which implies `--raw-leaves`). */
export const KUBO_CIDV1_OPTIONS: ImporterOptions = {
  cidVersion: 1,
  rawLeaves: true,
  reduceSingleLeafToSelf: true,
  chunker: fixedSize({ chunkSize: 262_144 }),
  layout: balanced({ maxChildrenPerNode: 174 }),
  wrapWithDirectory: false,
};

/** A blockstore that keeps nothing: only the root CID is wanted. */
const nullBlockstore = {
  put: async (cid: CID) => cid,
  has: async () => false,
} as unknown as Parameters<typeof importBytes>[1];

/** CIDv1 (base32) of a byte stream, as `ipfs add --cid-version=1` prints it. */
export async function cidV1(content: AsyncIterable<Uint8Array> | Uint8Array): Promise<string> {
  return (await unixfsCid(content)).toV1().toString();
}

/**
 * Root CID of `content` imported as a UnixFS file with `options` (default
 * {@link KUBO_CIDV1_OPTIONS}). Other options reproduce Kubo's other import profiles; the tests
 * check this function against Kubo's published vectors of those profiles (test/updates/cid.test.ts).
 */
export async function unixfsCid(
  content: AsyncIterable<Uint8Array> | Uint8Array,
  options: ImporterOptions = KUBO_CIDV1_OPTIONS,
): Promise<CID> {
  const r =
    content instanceof Uint8Array
      ? await importBytes(content, nullBlockstore, options)
      : await importByteStream(content, nullBlockstore, options);
  return r.cid;
}

/** CIDv1 of a file, streamed. */
export function cidV1OfFile(path: string): Promise<string> {
  return cidV1(createReadStream(path));
}

/**
 * Parses the CID of an `ipfs://CID[/path]` URI; undefined for a malformed one. Paths inside a
 * directory are not supported (a release names its file's own CID).
 */
export function parseIpfsUri(uri: string): CID | undefined {
  const m = /^ipfs:\/\/([A-Za-z0-9]+)\/?$/.exec(uri);
  if (!m) return undefined;
  try {
    return CID.parse(m[1]!);
  } catch {
    return undefined;
  }
}
