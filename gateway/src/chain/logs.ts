/**
 * eth_getLogs in bounded block ranges, the way hosted providers answer it.
 *
 * Providers refuse ranges above a limit (Alchemy, Infura, QuickNode: 10,000 blocks or fewer; some
 * 2,000 or 1,000) or results above a count. So every log query of Vigil (verification, anchoring,
 * key history) walks from a known start — the deployment block of the registry, never block 0 when
 * it is known — to the end in windows of at most `maxRange` blocks (default 10,000):
 *
 * - a window the provider refuses as too large (`LogRangeError`) is halved and retried, down to one
 *   block, and the smaller size is kept for the rest of the walk;
 * - a window that fails for a transport reason is retried `retries` times with a growing delay (the
 *   RPC pool has already tried its other endpoints);
 * - so is a window the node refuses as past its head (`LogsBeyondHeadError`, `CHAIN_BEHIND`): a
 *   load-balanced provider's backend behind the one that told the caller the head, or a log index
 *   that lags the head. It is not halved: that is not a size problem, and waiting is the cure;
 * - `direction: "backward"` walks from the end towards the start (the most recent log first) and
 *   `stopWhen` ends the walk early (finding one event needs no full scan).
 */
import type { RpcClient } from "./rpc.ts";
import { ChainError, ChainNetworkError, LogRangeError, LogsBeyondHeadError } from "./errors.ts";

/** Default largest block range per eth_getLogs (what hosted providers accept). */
export const DEFAULT_LOG_RANGE = 10_000;

/** A log as returned by eth_getLogs, with numbers decoded. */
export interface ChainLog {
  address: string;
  topics: string[];
  data: string;
  blockNumber: number;
  blockHash: string;
  transactionHash: string;
  /** Log index within the block. */
  index: number;
}

export interface LogFilter {
  address: string;
  /** Topic filter as in eth_getLogs (null = any; an array = any of). */
  topics: readonly (string | readonly string[] | null)[];
}

export interface LogScanOptions {
  /** First block (inclusive): the registry's deployment block when known. */
  fromBlock: number;
  /** Last block (inclusive); default the latest block at the start of the scan. */
  toBlock?: number;
  /** Largest range per request. Default {@link DEFAULT_LOG_RANGE}. */
  maxRange?: number;
  /** Retries of a window after a transport failure. Default 3. */
  retries?: number;
  /** Delay before the first retry, doubled each time. Default 250 ms. */
  retryDelayMs?: number;
  /** "forward" (default) from fromBlock up, or "backward" from toBlock down. */
  direction?: "forward" | "backward";
  /** Ends the walk once it returns true for the logs found so far (checked after each window). */
  stopWhen?: (logs: readonly ChainLog[]) => boolean;
  /** Observes each request's range (tests, metrics). */
  onRequest?: (from: number, to: number) => void;
}

interface RawLog {
  address: string;
  topics: string[];
  data: string;
  blockNumber: string;
  blockHash: string;
  transactionHash: string;
  logIndex: string;
  removed?: boolean;
}

const hex = (n: number): string => `0x${n.toString(16)}`;

/** A log of the node's answer, decoded; a malformed one is a bad response. */
function decodeLog(l: RawLog): ChainLog {
  try {
    return {
      address: l.address.toLowerCase(),
      topics: l.topics.map((t) => t.toLowerCase()),
      data: l.data,
      blockNumber: Number(BigInt(l.blockNumber)),
      blockHash: l.blockHash.toLowerCase(),
      transactionHash: l.transactionHash.toLowerCase(),
      index: Number(BigInt(l.logIndex)),
    };
  } catch {
    throw new ChainError("CHAIN_BAD_RESPONSE", "eth_getLogs answered a malformed log");
  }
}

/** Whether `log` is one the filter asked for (eth_getLogs semantics: null = any, array = any of). */
function matches(log: ChainLog, f: LogFilter, from: number, to: number): boolean {
  if (log.address !== f.address.toLowerCase() || log.blockNumber < from || log.blockNumber > to) return false;
  return f.topics.every((want, i) => {
    if (want === null) return true;
    const got = log.topics[i];
    if (got === undefined) return false;
    return typeof want === "string" ? got === want.toLowerCase() : want.some((w) => w.toLowerCase() === got);
  });
}

/** Latest block number. */
export async function blockNumber(rpc: RpcClient): Promise<number> {
  return Number(BigInt(await rpc.request<string>("eth_blockNumber", [])));
}

/**
 * Every log matching `filter` between `fromBlock` and `toBlock`, in bounded windows (see the file
 * comment), sorted by (block, index) whatever the direction.
 * @throws LogRangeError when even a one-block window is refused; ChainNetworkError or
 * LogsBeyondHeadError after the retries.
 */
export async function scanLogs(rpc: RpcClient, filter: LogFilter, o: LogScanOptions): Promise<ChainLog[]> {
  const end = o.toBlock ?? (await blockNumber(rpc));
  let range = Math.max(1, Math.floor(o.maxRange ?? DEFAULT_LOG_RANGE));
  const retries = o.retries ?? 3;
  const out: ChainLog[] = [];
  const backward = o.direction === "backward";
  let lo = Math.max(0, o.fromBlock);
  let hi = end;
  while (lo <= hi) {
    const from = backward ? Math.max(lo, hi - range + 1) : lo;
    const to = backward ? hi : Math.min(hi, lo + range - 1);
    let logs: RawLog[] | undefined;
    for (let attempt = 0; logs === undefined; attempt++) {
      try {
        o.onRequest?.(from, to);
        logs = await rpc.request<RawLog[]>("eth_getLogs", [
          { address: filter.address, topics: filter.topics, fromBlock: hex(from), toBlock: hex(to) },
        ]);
      } catch (e) {
        if (e instanceof LogRangeError && to > from) {
          range = Math.max(1, Math.floor((to - from + 1) / 2));
          break; // retry this position with the smaller range
        }
        if ((e instanceof ChainNetworkError || e instanceof LogsBeyondHeadError) && attempt < retries) {
          await new Promise((r) => setTimeout(r, (o.retryDelayMs ?? 250) * 2 ** attempt));
          continue;
        }
        throw e;
      }
    }
    if (logs === undefined) continue;
    // eth_getLogs answers an array (Ethereum JSON-RPC spec). Anything else read as "no logs" would
    // hide events: a revocation missed makes a revoked key look registered to a verifier.
    if (!Array.isArray(logs))
      throw new ChainError(
        "CHAIN_BAD_RESPONSE",
        `eth_getLogs answered ${logs === null ? "null" : typeof logs} instead of a list of logs (blocks ${from}–${to}): the endpoint is not a full Ethereum JSON-RPC node; use another`,
      );
    for (const l of logs) {
      if (l.removed) continue;
      const log = decodeLog(l);
      // The node's answer is checked against the request: a log of another contract, another
      // topic or another block range means the endpoint ignored the filter (or lies), and a
      // verifier or the anchor service must not read it as the registry's.
      if (!matches(log, filter, from, to))
        throw new ChainError(
          "CHAIN_BAD_RESPONSE",
          `eth_getLogs answered a log that does not match the request (contract ${log.address}, block ${log.blockNumber}, asked ${filter.address.toLowerCase()} in blocks ${from}–${to}): the endpoint ignores log filters; use another`,
        );
      out.push(log);
    }
    if (backward) hi = from - 1;
    else lo = to + 1;
    if (o.stopWhen?.(out)) break;
  }
  return out.sort((a, b) => a.blockNumber - b.blockNumber || a.index - b.index);
}
