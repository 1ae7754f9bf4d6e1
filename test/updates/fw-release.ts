/**
 * The firmware-agent tests' release: an image as Active release 7 (version 1.1.0) of target
 * sim-mcu, as the chain's record reads, served from the given URIs or by an IPFS gateway (its
 * CIDv1).
 */
import { createHash } from "node:crypto";
import type { ReleaseRecord } from "../../gateway/src/chain/client.ts";
import { cidV1 } from "../../gateway/src/updates/cid.ts";
import { targetId } from "../../gateway/src/updates/release-meta.ts";

/** Release 7 of `image`, fetched from `uris`. */
export function firmwareRelease(image: Uint8Array, uris: string[]): ReleaseRecord {
  return {
    id: 7n,
    kind: "firmware",
    target: targetId("firmware", "sim-mcu"),
    status: "active",
    version: 1_001_000n,
    uris,
    size: BigInt(image.length),
    contentHash: `0x${createHash("sha256").update(image).digest("hex")}`,
    metrics: "",
    approvals: 2,
    proposer: `0x${"11".repeat(20)}`,
  } as ReleaseRecord;
}

/** Release 7 of `image`, served by an IPFS gateway. */
export async function ipfsFirmwareRelease(image: Uint8Array): Promise<ReleaseRecord> {
  return firmwareRelease(image, [`ipfs://${await cidV1(image)}`]);
}
