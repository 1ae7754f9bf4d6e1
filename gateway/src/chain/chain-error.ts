/**
 * The base class of every chain error, in a module of its own that does not import ethers: the
 * CLI's flag checks (cli/args.ts) use it at every command's start-up, and chain/errors.ts, which
 * re-exports it, loads ethers.
 */
import { VigilError } from "../core/errors.ts";

/** Base class of every chain error. */
export class ChainError extends VigilError {
  override name = "ChainError";
  /** `CHAIN` or `CHAIN_<REASON>` (the subclasses name theirs). */
  declare readonly code: "CHAIN" | `CHAIN_${string}`;
  constructor(
    code: "CHAIN" | `CHAIN_${string}`,
    message: string,
    opts: { details?: string; cause?: unknown } = {},
  ) {
    super(code, message, opts);
  }
}
