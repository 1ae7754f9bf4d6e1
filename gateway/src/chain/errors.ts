/**
 * Typed chain errors. Ethers errors are translated into these at the client boundary
 * ({@link translateEthersError}); the in-memory fake throws the same classes, so callers and the shared
 * client test suite see one vocabulary. RPC URLs in messages go through `redactUrl`.
 */
import { Interface, id as keccakId, isError } from "ethers";
import { redactUrl, redactText, redactedError } from "../core/errors.ts";
import { ChainError } from "./chain-error.ts";
import { DEVICE_STATUS, KEY_TYPES, RELEASE_KINDS, RELEASE_STATUS, ROLE_STRINGS } from "./client.ts";

// The base class lives without ethers (chain-error.ts), so the CLI's flag checks can use it.
export { ChainError };

/**
 * A contract call reverted. `errorName` is the Solidity custom error (e.g. `UnexpectedSequence`) and
 * `args` its decoded arguments (bigints for integers, lowercase hex for bytes/addresses), or
 * `errorName: "unknown"` when the revert data did not match the ABI. `sentence` says what it means
 * ({@link revertSentence}); the message is the sentence followed by the raw error.
 */
export class ContractRevertError extends ChainError {
  override name = "ContractRevertError";
  readonly errorName: string;
  readonly args: readonly unknown[];
  readonly sentence: string;
  constructor(errorName: string, args: readonly unknown[], opts: { cause?: unknown; details?: string } = {}) {
    const sentence = revertSentence(errorName, args);
    super("CHAIN_REVERT", `${sentence} (${errorName}(${args.map(fmtArg).join(", ")}))`, opts);
    this.errorName = errorName;
    this.args = args;
    this.sentence = sentence;
  }
}

/**
 * The node refused the transaction because of its nonce (base class; the client resets its nonce
 * tracking). The subclasses say which case it was; each is handled, never retried blindly.
 */
export class NonceError extends ChainError {
  override name = "NonceError";
  constructor(message: string, opts: { cause?: unknown; code?: `CHAIN_${string}` } = {}) {
    super(opts.code ?? "CHAIN_NONCE", message, opts);
  }
}

/**
 * "nonce too low": the nonce was used by a transaction that is already mined (ours, or another
 * sender's with the same account). The sender checks whether one of its own transactions with that
 * nonce was mined before reporting this.
 */
export class NonceTooLowError extends NonceError {
  override name = "NonceTooLowError";
  constructor(
    message = "transaction nonce already used by a mined transaction",
    opts: { cause?: unknown } = {},
  ) {
    super(message, { ...opts, code: "CHAIN_NONCE_TOO_LOW" });
  }
}

/** "already known" / "transaction already imported": the node has this exact transaction already. */
export class AlreadyKnownError extends NonceError {
  override name = "AlreadyKnownError";
  constructor(opts: { cause?: unknown } = {}) {
    super("the node already has this transaction", { ...opts, code: "CHAIN_ALREADY_KNOWN" });
  }
}

/**
 * "replacement transaction underpriced": a pending transaction with the same nonce pays more than
 * this one plus the node's minimum bump (10 % on geth).
 */
export class ReplacementUnderpricedError extends NonceError {
  override name = "ReplacementUnderpricedError";
  constructor(
    message = "a pending transaction with the same nonce pays more",
    opts: { cause?: unknown } = {},
  ) {
    super(message, { ...opts, code: "CHAIN_UNDERPRICED" });
  }
}

/**
 * The node refused a transaction whose max fee is below the current base fee ("max fee per gas less
 * than block base fee", "fee cap less than block base fee"): geth queues such a transaction, anvil
 * and some providers refuse it. A rebroadcast that meets this keeps waiting; a first send is retried.
 */
export class FeeTooLowError extends ChainError {
  override name = "FeeTooLowError";
  constructor(opts: { cause?: unknown } = {}) {
    super("CHAIN_FEE_TOO_LOW", "the transaction's max fee is below the current base fee", opts);
  }
}

/**
 * The chain's base fee is above the configured `maxFeePerGas` cap: no transaction with an allowed
 * fee can be mined now. Anchoring pauses until the base fee falls.
 */
export class FeeCapError extends ChainError {
  override name = "FeeCapError";
  readonly baseFeePerGas: bigint;
  readonly maxFeePerGas: bigint;
  constructor(baseFeePerGas: bigint, maxFeePerGas: bigint) {
    super(
      "CHAIN_FEE_CAP",
      `the base fee is ${fmtGwei(baseFeePerGas)} gwei, above the cap of ${fmtGwei(maxFeePerGas)} gwei (chain.maxFeePerGasGwei)`,
    );
    this.baseFeePerGas = baseFeePerGas;
    this.maxFeePerGas = maxFeePerGas;
  }
}

/** Sending would exceed the configured spend per day (chain.maxSpendPerDayEth); anchoring pauses. */
export class SpendCapError extends ChainError {
  override name = "SpendCapError";
  readonly spentWei: bigint;
  readonly capWei: bigint;
  readonly neededWei: bigint;
  constructor(spentWei: bigint, neededWei: bigint, capWei: bigint) {
    super(
      "CHAIN_SPEND_CAP",
      `spent ${fmtEth(spentWei)} ETH today; the next transaction may cost up to ${fmtEth(neededWei)} ETH, over the daily cap of ${fmtEth(capWei)} ETH (chain.maxSpendPerDayEth)`,
    );
    this.spentWei = spentWei;
    this.capWei = capWei;
    this.neededWei = neededWei;
  }
}

function fmtUnits(v: bigint, decimals: number): string {
  const neg = v < 0n;
  const a = neg ? -v : v;
  const base = 10n ** BigInt(decimals);
  const frac = (a % base).toString().padStart(decimals, "0").replace(/0+$/, "");
  return `${neg ? "-" : ""}${a / base}${frac ? `.${frac}` : ""}`;
}
/** wei → gwei as a decimal string. */
export const fmtGwei = (wei: bigint): string => fmtUnits(wei, 9);
/** wei → ETH as a decimal string. */
export const fmtEth = (wei: bigint): string => fmtUnits(wei, 18);

/** The sender cannot pay for gas. */
export class InsufficientFundsError extends ChainError {
  override name = "InsufficientFundsError";
  constructor(opts: { cause?: unknown } = {}) {
    super("CHAIN_FUNDS", "sender has insufficient funds for gas", opts);
  }
}

/**
 * A transaction sent and never mined: the node dropped it from its pool, or it was not mined in
 * time. It may still be mined later (a dropped one can come back from another node's pool).
 */
export class TxNotMinedError extends ChainError {
  override name = "TxNotMinedError";
  constructor(
    readonly txHash: string,
    why: string,
  ) {
    super(
      "CHAIN_TX_NOT_MINED",
      `transaction ${txHash} was not mined: ${why}; it may still be mined, so look it up before sending the command again`,
    );
  }
}

/**
 * The RPC endpoint cannot be reached or answered garbage (retryable; another endpoint is tried
 * first). Subclasses: {@link RpcTimeoutError}, {@link RpcRateLimitError}, {@link RpcBadResponseError}.
 */
export class ChainNetworkError extends ChainError {
  override name = "ChainNetworkError";
  constructor(
    url: string,
    opts: { cause?: unknown; details?: string; code?: `CHAIN_${string}`; reason?: string } = {},
  ) {
    super(
      opts.code ?? "CHAIN_NETWORK",
      `RPC endpoint unreachable: ${redactUrl(url)}${opts.reason ? ` (${opts.reason})` : ""}`,
      opts,
    );
  }
}

/** The endpoint did not answer within the request timeout. */
export class RpcTimeoutError extends ChainNetworkError {
  override name = "RpcTimeoutError";
  constructor(url: string, timeoutMs: number) {
    super(url, { code: "CHAIN_TIMEOUT", reason: `no answer within ${timeoutMs} ms` });
  }
}

/** HTTP 429 or a JSON-RPC rate-limit error: the provider throttles this client. */
export class RpcRateLimitError extends ChainNetworkError {
  override name = "RpcRateLimitError";
  /** Seconds the provider asked to wait (Retry-After), when it said. */
  readonly retryAfterS: number | undefined;
  constructor(url: string, retryAfterS?: number) {
    super(url, {
      code: "CHAIN_RATE_LIMIT",
      reason: `rate limited${retryAfterS !== undefined ? `, retry after ${retryAfterS} s` : ""}`,
    });
    this.retryAfterS = retryAfterS;
  }
}

/**
 * The endpoint answers, but for another chain than the one expected (`eth_chainId`, EIP-695): it is
 * never used, and another endpoint is tried first. A verifier reports it as `WRONG_CHAIN`.
 */
export class RpcWrongChainError extends ChainNetworkError {
  override name = "RpcWrongChainError";
  /** The chain id the endpoint serves. */
  readonly served: bigint;
  /** The chain id the client expected. */
  readonly expected: bigint;
  constructor(url: string, served: bigint, expected: bigint) {
    super(url, { code: "CHAIN_WRONG_CHAIN", reason: `serves chain ${served}, expected ${expected}` });
    this.served = served;
    this.expected = expected;
  }
}

/** The endpoint answered, but not with a JSON-RPC 2.0 response (HTML error page, truncated JSON, 5xx). */
export class RpcBadResponseError extends ChainNetworkError {
  override name = "RpcBadResponseError";
  constructor(url: string, what: string) {
    super(url, { code: "CHAIN_BAD_RESPONSE", reason: what });
  }
}

/**
 * The node answered a request with a JSON-RPC error that is not one of the typed cases (revert,
 * nonce, funds, rate limit, log range). `rpcCode` and `rpcMessage` are the node's.
 */
export class RpcError extends ChainError {
  override name = "RpcError";
  readonly rpcCode: number;
  readonly rpcMessage: string;
  constructor(method: string, rpcCode: number, rpcMessage: string, opts: { code?: `CHAIN_${string}` } = {}) {
    super(
      opts.code ?? "CHAIN_RPC",
      `${method} failed: ${rpcMessage.split("\n")[0]!.slice(0, 200)} (JSON-RPC ${rpcCode})`,
    );
    this.rpcCode = rpcCode;
    this.rpcMessage = rpcMessage;
  }
}

/** The provider refused an eth_getLogs block range as too large (the caller retries smaller ranges). */
export class LogRangeError extends RpcError {
  override name = "LogRangeError";
  constructor(rpcCode: number, rpcMessage: string) {
    super("eth_getLogs", rpcCode, rpcMessage, { code: "CHAIN_LOG_RANGE" });
  }
}

/**
 * eth_getLogs named blocks past the answering node's head: a load-balanced provider's backend behind
 * the others, or a node whose log index lags the head it reports. Geth, reth, Nethermind, Besu and
 * Erigon answer -32602 "block range extends beyond current head block" (ethereum/execution-apis
 * #875); anvil "BlockOutOfRangeError: block height is H but requested was N". Not a range that is
 * too large: halving it would not help, and waiting does (the caller retries, then reports it as
 * `CHAIN_BEHIND`).
 */
export class LogsBeyondHeadError extends RpcError {
  override name = "LogsBeyondHeadError";
  constructor(rpcCode: number, rpcMessage: string) {
    super("eth_getLogs", rpcCode, rpcMessage, { code: "CHAIN_BEHIND" });
  }
}

/** A transaction was mined but failed, or the deployed code is not what the artifact says. */
export class ChainStateError extends ChainError {
  override name = "ChainStateError";
  constructor(message: string, opts: { cause?: unknown; details?: string } = {}) {
    super("CHAIN_STATE", message, opts);
  }
}

function fmtArg(a: unknown): string {
  return typeof a === "bigint" ? `${a}` : typeof a === "string" ? a : JSON.stringify(a);
}

type Args = readonly unknown[];
const arg = (a: Args, i: number): string => fmtArg(a[i]);
const pick = (names: readonly string[], v: unknown): string => names[Number(v)] ?? `#${fmtArg(v)}`;
const deviceStatus = (v: unknown): string => pick(DEVICE_STATUS, v);
const releaseStatus = (v: unknown): string => pick(RELEASE_STATUS, v);
const releaseKind = (v: unknown): string => pick(RELEASE_KINDS, v);
const keyType = (v: unknown): string => pick(KEY_TYPES, v);
const ROLE_NAMES = new Map<string, string>([
  [`0x${"00".repeat(32)}`, "default admin"],
  ...Object.entries(ROLE_STRINGS).map(([name, s]) => [keccakId(s), name] as [string, string]),
]);
const role = (v: unknown): string => ROLE_NAMES.get(String(v).toLowerCase()) ?? `role ${fmtArg(v)}`;

/**
 * One sentence per custom error of VigilRegistry, VigilReleases and VigilMaintenanceEscrow (and the
 * OpenZeppelin errors they can raise), as documented in contracts/README.md. Keyed by error name; a
 * name shared by two contracts has the same arguments and meaning in both.
 */
const REVERT_SENTENCES: Record<string, (a: Args) => string> = {
  // ---- OpenZeppelin (AccessControlDefaultAdminRules, ShortStrings, SafeCast, Address)
  AccessControlUnauthorizedAccount: (a) => `account ${arg(a, 0)} lacks the ${role(a[1])} role`,
  AccessControlBadConfirmation: () => "renounceRole must be called by the account itself",
  AccessControlEnforcedDefaultAdminDelay: (a) =>
    `the default admin handover is not ready before ${arg(a, 0)} (unix seconds)`,
  AccessControlEnforcedDefaultAdminRules: () =>
    "the default admin role only changes through the two-step handover (beginDefaultAdminTransfer)",
  AccessControlInvalidDefaultAdmin: (a) => `${arg(a, 0)} is not the pending default admin`,
  InvalidShortString: () => "a short string is malformed",
  StringTooLong: () => "a string is too long for a short string",
  SafeCastOverflowedUintDowncast: (a) => `value ${arg(a, 1)} does not fit in ${arg(a, 0)} bits`,
  FailedCall: () => "the payment was refused: the recipient's code reverted",
  InsufficientBalance: (a) => `the contract holds ${arg(a, 0)} wei, less than the ${arg(a, 1)} wei to send`,
  // ---- VigilRegistry
  NotSiteOperator: (a) => `account ${arg(a, 0)} is not an operator of site ${arg(a, 1)}`,
  ZeroId: () => "the gateway id and the site must not be zero",
  GatewayAlreadyRegistered: (a) => `gateway ${arg(a, 0)} is already registered`,
  GatewayUnknown: (a) => `gateway ${arg(a, 0)} is not registered`,
  GatewayNotActive: (a) => `gateway ${arg(a, 0)} is not active (it is ${deviceStatus(a[1])})`,
  GatewayRevoked: (a) => `gateway ${arg(a, 0)} is revoked, which is final`,
  InvalidStatusTransition: (a) =>
    `the status cannot change from ${deviceStatus(a[0])} to ${deviceStatus(a[1])}`,
  InvalidPublicKey: (a) =>
    `the public key does not fit key type ${keyType(a[0])} (20-byte address for secp256k1, 64-byte point on the curve for P-256, empty for none)`,
  TooLong: (a) => `a string or key is ${arg(a, 0)} bytes long, more than the ${arg(a, 1)} allowed`,
  SensorAlreadyRegistered: (a) => `sensor ${arg(a, 1)} of gateway ${arg(a, 0)} is already registered`,
  SensorUnknown: (a) => `sensor ${arg(a, 1)} of gateway ${arg(a, 0)} is not registered`,
  UnexpectedSequence: (a) =>
    `batch seq ${arg(a, 2)} of gateway ${arg(a, 0)} is not the next one (expected ${arg(a, 1)}): replayed or skipped`,
  UnexpectedPrevHead: (a) =>
    `the batch does not extend gateway ${arg(a, 0)}'s head ${arg(a, 1)} (its prevHead is ${arg(a, 2)})`,
  ZeroRoot: (a) => `the batch of gateway ${arg(a, 0)} has a zero Merkle root`,
  EmptyBatch: (a) => `the batch of gateway ${arg(a, 0)} has no leaves`,
  InvalidTimeRange: (a) =>
    `the batch of gateway ${arg(a, 0)} starts at ${arg(a, 1)} µs, after it ends at ${arg(a, 2)} µs`,
  InvalidSignature: (a) =>
    `the signature is not by gateway ${arg(a, 0)}'s registered key for this chain and contract`,
  MalleableSignature: (a) => `the signature for gateway ${arg(a, 0)} has a high s value (malleable)`,
  InvalidSignatureLength: (a) =>
    `a ${arg(a, 1)}-byte signature does not fit gateway ${arg(a, 0)}'s key type (65 bytes secp256k1, 64 bytes P-256)`,
  LengthMismatch: (a) => `the arrays differ in length (${arg(a, 0)} and ${arg(a, 1)})`,
  NothingAnchored: (a) => `gateway ${arg(a, 0)} has not anchored any batch yet`,
  InvalidGrant: (a) =>
    `the grant to ${arg(a, 0)} must expire in the future (expiresAt ${arg(a, 1)}) and name a non-zero reader`,
  // ---- VigilReleases
  MissingRole: (a) => `account ${arg(a, 0)} lacks the ${role(a[1])} role in the registry`,
  NotAdmin: (a) => `account ${arg(a, 0)} is not the registry's default admin`,
  VersionNotIncreasing: (a) =>
    `version ${arg(a, 3)} is not above ${arg(a, 2)}, the latest ${releaseKind(a[0])} version proposed for target ${arg(a, 1)}`,
  VersionStepTooLarge: (a) =>
    `version ${arg(a, 3)} is more than MAX_VERSION_STEP (2^32) above ${arg(a, 2)}, the latest ${releaseKind(a[0])} version proposed for target ${arg(a, 1)}`,
  ZeroContentHash: () => "the release's content hash is zero",
  InvalidSize: (a) => `release size ${arg(a, 0)} is zero or above the cap of ${arg(a, 1)} bytes`,
  InvalidUri: (a) =>
    `URI ${arg(a, 0)} is not https://, ipfs:// or file:// (or there are none, or more than 8)`,
  ReleaseUnknown: (a) => `release ${arg(a, 0)} does not exist`,
  ReleaseNotInStatus: (a) => `release ${arg(a, 0)} is ${releaseStatus(a[1])}, which does not allow this`,
  AlreadyApproved: (a) => `account ${arg(a, 1)} already approved release ${arg(a, 0)}`,
  SelfApproval: (a) => `account ${arg(a, 1)} proposed release ${arg(a, 0)} and cannot approve it`,
  BelowThreshold: (a) =>
    `release ${arg(a, 0)} has ${arg(a, 1)} approvals by current approvers, below the threshold of ${arg(a, 2)}`,
  InvalidThreshold: (a) => `approval threshold ${arg(a, 0)} must be at least 1`,
  UnexpectedNonce: (a) =>
    `install report nonce ${arg(a, 2)} of gateway ${arg(a, 0)} is not the next one (expected ${arg(a, 1)})`,
  InvalidReportSignature: (a) =>
    `the install report is not signed by gateway ${arg(a, 0)}'s current key, or the gateway is not active`,
  // ---- VigilMaintenanceEscrow (and VigilAlertLeaf)
  InvalidTerms: (a) => `the agreement terms are invalid: ${arg(a, 0)}`,
  AgreementUnknown: (a) => `agreement ${arg(a, 0)} does not exist`,
  AgreementExpired: (a) => `agreement ${arg(a, 0)} expired at ${arg(a, 1)} (unix seconds): no more claims`,
  AgreementNotExpired: (a) =>
    `agreement ${arg(a, 0)} runs until ${arg(a, 1)} (unix seconds): withdraw after that`,
  NotClient: (a) => `account ${arg(a, 1)} is not the client of agreement ${arg(a, 0)}`,
  AgreementUnderfunded: (a) =>
    `agreement ${arg(a, 0)} holds ${arg(a, 1)} wei, less than its payout of ${arg(a, 2)} wei`,
  AlreadyClaimed: (a) => `alert leaf ${arg(a, 1)} already paid under agreement ${arg(a, 0)}`,
  WrongDevice: (a) =>
    `the alert is about device ${arg(a, 2)}, not device ${arg(a, 1)} of agreement ${arg(a, 0)}`,
  AlertCleared: (a) => `leaf ${arg(a, 1)} attests that an alert was cleared, not raised`,
  SeverityTooLow: (a) =>
    `the alert's severity ${arg(a, 2)} is below the minimum ${arg(a, 1)} of agreement ${arg(a, 0)} (1 info, 2 warning, 3 critical)`,
  WrongRule: (a) => `the alert's rule (hash ${arg(a, 2)}) is not the one agreement ${arg(a, 0)} pays for`,
  WrongModel: (a) =>
    `the alert was decided by model ${arg(a, 2)}, not model ${arg(a, 1)} of agreement ${arg(a, 0)}`,
  AlertTooEarly: (a) =>
    `the alert (at ${arg(a, 2)} µs) predates agreement ${arg(a, 0)}'s start at ${arg(a, 1)} µs`,
  WrongSite: (a) => `gateway ${arg(a, 0)} belongs to site ${arg(a, 2)}, not the agreed site ${arg(a, 1)}`,
  LeafNotIncluded: (a) =>
    `the registry does not confirm leaf ${arg(a, 1)} in an anchored batch of gateway ${arg(a, 0)} (wrong proof, header or later header hashes, or not anchored)`,
  MalformedAlertLeaf: (a) => `the ${arg(a, 0)}-byte preimage is not a canonical ALERT leaf preimage`,
  NotAnAlertLeaf: (a) => `the preimage's leaf kind is ${arg(a, 0)}, not 3 (ALERT)`,
};

/**
 * The sentence for a contract's custom error, e.g. `UnexpectedSequence` → "batch seq 5 of gateway 0x… is
 * not the next one (expected 3): replayed or skipped". Unknown errors get a generic sentence.
 * @param errorName Solidity custom error name, or "unknown".
 * @param args Decoded arguments as in {@link ContractRevertError}.
 */
export function revertSentence(errorName: string, args: readonly unknown[]): string {
  const f = REVERT_SENTENCES[errorName];
  if (f) return f(args);
  return errorName === "unknown"
    ? "the contract reverted without a known error"
    : `the contract reverted with ${errorName}`;
}

/** Names of the custom errors {@link revertSentence} translates (for completeness tests). */
export const TRANSLATED_ERRORS: readonly string[] = Object.keys(REVERT_SENTENCES);

/** Normalises decoded error arguments: ethers Result → plain array, addresses lowercased. */
function normaliseArgs(args: readonly unknown[]): unknown[] {
  return args.map((a) => (typeof a === "string" ? a.toLowerCase() : a));
}

function findRevertData(err: unknown): string | undefined {
  // ethers v6 puts revert data on CALL_EXCEPTION errors as `data`; nested JSON-RPC errors carry it in
  // `error.data` or `info.error.data`.
  const seen = new Set<unknown>();
  const visit = (e: unknown): string | undefined => {
    if (!e || typeof e !== "object" || seen.has(e)) return undefined;
    seen.add(e);
    const o = e as Record<string, unknown>;
    if (typeof o.data === "string" && /^0x[0-9a-fA-F]{8}/.test(o.data)) return o.data;
    for (const k of ["error", "info", "cause", "payload"]) {
      const r = visit(o[k]);
      if (r) return r;
    }
    return undefined;
  };
  return visit(err);
}

/**
 * Translates an ethers error into a typed {@link ChainError}.
 * @param err What ethers threw.
 * @param url The RPC URL (redacted in messages).
 * @param ifaces ABIs whose custom errors may appear in revert data.
 */
export function translateEthersError(err: unknown, url: string, ifaces: readonly Interface[]): ChainError {
  if (err instanceof ChainError) return err;
  // The cause kept is a redacted copy: ethers' errors carry the request URL, API key included.
  const cause = redactedError(err);
  const data = findRevertData(err);
  if (data) {
    for (const iface of ifaces) {
      try {
        const parsed = iface.parseError(data);
        if (parsed) return new ContractRevertError(parsed.name, normaliseArgs([...parsed.args]), { cause });
      } catch {
        // not this ABI
      }
    }
    return new ContractRevertError("unknown", [data], { cause });
  }
  if (isError(err, "CALL_EXCEPTION")) return new ContractRevertError("unknown", [], { cause });
  if (isError(err, "NONCE_EXPIRED")) return new NonceTooLowError(undefined, { cause });
  if (isError(err, "REPLACEMENT_UNDERPRICED")) return new ReplacementUnderpricedError(undefined, { cause });
  if (isError(err, "INSUFFICIENT_FUNDS")) return new InsufficientFundsError({ cause });
  const msg = err instanceof Error ? err.message : String(err);
  const typed = nodeMessageError(msg, cause);
  if (typed) return typed;
  if (
    isError(err, "NETWORK_ERROR") ||
    isError(err, "SERVER_ERROR") ||
    isError(err, "TIMEOUT") ||
    // ENOTFOUND / EAI_AGAIN name the host, which may hold a provider key: the redacted URL instead
    /ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENOTFOUND|EAI_AGAIN|fetch failed|socket hang up/i.test(msg)
  ) {
    return new ChainNetworkError(url, { cause });
  }
  const line = redactText(msg.split("\n")[0] ?? "").slice(0, 200);
  return new ChainError("CHAIN", `chain request failed: ${line}`, { cause });
}

/**
 * Typed errors for the node messages that mean the same thing across clients (geth, reth, anvil,
 * op-geth, Nethermind, hosted providers), or undefined.
 */
export function nodeMessageError(msg: string, cause?: unknown): ChainError | undefined {
  if (/nonce too low|nonce has already been used|nonce is too low|invalid nonce|OldNonce/i.test(msg))
    return new NonceTooLowError(undefined, { cause });
  if (
    /already known|already imported|known transaction|AlreadyKnown|already in (the )?(mempool|pool)/i.test(
      msg,
    )
  )
    return new AlreadyKnownError({ cause });
  if (/replacement (transaction )?underpriced|underpriced replacement|ReplacementUnderpriced/i.test(msg))
    return new ReplacementUnderpricedError(undefined, { cause });
  if (/insufficient funds/i.test(msg)) return new InsufficientFundsError({ cause });
  if (
    /(max )?fee (per gas |cap )?(is )?less than (the )?(block )?base ?fee|feecap too low|fee cap too low/i.test(
      msg,
    )
  )
    return new FeeTooLowError({ cause });
  return undefined;
}

/** Provider messages for an eth_getLogs range that is too large (Alchemy, Infura, QuickNode, Ankr, geth, reth …). */
const LOG_RANGE =
  /block range|range (is )?too (large|wide|big)|exceeds? (the )?(max(imum)? )?(block )?range|query returned more than|more than \d+ (results|logs)|too many (results|logs|blocks)|response size (exceeded|is larger)|limited to a? ?\d+ ?block|max(imum)? (block )?range|log response size|Query timeout exceeded/i;

/**
 * eth_getLogs past the node's head ({@link LogsBeyondHeadError}): checked before LOG_RANGE, whose
 * "block range" would otherwise take geth's and reth's wording for a range too large.
 */
const BEYOND_HEAD =
  /beyond (the )?(current |latest )?(head|block)|past (the )?(current |chain )?head|block height is \d+ but requested was \d+/i;

/** Rate limiting expressed as a JSON-RPC error instead of HTTP 429. */
const RATE_LIMIT = /rate limit|too many requests|exceeded .*(capacity|quota|compute units)|throughput/i;

/**
 * Translates a JSON-RPC error object (`{ code, message, data }`) into a typed ChainError:
 * revert data → ContractRevertError (decoded with `ifaces`), node messages → nonce/funds errors,
 * rate limits → RpcRateLimitError, log queries past the node's head → LogsBeyondHeadError, oversized
 * ones → LogRangeError, the rest → RpcError.
 * @param method The JSON-RPC method (for the message).
 * @param e The `error` member of the response.
 * @param url The endpoint (redacted in messages).
 * @param ifaces ABIs whose custom errors may appear in revert data.
 */
export function translateRpcError(
  method: string,
  e: { code?: unknown; message?: unknown; data?: unknown },
  url: string,
  ifaces: readonly Interface[] = [],
): ChainError {
  const code = typeof e.code === "number" ? e.code : 0;
  const message = typeof e.message === "string" ? e.message : JSON.stringify(e.message ?? "");
  const data = typeof e.data === "string" ? e.data : findRevertData(e.data);
  if (data && /^0x[0-9a-fA-F]{8}/.test(data)) {
    for (const iface of ifaces) {
      try {
        const parsed = iface.parseError(data);
        if (parsed) return new ContractRevertError(parsed.name, normaliseArgs([...parsed.args]));
      } catch {
        // not this ABI
      }
    }
    return new ContractRevertError("unknown", [data]);
  }
  if (code === 3 || /execution reverted|revert/i.test(message))
    return new ContractRevertError("unknown", message ? [message.slice(0, 200)] : []);
  if (method === "eth_getLogs" && BEYOND_HEAD.test(message)) return new LogsBeyondHeadError(code, message);
  if (method === "eth_getLogs" && LOG_RANGE.test(message)) return new LogRangeError(code, message);
  if (code === 429 || RATE_LIMIT.test(message)) return new RpcRateLimitError(url);
  return nodeMessageError(message) ?? new RpcError(method, code, message);
}
