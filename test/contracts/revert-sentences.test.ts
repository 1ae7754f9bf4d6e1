// Every custom error a Vigil contract can revert with has a sentence (contracts/README.md documents the
// same errors), and ContractRevertError carries it.
import { id as keccakId } from "ethers";
import { describe, expect, it } from "vitest";
import * as artifacts from "../../contracts/artifacts/index.ts";
import { ContractRevertError, TRANSLATED_ERRORS, revertSentence } from "../../gateway/src/chain/errors.ts";

const errorsOf = (abi: readonly unknown[]): string[] =>
  (abi as { type: string; name?: string }[]).filter((e) => e.type === "error").map((e) => e.name ?? "");

describe("revert sentences", () => {
  const all: [string, readonly unknown[]][] = [];
  for (const [name, value] of Object.entries(artifacts as Record<string, unknown>))
    if (typeof value === "object" && value !== null && "abi" in value)
      all.push([name, (value as { abi: readonly unknown[] }).abi]);

  it("behavior: every custom error of every contract artifact has a sentence", () => {
    expect(all.map(([k]) => k).sort()).toEqual(
      ["VigilMaintenanceEscrowArtifact", "VigilRegistryArtifact", "VigilReleasesArtifact"].sort(),
    );
    for (const [name, abi] of all) {
      const missing = errorsOf(abi).filter((e) => !TRANSLATED_ERRORS.includes(e));
      expect(missing, `${name}: errors without a sentence`).toEqual([]);
    }
  });

  it("behavior: sentences name roles, statuses and kinds, and the error keeps its raw form", () => {
    const gw = `0x${"ab".repeat(32)}`;
    const e = new ContractRevertError("UnexpectedSequence", [gw, 3n, 5n]);
    expect(e.sentence).toBe(
      `batch seq 5 of gateway ${gw} is not the next one (expected 3): replayed or skipped`,
    );
    expect(e.shortMessage).toBe(`${e.sentence} (UnexpectedSequence(${gw}, 3, 5))`);
    expect(revertSentence("MissingRole", ["0x01", keccakId("VIGIL_RELEASE_APPROVER")])).toBe(
      "account 0x01 lacks the releaseApprover role in the registry",
    );
    expect(revertSentence("AccessControlUnauthorizedAccount", ["0x01", `0x${"00".repeat(32)}`])).toBe(
      "account 0x01 lacks the default admin role",
    );
    expect(revertSentence("GatewayNotActive", [gw, 3n])).toBe(`gateway ${gw} is not active (it is revoked)`);
    expect(revertSentence("ReleaseNotInStatus", [7n, 2n])).toBe(
      "release 7 is active, which does not allow this",
    );
    expect(revertSentence("VersionStepTooLarge", [1n, gw, 0n, 2n ** 64n - 1n])).toContain(
      "more than MAX_VERSION_STEP (2^32) above 0, the latest firmware version",
    );
    expect(revertSentence("NoSuchError", [])).toBe("the contract reverted with NoSuchError");
    expect(revertSentence("unknown", ["0xdeadbeef"])).toBe("the contract reverted without a known error");
  });
});
