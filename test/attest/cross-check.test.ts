/** How cross-checked endpoints' verdicts combine (attest/cross-check.ts `agree`), rule by rule. */
import { describe, expect, it } from "vitest";
import { agree, type EndpointVerdict } from "../../gateway/src/attest/cross-check.ts";
import type { VerifyFailure, VerifyResult } from "../../gateway/src/attest/verify.ts";

const pass = (
  o: { tx?: string; block?: number; confirmations?: number; finalized?: boolean; site?: string } = {},
): VerifyResult => ({
  ok: true,
  steps: [{ step: "anchor", ok: true, detail: "in block" }],
  anchored: {
    checked: true,
    chainId: 31337,
    contract: "0x" + "11".repeat(20),
    txHash: o.tx ?? "0x" + "aa".repeat(32),
    blockNumber: o.block ?? 100,
    confirmations: o.confirmations ?? 5,
    finalized: o.finalized ?? true,
  },
  checkedAgainst: {
    registry: "0x" + "11".repeat(20),
    chainId: 31337,
    source: null,
    gatewayId: "0x" + "77".repeat(32),
    gatewayPinned: false,
    site: o.site ?? "0x" + "51".repeat(32),
    sitePinned: false,
    siteName: null,
    onChain: true,
    signer: "registered",
  },
});
const fail = (reason: VerifyFailure, message = `${reason} here`): VerifyResult => ({
  ok: false,
  reason,
  message,
  steps: [],
});
const at = (...results: VerifyResult[]): EndpointVerdict[] =>
  results.map((result, i) => ({ endpoint: `http://rpc${i + 1}/`, result }));

describe("agree: cross-checked verdicts", () => {
  it("behavior: the same anchor everywhere passes, with the fewest confirmations and finalized only when all say so", () => {
    const r = agree(at(pass({ confirmations: 9 }), pass({ confirmations: 4, finalized: false })));
    expect(r).toMatchObject({ ok: true, anchored: { confirmations: 4, finalized: false } });
    expect(r.steps.at(-1)).toEqual({
      step: "cross-check",
      ok: true,
      detail: "2 endpoints agree: http://rpc1/, http://rpc2/",
    });
  });

  it("error: another transaction, block or site is CHAIN_DISAGREE naming each verdict", () => {
    for (const other of [
      pass({ tx: "0x" + "bb".repeat(32) }),
      pass({ block: 101 }),
      pass({ site: "0x" + "52".repeat(32) }),
    ]) {
      const r = agree(at(pass(), other));
      expect(r).toMatchObject({ ok: false, reason: "CHAIN_DISAGREE" });
      expect(r.ok || r.message).toMatch(
        /^the endpoints disagree.*http:\/\/rpc1\/: verified \(tx 0x[0-9a-f]{64}, block 10\d\); http:\/\/rpc2\/: verified/,
      );
    }
  });

  it("error: verified by one, refused by another is CHAIN_DISAGREE; refused by all with one reason is that reason", () => {
    expect(agree(at(pass(), fail("WRONG_SIGNER")))).toMatchObject({ reason: "CHAIN_DISAGREE" });
    expect(agree(at(fail("NOT_ANCHORED", "first"), fail("NOT_ANCHORED", "second")))).toMatchObject({
      reason: "NOT_ANCHORED",
      message: "first",
    });
    expect(agree(at(fail("NOT_ANCHORED"), fail("WRONG_SIGNER")))).toMatchObject({ reason: "CHAIN_DISAGREE" });
  });

  it("error: an endpoint that cannot be used decides at once (the cross-check is incomplete), named", () => {
    expect(agree(at(pass(), fail("CHAIN_UNREACHABLE", "no answer")))).toMatchObject({
      reason: "CHAIN_UNREACHABLE",
      message: "http://rpc2/: no answer",
    });
    expect(agree(at(fail("WRONG_CHAIN", "chain 10"), pass()))).toMatchObject({
      reason: "WRONG_CHAIN",
      message: "http://rpc1/: chain 10",
    });
  });

  it("behavior: NOT_FINAL beside passes is NOT_FINAL (an endpoint's tip is older), not a disagreement", () => {
    expect(agree(at(pass(), fail("NOT_FINAL")))).toMatchObject({ reason: "NOT_FINAL" });
  });
});
