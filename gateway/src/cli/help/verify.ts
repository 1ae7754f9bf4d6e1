/** `vigil verify --help`, in a module of its own so main.ts can print it without loading the command. */
export const VERIFY_HELP = `usage: vigil verify RECEIPT|BUNDLE
                    (--deployment FILE | --registry ADDR --chain-id ID [--from-block N])
                    [--gateway HEX32] [--site NAME|HEX32]
                    [--rpc URL ... [--cross-check] [--finalized] [--min-confirmations N]]
                    [--log-range N] [--signer KEY] [--json]

Verifies a receipt (vigil-receipt/1: frame, inference, alert or sensor-fault) or an audit bundle
(vigil-bundle/1), see gateway/src/attest/RECEIPTS.md. Offline: frame or leaf preimage → leaf →
Merkle proof → root → EIP-712 header digest → signature by the key named in the receipt. With
--rpc: the batch is anchored in the TRUSTED registry, and that key was the gateway's registered,
active key there when it was anchored.

A receipt names its own registry, which proves nothing: anyone can deploy a registry and register
any gateway id in it. So you say which registry you trust, and the result names what it was
checked against. Without a trust anchor only the offline checks run; --rpc is refused.

Trust anchor:
  --deployment FILE  the deployment file of the registry you trust (written by "vigil chain deploy"):
                     registry address, chain id, and the deployment block where log queries start
  --registry ADDR    the VigilRegistry address you trust (instead of --deployment) …
  --chain-id ID      … and its chain id (required with --registry; checked with --deployment)
  --from-block N     with --registry: the block log queries start at (default 0; the deployment
                     file knows it)
  --gateway HEX32    accept only batches of this gateway id (0x + 64 hex digits)
  --site NAME|HEX32  accept only gateways registered at this site (a name as given to
                     "vigil chain register-gateway --site", or its 0x + 64 hex id); checked
                     on chain only (needs --rpc)

Options:
  --rpc URL          also check on chain (any EVM JSON-RPC endpoint of that chain); repeat for
                     fallback endpoints. An endpoint is trusted to answer truthfully: one that
                     fabricates answers is not detected, unless --cross-check
  --cross-check      with two or more --rpc: ask every endpoint, not the first that answers; a
                     receipt passes only when all verify it with the same anchor transaction,
                     block and site (CHAIN_DISAGREE otherwise). Use endpoints of independent
                     providers, or a node you run
  --finalized        with --rpc: require the anchor's block to be at or below the chain's
                     "finalized" block (NOT_FINAL otherwise; a node without the tag fails it)
  --min-confirmations N
                     with --rpc: require at least N confirmations (the anchor's block counts 1)
                     Without either, finality is reported, not required: an anchor that a reorg
                     can still remove passes, and the summary line says so.
  --log-range N      largest block range per eth_getLogs request (default 10000)
  --signer KEY       require this signer (secp256k1 address 0x + 40 hex digits, or P-256 key
                     x‖y, 0x + 128)
  --json             print the results as JSON ({ok, checked, failed, onChain, crossChecked, trust,
                     results}; crossChecked: the number of endpoints compared, 0 without);
                     a passing result's "anchored" has "checked": false offline (only the
                     receipt's claim) and true when checked on chain (with confirmations)
  -h, --help         this text

Exit status: 0 all checks passed, 1 a check failed, 2 usage error, unreadable file, or --rpc
without a trust anchor.
Failure reasons: MALFORMED, TAMPERED_FRAME, TAMPERED_LEAF, BAD_PROOF, TAMPERED_HEADER, BAD_SIGNATURE,
WRONG_SIGNER, WRONG_REGISTRY, WRONG_CHAIN, WRONG_GATEWAY, WRONG_SITE, NOT_ANCHORED, ANCHOR_MISMATCH,
KEY_REVOKED, NOT_FINAL, CHAIN_UNREACHABLE, DUPLICATE (a receipt repeated in a bundle),
CHAIN_DISAGREE (--cross-check: the endpoints' verdicts differ).
`;
