// The gateway's verifier and the independent one written from RECEIPTS.md alone
// (test/independent/receipt-verifier.ts) give the same verdict on every probe receipt of
// test/independent/cases.ts: a change to either that the other (or the document) does not follow
// fails here.
import { describe, expect, it } from "vitest";
import { verifyBundle, verifyReceipt, type VerifyOptions } from "../../gateway/src/attest/verify.ts";
import type { AnyReceipt } from "../../gateway/src/attest/receipt.ts";
import { cases } from "../independent/cases.ts";
import type { Trust } from "../independent/receipt-verifier.ts";

function options(t: Trust): VerifyOptions {
  return {
    ...(t.registry !== undefined && t.chainId !== undefined
      ? {
          trust: {
            chainId: BigInt(t.chainId),
            registry: t.registry,
            ...(t.gatewayId !== undefined ? { gatewayId: t.gatewayId } : {}),
          },
        }
      : {}),
    ...(t.signer !== undefined ? { expectSigner: t.signer } : {}),
  };
}
const verdict = (r: { ok: boolean; reason?: string }): string => (r.ok ? "pass" : r.reason!);

describe("the gateway's verifier agrees with the independent one (RECEIPTS.md)", () => {
  it.each(cases())("$name: $expect", async (c) => {
    if (c.input.format === "vigil-bundle/1") {
      const results = await verifyBundle(c.input.receipts as AnyReceipt[], options(c.trust));
      expect(results.map(verdict)).toEqual(c.expect);
    } else {
      expect(verdict(await verifyReceipt(c.input as AnyReceipt, options(c.trust)))).toBe(c.expect);
    }
  });
});
