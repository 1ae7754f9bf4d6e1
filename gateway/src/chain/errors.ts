/**
 * Typed chain errors. Ethers errors are translated into these at the client boundary
 * ({@link translateEthersError}); the in-memory fake throws the same classes, so callers and the shared
 * client test suite see one vocabulary. RPC URLs in messages go through `redactUrl`.
 */
import { Interface, isError } from "ethers";
import { VigilError, redactUrl } from "../core/errors.ts";

/** Base class of every chain error. */
export class ChainError extends VigilError {
  override name = "ChainError";
}

/**
 * A contract call reverted. `errorName` is the Solidity custom error (e.g. `UnexpectedSequence`) and
 * `args` its decoded arguments (bigints for integers, lowercase hex for bytes/addresses), or
 * `errorName: "unknown"` when the revert data did not match the ABI.
 */
export class ContractRevertError extends ChainError {
  override name = "ContractRevertError";
  readonly errorName: string;
  readonly args: readonly unknown[];
  constructor(errorName: string, args: readonly unknown[], opts: { cause?: unknown; details?: string } = {}) {
    super("CHAIN_REVERT", `contract reverted: ${errorName}(${args.map(fmtArg).join(", ")})`, opts);
    this.errorName = errorName;
    this.args = args;
  }
}

/** The account's nonce was stale (another sender used it); the client resets its nonce manager. */
export class NonceError extends ChainError {
  override name = "NonceError";
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super("CHAIN_NONCE", message, opts);
  }
}

/** The sender cannot pay for gas. */
export class InsufficientFundsError extends ChainError {
  override name = "InsufficientFundsError";
  constructor(opts: { cause?: unknown } = {}) {
    super("CHAIN_FUNDS", "sender has insufficient funds for gas", opts);
  }
}

/** The RPC endpoint cannot be reached or answered garbage (retryable). */
export class ChainNetworkError extends ChainError {
  override name = "ChainNetworkError";
  constructor(url: string, opts: { cause?: unknown; details?: string } = {}) {
    super("CHAIN_NETWORK", `RPC endpoint unreachable: ${redactUrl(url)}`, opts);
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
  const data = findRevertData(err);
  if (data) {
    for (const iface of ifaces) {
      try {
        const parsed = iface.parseError(data);
        if (parsed)
          return new ContractRevertError(parsed.name, normaliseArgs([...parsed.args]), { cause: err });
      } catch {
        // not this ABI
      }
    }
    return new ContractRevertError("unknown", [data], { cause: err });
  }
  if (isError(err, "CALL_EXCEPTION")) return new ContractRevertError("unknown", [], { cause: err });
  if (isError(err, "NONCE_EXPIRED") || isError(err, "REPLACEMENT_UNDERPRICED")) {
    return new NonceError("transaction nonce already used", { cause: err });
  }
  if (isError(err, "INSUFFICIENT_FUNDS")) return new InsufficientFundsError({ cause: err });
  const msg = err instanceof Error ? err.message : String(err);
  if (/nonce too (low|high)|nonce has already been used|invalid nonce/i.test(msg)) {
    return new NonceError("transaction nonce rejected by the node", { cause: err });
  }
  if (
    isError(err, "NETWORK_ERROR") ||
    isError(err, "SERVER_ERROR") ||
    isError(err, "TIMEOUT") ||
    /ECONNREFUSED|ECONNRESET|ETIMEDOUT|fetch failed|socket hang up/i.test(msg)
  ) {
    return new ChainNetworkError(url, { cause: err });
  }
  const line = (msg.split("\n")[0] ?? "").replace(/https?:\/\/[^\s"']+/g, (u) => redactUrl(u)).slice(0, 200);
  return new ChainError("CHAIN", `chain request failed: ${line}`, {
    cause: err,
  });
}
