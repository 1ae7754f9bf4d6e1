/** The manifest a model release pins in its metrics (updates/README.md, "metrics"): shape checks. */
import { describe, expect, it } from "vitest";
import { parseModelMeta } from "../../gateway/src/updates/release-meta.ts";

const SHA = "ab".repeat(32);
const CID = "bafkreiacndfy443ter6qr2tmbbdhadvxxheowwf75s6zehscklu6ezxmta";
const meta = (m: Record<string, unknown>) =>
  JSON.stringify({ manifest: { file: "m.manifest.json", sha256: SHA, cid: CID, ...m } });

describe("parseModelMeta", () => {
  it("behavior: a manifest pinned by file, sha256 and CIDv1 (base32) is read", () => {
    expect(parseModelMeta(meta({})).manifest).toEqual({ file: "m.manifest.json", sha256: SHA, cid: CID });
  });

  it.each([
    ["a cid that is no CID", { cid: "not-a-cid" }],
    ["a CIDv0 (base58, Qm…)", { cid: "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG" }],
    ["an upper-case cid", { cid: CID.toUpperCase() }],
    ["no cid", { cid: undefined }],
    ["a file name with a slash", { file: "../m.manifest.json" }],
    ["an upper-case sha256", { sha256: SHA.toUpperCase() }],
  ])("error: %s is MANIFEST_INVALID (refused and remembered, not fetched again)", (_n, m) => {
    expect(() => parseModelMeta(meta(m))).toThrow(expect.objectContaining({ code: "MANIFEST_INVALID" }));
  });
});
