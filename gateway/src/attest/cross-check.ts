/**
 * On-chain verification cross-checked by several JSON-RPC endpoints (RECEIPTS.md "Cross-checking
 * endpoints", `vigil verify --cross-check`).
 *
 * One endpoint is trusted to answer truthfully: an endpoint that fabricates whole answers (a
 * registry at the pinned address holding an attacker's key, a `BatchAnchored` event that never
 * happened) is not detected by the checks themselves. With `--rpc` repeated, the endpoints are
 * failover: only one answers. Cross-checking asks every endpoint instead, each through its own
 * {@link ReceiptVerifier}, and a receipt passes only when all of them verify it with the same
 * anchor (transaction and block) and the same registered site; so a lie has to be told by every
 * endpoint. Endpoints of independent providers (or a node the auditor runs) make that unlikely.
 */
import { ReceiptVerifier, type VerifyOptions, type VerifyResult } from "./verify.ts";
import type { AnyReceipt } from "./receipt.ts";

/** One endpoint's verdict on one receipt. */
export interface EndpointVerdict {
  /** The endpoint as shown in messages (redacted URL). */
  endpoint: string;
  result: VerifyResult;
}

/** Reasons that say an endpoint could not be used, not what it answered: they decide at once. */
const UNUSABLE = new Set(["CHAIN_UNREACHABLE", "WRONG_CHAIN"]);

/** What two passing verdicts must agree on: the anchor's transaction and block, and the site. */
function agreementKey(r: Extract<VerifyResult, { ok: true }>): string {
  return JSON.stringify([
    r.anchored?.txHash ?? null,
    r.anchored?.blockNumber ?? null,
    r.checkedAgainst?.site ?? null,
    r.checkedAgainst?.gatewayId ?? null,
  ]);
}

function describe(v: EndpointVerdict): string {
  const r = v.result;
  if (!r.ok) return `${v.endpoint}: ${r.reason} (${r.message})`;
  const a = r.anchored;
  return `${v.endpoint}: verified${a ? ` (tx ${a.txHash ?? "?"}, block ${a.blockNumber ?? "?"})` : ""}`;
}

/**
 * Combines the endpoints' verdicts on one receipt (at least one), in this order:
 * 1. an endpoint that could not be used (CHAIN_UNREACHABLE, WRONG_CHAIN) fails the receipt with its
 *    reason: the cross-check is incomplete;
 * 2. every endpoint verified it with the same transaction, block and site: it passes, with the
 *    fewest confirmations reported and `finalized` only when every endpoint says so;
 * 3. every endpoint failed it with the same reason: that failure (the first endpoint's message);
 * 4. some verified it and the others failed it NOT_FINAL (their view of the chain's tip is
 *    older): NOT_FINAL;
 * 5. anything else: CHAIN_DISAGREE, naming each endpoint's verdict.
 */
export function agree(verdicts: readonly EndpointVerdict[]): VerifyResult {
  const first = verdicts[0];
  if (!first) throw new RangeError("agree() needs at least one verdict");
  for (const v of verdicts)
    if (!v.result.ok && UNUSABLE.has(v.result.reason))
      return { ...v.result, message: `${v.endpoint}: ${v.result.message}` };
  const passed = verdicts.flatMap((v) => (v.result.ok ? [v.result] : []));
  const failed = verdicts.flatMap((v) => (v.result.ok ? [] : [v.result]));
  if (failed.length === 0) {
    const ok = passed[0]!;
    if (passed.every((r) => agreementKey(r) === agreementKey(ok))) {
      const counts = passed.flatMap((r) =>
        r.anchored?.confirmations === undefined ? [] : [r.anchored.confirmations],
      );
      const anchored = ok.anchored && {
        ...ok.anchored,
        ...(counts.length > 0 ? { confirmations: Math.min(...counts) } : {}),
        ...(ok.anchored.finalized !== undefined
          ? { finalized: passed.every((r) => r.anchored?.finalized === true) }
          : {}),
      };
      return {
        ...ok,
        anchored,
        steps: [
          ...ok.steps,
          {
            step: "cross-check",
            ok: true,
            detail: `${verdicts.length} endpoints agree: ${verdicts.map((v) => v.endpoint).join(", ")}`,
          },
        ],
      };
    }
  } else if (passed.length === 0 && failed.every((r) => r.reason === failed[0]!.reason)) return first.result;
  else if (passed.length > 0 && failed.every((r) => r.reason === "NOT_FINAL")) return failed[0]!;
  const message = `the endpoints disagree, so at least one of them answers falsely (or lags the others): ${verdicts.map(describe).join("; ")}`;
  return {
    ok: false,
    reason: "CHAIN_DISAGREE",
    message,
    steps: [{ step: "cross-check", ok: false, detail: message }],
  };
}

/** An endpoint of the cross-check: its name in messages and the options of its own verifier. */
export interface CrossCheckEndpoint {
  endpoint: string;
  options: VerifyOptions;
}

/**
 * Verifies `receipts` (a bundle when `bundle`, else one receipt) through every endpoint at once,
 * each with its own {@link ReceiptVerifier} (its own chain reads and caches), and combines the
 * verdicts per receipt with {@link agree}. Never throws for a bad receipt.
 * @throws RangeError with fewer than two endpoints (nothing to cross-check).
 */
export async function crossCheck(
  receipts: readonly AnyReceipt[],
  endpoints: readonly CrossCheckEndpoint[],
  bundle: boolean,
): Promise<VerifyResult[]> {
  if (endpoints.length < 2) throw new RangeError("cross-checking needs at least two endpoints");
  const verifiers = endpoints.map((e) => new ReceiptVerifier(e.options));
  try {
    const each = await Promise.all(
      verifiers.map((v) =>
        bundle ? v.verifyBundle(receipts) : Promise.all(receipts.map((r) => v.verify(r))),
      ),
    );
    return receipts.map((_, i) =>
      agree(endpoints.map((e, k) => ({ endpoint: e.endpoint, result: each[k]![i]! }))),
    );
  } finally {
    for (const v of verifiers) v.close();
  }
}
