/**
 * Sends contract transactions the way a production relayer must: EIP-1559 fees under configured
 * caps, nonces read from the chain (never a stale local counter), typed handling of the node's
 * "nonce too low", "already known" and "replacement transaction underpriced" answers, a fee bump
 * when a transaction is not mined after N blocks, a rebroadcast when it vanished from the mempool,
 * and the OP-Stack L1 data fee of what was mined.
 *
 * One transaction at a time (the anchoring service sends serially):
 *
 * 1. Nonce. `latest` and `pending` transaction counts of the account. When pending > latest, other
 *    transactions of this account wait in the mempool — sent by this process before a restart, or by
 *    another sender with the same key. The sender waits up to `bumpAfterBlocks` blocks for them to be
 *    mined (the caller re-reads the chain afterwards: they may have anchored the very batch); if they
 *    are still stuck it takes over the lowest stuck nonce with a replacement. A "replacement
 *    transaction underpriced" answer to a first send is checked first (eth_getTransactionByHash: the
 *    node may have our transaction after all); else the fees rise by geth's replacement minimum
 *    (10 % on both) once per attempt, `pollMs` apart, up to the caps.
 * 2. Gas: `eth_estimateGas` (a revert surfaces here, decoded, before anything is sent) plus a margin.
 * 3. Fees (EIP-1559): tip = min(eth_maxPriorityFeePerGas, cap); maxFee = min(2 × baseFee + tip, cap).
 *    A base fee above the maxFee cap throws FeeCapError (nothing could be mined); a worst case
 *    (gasLimit × maxFee + L1 fee) above the remaining daily budget throws SpendCapError; below it, the
 *    budget lowers this transaction's max fee cap so that no later version can pass it either.
 * 4. Send and wait. Receipts of every version sent for this nonce are polled. After `bumpAfterBlocks`
 *    blocks without one (counted by the latest block's number, see #blockNumber), the transaction is
 *    replaced with fees raised by `bumpPercent` (≥ 10 %, geth's minimum for a replacement) up to the
 *    caps (and the budget's cap); at the caps the last version is broadcast again (a dropped
 *    transaction comes back). If the account's nonce moves past ours and none of our versions was
 *    mined, another transaction took the nonce: NonceTooLowError, and the caller re-reads the chain.
 */
import { SigningKey, Transaction, computeAddress, type Interface } from "ethers";
import { inspect } from "node:util";
import type { Hex } from "../core/hex.ts";
import { silentLogger, type Logger } from "../core/log.ts";
import {
  AlreadyKnownError,
  ChainError,
  ChainStateError,
  ContractRevertError,
  FeeCapError,
  FeeTooLowError,
  NonceTooLowError,
  ReplacementUnderpricedError,
  SpendCapError,
} from "./errors.ts";
import type { RpcClient } from "./rpc.ts";

/** Fee caps from configuration, in wei. */
export interface FeeCaps {
  /** Largest maxFeePerGas ever offered. */
  maxFeePerGas: bigint;
  /** Largest maxPriorityFeePerGas (tip) ever offered. */
  maxPriorityFeePerGas: bigint;
}

/** Reads the L1 data fee of a transaction on an OP-Stack chain (op-stack.ts). */
export interface L1FeeSource {
  /** L1 fee of the unsigned serialized transaction at `blockTag`, wei. */
  l1Fee(unsignedTx: Hex, blockTag: string): Promise<bigint>;
}

export interface TxSenderOptions {
  rpc: RpcClient;
  /** 32-byte hex private key of the paying account (kept in a private field, never printed). */
  privateKey: string;
  chainId: bigint;
  caps: FeeCaps;
  /** Blocks without inclusion before the fee is bumped. Default 3. */
  bumpAfterBlocks?: number;
  /** Fee increase per bump, percent (≥ 10). Default 12.5. */
  bumpPercent?: number;
  /** Receipt polling period, ms. Default 500. */
  pollMs?: number;
  /** Added to the gas estimate, percent. Default 20. */
  gasMarginPercent?: number;
  /** ABIs for decoding reverts. */
  ifaces?: readonly Interface[];
  /** OP-Stack L1 fee oracle; null on other chains. */
  l1Fee?: L1FeeSource | null;
  logger?: Logger;
}

export interface SendRequest {
  to: string;
  data: string;
  /**
   * The daily budget: refuse (SpendCapError) when the worst case would exceed `capWei - spentWei`;
   * otherwise no version's worst case (fee bumps included) exceeds it.
   */
  budget?: { spentWei: bigint; capWei: bigint };
  /** Aborts the wait (the transaction may still be mined; the caller re-reads the chain). */
  signal?: AbortSignal;
  /**
   * Called once the transaction is mined, with what it cost — also when it failed (a reverted
   * transaction pays for its gas), before `send` rejects.
   */
  onCost?: (paid: PaidTx) => void;
}

/** What a mined transaction cost its sender (successful or not). */
export interface PaidTx {
  txHash: Hex;
  gasUsed: bigint;
  /** OP-Stack L1 data fee; null elsewhere (or when it could not be read). */
  l1FeeWei: bigint | null;
  /** gasUsed × effective gas price + l1FeeWei. */
  costWei: bigint;
  /** When its block was made, µs since the epoch (set by `costOf`: a transaction found later). */
  minedAtUs?: number;
}

export interface TxLog {
  address: string;
  topics: string[];
  data: string;
  index: number;
}

/** A mined transaction and what it cost. */
export interface MinedTx {
  txHash: Hex;
  nonce: number;
  blockNumber: number;
  blockHash: Hex;
  gasUsed: bigint;
  effectiveGasPrice: bigint;
  /** OP-Stack L1 data fee (receipt `l1Fee`, else the GasPriceOracle); null elsewhere. */
  l1FeeWei: bigint | null;
  /** gasUsed × effectiveGasPrice + l1FeeWei. */
  costWei: bigint;
  /** Replacements with a higher fee before it was mined. */
  bumps: number;
  logs: TxLog[];
}

/** A transaction sent and not mined yet (status). */
export interface InFlightTx {
  nonce: number;
  txHash: Hex;
  maxFeePerGas: bigint;
  maxPriorityFeePerGas: bigint;
  sentAtBlock: number;
  versions: number;
  /** True when the fee reached the caps and cannot be bumped further. */
  atCap: boolean;
  /** When the first version was broadcast, ms since the epoch. */
  sentAtMs: number;
  /** The latest block seen while waiting, and when it was first seen (ms since the epoch). */
  headBlock: number;
  headSeenAtMs: number;
}

/** Waiting for the account's pending transactions (sent by another process) before sending. */
export interface PendingWait {
  /** The account's next nonce on chain (its lowest pending one). */
  nonce: number;
  /** When the wait began, ms since the epoch. */
  sinceMs: number;
  /** The latest block seen while waiting, and when it was first seen (ms since the epoch). */
  headBlock: number;
  headSeenAtMs: number;
}

export interface TxSenderCounters {
  sent: number;
  mined: number;
  bumps: number;
  rebroadcasts: number;
  /** Stuck transactions of the account (not ours) that were replaced to free the nonce. */
  takeovers: number;
  nonceTooLow: number;
  alreadyKnown: number;
  underpriced: number;
  feeCapped: number;
  spendCapped: number;
  /**
   * Receipts not taken as they came: one naming a block the chain does not have (taken as not
   * mined yet), or cost figures the signed transaction rules out (counted at its worst case).
   */
  badReceipts: number;
}

/** geth's minimum fee rise for a replacement (txpool `PriceBump`), percent; see #raised. */
const REPLACEMENT_BUMP_PCT = 10;

/** The least gas any transaction uses (the intrinsic cost of a call, Yellow Paper G_transaction). */
const TX_BASE_GAS = 21_000n;

interface RawReceipt {
  status: string;
  blockNumber: string;
  blockHash: string;
  gasUsed: string;
  effectiveGasPrice?: string;
  l1Fee?: string;
  logs: { address: string; topics: string[]; data: string; logIndex: string }[];
}

interface Version {
  tx: Transaction;
  hash: Hex;
}

const ceilPct = (v: bigint, pct: number): bigint => {
  const num = BigInt(Math.round(pct * 100));
  return (v * (10_000n + num) + 9_999n) / 10_000n;
};
const min = (a: bigint, b: bigint): bigint => (a < b ? a : b);
const max = (a: bigint, b: bigint): bigint => (a > b ? a : b);

export class TxSender {
  readonly address: Hex;
  readonly counters: TxSenderCounters = {
    sent: 0,
    mined: 0,
    bumps: 0,
    rebroadcasts: 0,
    takeovers: 0,
    nonceTooLow: 0,
    alreadyKnown: 0,
    underpriced: 0,
    feeCapped: 0,
    spendCapped: 0,
    badReceipts: 0,
  };
  readonly #key: SigningKey;
  readonly #rpc: RpcClient;
  readonly #chainId: bigint;
  readonly #caps: FeeCaps;
  readonly #bumpAfter: number;
  readonly #bumpPct: number;
  readonly #pollMs: number;
  readonly #margin: number;
  readonly #l1: L1FeeSource | null;
  readonly #log: Logger;
  #inFlight: InFlightTx | null = null;
  #pendingWait: PendingWait | null = null;

  constructor(o: TxSenderOptions) {
    this.#key = new SigningKey(o.privateKey);
    this.address = computeAddress(this.#key.publicKey).toLowerCase() as Hex;
    this.#rpc = o.rpc;
    this.#chainId = o.chainId;
    this.#caps = o.caps;
    this.#bumpAfter = o.bumpAfterBlocks ?? 3;
    this.#bumpPct = o.bumpPercent ?? 12.5;
    if (!(this.#bumpPct >= 10))
      throw new RangeError("bumpPercent must be at least 10 (geth's replacement minimum)");
    if (!Number.isInteger(this.#bumpAfter) || this.#bumpAfter < 1)
      throw new RangeError("bumpAfterBlocks must be an integer ≥ 1");
    if (o.caps.maxPriorityFeePerGas > o.caps.maxFeePerGas)
      throw new RangeError("the priority fee cap must not exceed the max fee cap");
    this.#pollMs = o.pollMs ?? 500;
    this.#margin = o.gasMarginPercent ?? 20;
    this.#l1 = o.l1Fee ?? null;
    this.#log = o.logger ?? silentLogger;
  }

  /** The transaction sent and not mined yet, if any. */
  inFlight(): InFlightTx | null {
    return this.#inFlight ? { ...this.#inFlight } : null;
  }

  /** The wait for the account's pending transactions of another process (before a send), if any. */
  pendingWait(): PendingWait | null {
    return this.#pendingWait ? { ...this.#pendingWait } : null;
  }

  toJSON(): object {
    return { address: this.address };
  }
  [inspect.custom](): string {
    return `TxSender(${this.address})`;
  }

  async #count(tag: "latest" | "pending"): Promise<number> {
    return Number(BigInt(await this.#rpc.request<string>("eth_getTransactionCount", [this.address, tag])));
  }

  /**
   * The chain's height, for counting blocks (fee bumps, the wait for stuck transactions) and for the
   * stall check's head: the number of the latest block (`eth_getBlockByNumber("latest", false)`), as
   * the anchoring service reads it, not `eth_blockNumber`, which a load-balanced provider may answer
   * from a lagging backend: frozen, it stopped fee bumps and showed "no-blocks" while the chain moved
   * (RPC audit, finding 7). Still one request per poll; only its answer is larger: a block header
   * and its transaction hashes (`false`: no bodies) instead of a quantity, of which `number` is used.
   */
  async #blockNumber(): Promise<number> {
    const block = await this.#rpc.request<{ number?: string } | null>("eth_getBlockByNumber", [
      "latest",
      false,
    ]);
    if (typeof block?.number !== "string") throw new ChainStateError("the endpoint has no latest block");
    return Number(BigInt(block.number));
  }

  /** Current EIP-1559 fees under the caps. @throws FeeCapError when the base fee is above the cap. */
  async quote(): Promise<{ baseFeePerGas: bigint; maxFeePerGas: bigint; maxPriorityFeePerGas: bigint }> {
    const block = await this.#rpc.request<{ baseFeePerGas?: string } | null>("eth_getBlockByNumber", [
      "latest",
      false,
    ]);
    if (!block?.baseFeePerGas) throw new ChainStateError("the chain has no EIP-1559 base fee (pre-London)");
    const base = BigInt(block.baseFeePerGas);
    let suggested: bigint;
    try {
      suggested = BigInt(await this.#rpc.request<string>("eth_maxPriorityFeePerGas", []));
    } catch (e) {
      if (!(e instanceof ChainError) || e.code !== "CHAIN_RPC") throw e;
      suggested = max(0n, BigInt(await this.#rpc.request<string>("eth_gasPrice", [])) - base);
    }
    if (base > this.#caps.maxFeePerGas) {
      this.counters.feeCapped++;
      throw new FeeCapError(base, this.#caps.maxFeePerGas);
    }
    let tip = min(suggested, this.#caps.maxPriorityFeePerGas);
    const fee = min(2n * base + tip, this.#caps.maxFeePerGas);
    if (tip > fee - base) tip = fee - base;
    return { baseFeePerGas: base, maxFeePerGas: fee, maxPriorityFeePerGas: tip };
  }

  /** Picks the nonce (see the file comment, step 1). */
  async #nonce(signal: AbortSignal | undefined): Promise<{ nonce: number; takeover: boolean }> {
    let latest = await this.#count("latest");
    let pending = await this.#count("pending");
    if (pending <= latest) return { nonce: latest, takeover: false };
    const start = await this.#blockNumber();
    this.#log.info(
      { account: this.address, latest, pending },
      "transactions of the sending account are pending; waiting for them before sending",
    );
    // Shown while it lasts (health): a halted chain makes this wait as long as it is halted.
    const now = Date.now();
    const w: PendingWait = { nonce: latest, sinceMs: now, headBlock: start, headSeenAtMs: now };
    this.#pendingWait = w;
    try {
      for (let bn = start; bn < start + this.#bumpAfter; bn = await this.#blockNumber()) {
        if (bn !== w.headBlock) {
          w.headBlock = bn;
          w.headSeenAtMs = Date.now();
        }
        await this.#sleep(signal);
        latest = await this.#count("latest");
        pending = await this.#count("pending");
        w.nonce = latest;
        if (pending <= latest) return { nonce: latest, takeover: false };
      }
    } finally {
      this.#pendingWait = null;
    }
    this.counters.takeovers++;
    this.#log.warn(
      { account: this.address, nonce: latest },
      "a pending transaction of the sending account is stuck; replacing it",
    );
    return { nonce: latest, takeover: true };
  }

  #sign(fields: {
    nonce: number;
    to: string;
    data: string;
    gasLimit: bigint;
    maxFeePerGas: bigint;
    maxPriorityFeePerGas: bigint;
  }): Version {
    const tx = Transaction.from({ type: 2, chainId: this.#chainId, value: 0n, ...fields });
    tx.signature = this.#key.sign(tx.unsignedHash);
    return { tx, hash: tx.hash as Hex };
  }

  /** Broadcasts; "already known" counts as sent. Other errors are thrown typed. */
  async #broadcast(v: Version): Promise<void> {
    try {
      await this.#rpc.request("eth_sendRawTransaction", [v.tx.serialized]);
    } catch (e) {
      if (e instanceof AlreadyKnownError) {
        this.counters.alreadyKnown++;
        return;
      }
      if (e instanceof NonceTooLowError) this.counters.nonceTooLow++;
      if (e instanceof ReplacementUnderpricedError) this.counters.underpriced++;
      throw e;
    }
  }

  /**
   * Next fees of a replacement: +bumpPercent (at least the current market), capped (max fee at most
   * `feeCap`, this transaction's cap after the budget); null at the caps.
   */
  #bumped(
    prev: Transaction,
    base: bigint,
    tipNow: bigint,
    feeCap: bigint,
  ): { maxFeePerGas: bigint; maxPriorityFeePerGas: bigint } | null {
    const prevTip = prev.maxPriorityFeePerGas ?? 0n;
    const prevFee = prev.maxFeePerGas ?? 0n;
    let tip = min(
      max(ceilPct(prevTip, this.#bumpPct), min(tipNow, this.#caps.maxPriorityFeePerGas)),
      this.#caps.maxPriorityFeePerGas,
    );
    const fee = min(max(ceilPct(prevFee, this.#bumpPct), 2n * base + tip), feeCap);
    if (tip > fee) tip = fee;
    // geth accepts a replacement only when both fees rise by at least 10 %.
    if (tip < ceilPct(prevTip, 10) || fee < ceilPct(prevFee, 10) || (tip === prevTip && fee === prevFee))
      return null;
    return { maxFeePerGas: fee, maxPriorityFeePerGas: tip };
  }

  /**
   * Fees for another try after "replacement underpriced" against a transaction we did not send
   * (its fees are unknown): each raised by the replacement minimum, geth's `PriceBump` of 10 %
   * (core/txpool/legacypool: `DefaultConfig.PriceBump`, and `list.Add`, which refuses a replacement
   * unless its max fee and its tip are both ≥ old × (100 + PriceBump) / 100 and above the old ones),
   * as far as the caps allow; null when neither can rise any more. The max fee stays at most
   * `feeCap`, as in #bumped. One raise per attempt: the stuck transaction is outbid by the least a
   * node accepts, not by whatever a burst of retries reaches.
   */
  #raised(prev: Transaction, feeCap: bigint): { maxFeePerGas: bigint; maxPriorityFeePerGas: bigint } | null {
    const prevTip = prev.maxPriorityFeePerGas ?? 0n;
    const prevFee = prev.maxFeePerGas ?? 0n;
    let tip = min(max(ceilPct(prevTip, REPLACEMENT_BUMP_PCT), prevTip + 1n), this.#caps.maxPriorityFeePerGas);
    const fee = min(max(ceilPct(prevFee, REPLACEMENT_BUMP_PCT), prevFee + 1n), feeCap);
    if (tip > fee) tip = fee;
    if (tip <= prevTip && fee <= prevFee) return null;
    return { maxFeePerGas: fee, maxPriorityFeePerGas: tip };
  }

  /** The newest of `versions` the node knows (pending or mined: eth_getTransactionByHash), if any. */
  async #known(versions: readonly Version[]): Promise<Version | undefined> {
    for (let i = versions.length - 1; i >= 0; i--) {
      const v = versions[i]!;
      const t = await this.#rpc.request<{ hash?: string } | null>("eth_getTransactionByHash", [v.hash]);
      if (t && typeof t.hash === "string" && t.hash.toLowerCase() === v.hash.toLowerCase()) {
        this.counters.alreadyKnown++;
        return v;
      }
    }
    return undefined;
  }

  /**
   * The receipt of `hash`, null while not mined. A receipt whose block the chain does not have
   * (beyond the head, or another hash at that height) is taken as not mined yet: recorded, such a
   * block number had the anchor service wait for the chain to reach it, for ever (RPC audit).
   */
  async #receipt(hash: Hex): Promise<RawReceipt | null> {
    const r = await this.#rpc.request<RawReceipt | null>("eth_getTransactionReceipt", [hash]);
    if (!r) return null;
    const block = await this.#rpc.request<{ hash?: string } | null>("eth_getBlockByNumber", [
      r.blockNumber,
      false,
    ]);
    if (typeof block?.hash === "string" && block.hash.toLowerCase() === String(r.blockHash).toLowerCase())
      return r;
    this.counters.badReceipts++;
    this.#log.warn(
      { txHash: hash, blockNumber: r.blockNumber, blockHash: r.blockHash, chainHas: block?.hash ?? null },
      "a receipt names a block the chain does not have; taken as not mined yet",
    );
    return null;
  }

  async #sleep(signal: AbortSignal | undefined): Promise<void> {
    if (signal?.aborted) throw new ChainError("CHAIN_ABORTED", "sending was stopped");
    await new Promise<void>((res) => {
      // The listener goes when the timer fires: one poll after another on the service's
      // long-lived signal must not pile listeners up (MaxListenersExceededWarning, a leak).
      const onAbort = (): void => (clearTimeout(t), res());
      const t = setTimeout(() => (signal?.removeEventListener("abort", onAbort), res()), this.#pollMs);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
    if (signal?.aborted) throw new ChainError("CHAIN_ABORTED", "sending was stopped");
  }

  /**
   * Sends a call to `to` and resolves when it is mined (one confirmation). Reverts are thrown as
   * ContractRevertError before sending (gas estimation) or after (a mined failure, re-simulated for
   * its reason).
   */
  async send(req: SendRequest): Promise<MinedTx> {
    const { nonce, takeover } = await this.#nonce(req.signal);
    const gas = BigInt(
      await this.#rpc.request<string>("eth_estimateGas", [
        { from: this.address, to: req.to, data: req.data },
      ]),
    );
    const gasLimit = (gas * BigInt(100 + this.#margin)) / 100n;
    let fees = await this.quote();
    const versions: Version[] = [];
    let current = this.#sign({ nonce, to: req.to, data: req.data, gasLimit, ...fees });
    // The largest max fee any version of this transaction may offer: the configured cap, lowered so
    // that gasLimit × max fee + the L1 fee stays within the remaining daily budget. Bumps obey it too,
    // so a transaction whose fee rises while it waits cannot spend past the cap.
    let feeCap = this.#caps.maxFeePerGas;
    if (req.budget) {
      const l1 = this.#l1 ? await this.#l1.l1Fee(current.tx.unsignedSerialized as Hex, "latest") : 0n;
      const worst = gasLimit * fees.maxFeePerGas + l1;
      if (req.budget.spentWei + worst > req.budget.capWei) {
        this.counters.spendCapped++;
        throw new SpendCapError(req.budget.spentWei, worst, req.budget.capWei);
      }
      feeCap = min(feeCap, (req.budget.capWei - req.budget.spentWei - l1) / gasLimit);
    }
    // Send the first version; a stuck transaction we take over may need several raises to replace.
    // On "replacement underpriced" the node may still have one of ours (a provider that forwarded it
    // and answered with another backend's error, a version sent just before): if it knows one, that
    // one is in flight. Otherwise one raise by the replacement minimum per attempt, after a pause.
    const tried: Version[] = [];
    for (;;) {
      try {
        tried.push(current);
        await this.#broadcast(current);
        break;
      } catch (e) {
        if (!(e instanceof ReplacementUnderpricedError)) throw e;
        const known = await this.#known(tried);
        if (known) {
          this.#log.info(
            { nonce, tx: known.hash },
            "replacement underpriced, but the node has this transaction: waiting for it",
          );
          current = known;
          break;
        }
        const next = this.#raised(current.tx, feeCap);
        if (!next) throw e; // at the caps: the stuck transaction pays more than we may
        this.#log.info(
          {
            nonce,
            takeover,
            maxFeePerGas: String(next.maxFeePerGas),
            maxPriorityFeePerGas: String(next.maxPriorityFeePerGas),
          },
          "replacement underpriced; raising the fee by the replacement minimum",
        );
        await this.#sleep(req.signal);
        current = this.#sign({ nonce, to: req.to, data: req.data, gasLimit, ...next });
      }
    }
    versions.push(current);
    this.counters.sent++;
    let sentAt = await this.#blockNumber();
    const now = Date.now();
    this.#inFlight = {
      nonce,
      txHash: current.hash,
      maxFeePerGas: current.tx.maxFeePerGas ?? 0n,
      maxPriorityFeePerGas: current.tx.maxPriorityFeePerGas ?? 0n,
      sentAtBlock: sentAt,
      versions: 1,
      atCap: false,
      sentAtMs: now,
      headBlock: sentAt,
      headSeenAtMs: now,
    };
    try {
      for (;;) {
        const mined = await this.#findMined(versions);
        if (mined) return await this.#finish(mined.v, mined.r, nonce, versions.length - 1, req);
        if ((await this.#count("latest")) > nonce) {
          // The nonce is used. Ours, if a receipt shows up: nodes (and load-balanced providers) can
          // report the new count a moment before the receipt, so look a few more times.
          for (let k = 0; k < 20; k++) {
            const again = await this.#findMined(versions);
            if (again) return await this.#finish(again.v, again.r, nonce, versions.length - 1, req);
            await this.#sleep(req.signal);
          }
          this.counters.nonceTooLow++;
          throw new NonceTooLowError(
            `nonce ${nonce} of ${this.address} was used by another transaction (a concurrent sender with the same key?)`,
          );
        }
        const bn = await this.#blockNumber();
        if (bn !== this.#inFlight.headBlock) {
          // A head that stops moving while we wait is a halted sequencer or a frozen endpoint.
          this.#inFlight.headBlock = bn;
          this.#inFlight.headSeenAtMs = Date.now();
        }
        if (bn >= sentAt + this.#bumpAfter) {
          fees = await this.quote().catch((e: unknown) => {
            if (e instanceof FeeCapError) return { ...fees, baseFeePerGas: e.baseFeePerGas };
            throw e;
          });
          const next = this.#bumped(current.tx, fees.baseFeePerGas, fees.maxPriorityFeePerGas, feeCap);
          if (next) {
            const v = this.#sign({ nonce, to: req.to, data: req.data, gasLimit, ...next });
            try {
              await this.#broadcast(v);
              versions.push(v);
              current = v;
              this.counters.bumps++;
              this.#log.info(
                {
                  nonce,
                  tx: v.hash,
                  maxFeePerGas: String(next.maxFeePerGas),
                  maxPriorityFeePerGas: String(next.maxPriorityFeePerGas),
                  afterBlocks: bn - sentAt,
                },
                "transaction not mined; replaced with a higher fee",
              );
            } catch (e) {
              // Mined meanwhile (nonce too low), a higher-paying twin exists, or the base fee rose past
              // the new fee before it arrived: the loop sees what happened and tries again later.
              if (!(
                e instanceof NonceTooLowError ||
                e instanceof ReplacementUnderpricedError ||
                e instanceof FeeTooLowError
              ))
                throw e;
            }
          } else {
            // At the caps: broadcast the last version again (it may have been dropped).
            // A node that refuses transactions under the base fee (anvil) says FeeTooLow: keep waiting.
            await this.#broadcast(current).catch((e: unknown) => {
              if (!(
                e instanceof NonceTooLowError ||
                e instanceof ReplacementUnderpricedError ||
                e instanceof FeeTooLowError
              ))
                throw e;
            });
            this.counters.rebroadcasts++;
            this.#inFlight.atCap = true;
            this.#log.warn(
              { nonce, tx: current.hash, baseFeePerGas: String(fees.baseFeePerGas) },
              "transaction not mined and its fee is at the configured caps; broadcast again",
            );
          }
          sentAt = bn;
          this.#inFlight.txHash = current.hash;
          this.#inFlight.maxFeePerGas = current.tx.maxFeePerGas ?? 0n;
          this.#inFlight.maxPriorityFeePerGas = current.tx.maxPriorityFeePerGas ?? 0n;
          this.#inFlight.sentAtBlock = sentAt;
          this.#inFlight.versions = versions.length;
        }
        await this.#sleep(req.signal);
      }
    } finally {
      this.#inFlight = null;
    }
  }

  /** What a mined transaction cost: gas × effective price + the OP-Stack L1 fee (receipt or oracle). */
  async #paid(txHash: Hex, r: RawReceipt, tx: Transaction): Promise<PaidTx> {
    let gasUsed = BigInt(r.gasUsed);
    let price = BigInt(r.effectiveGasPrice ?? tx.maxFeePerGas ?? tx.gasPrice ?? 0n);
    // The daily spend cap counts what receipts say; figures the signed transaction rules out
    // (gas below a call's intrinsic 21,000 or above its limit, a price outside [tip, max fee],
    // EIP-1559) are counted at the worst case it allows: a lying endpoint cannot spend past the cap.
    const maxFee = tx.maxFeePerGas ?? tx.gasPrice ?? 0n;
    const tip = tx.maxPriorityFeePerGas ?? 0n;
    if (gasUsed < TX_BASE_GAS || gasUsed > tx.gasLimit || price < min(tip, maxFee) || price > maxFee) {
      this.counters.badReceipts++;
      this.#log.warn(
        { txHash, gasUsed: String(gasUsed), effectiveGasPrice: String(price) },
        "a receipt's gas or price is outside what the transaction allows; its cost is counted at the worst case (gas limit × max fee)",
      );
      gasUsed = tx.gasLimit;
      price = maxFee;
    }
    let l1: bigint | null = r.l1Fee !== undefined && r.l1Fee !== null ? BigInt(r.l1Fee) : null;
    if (l1 === null && this.#l1) {
      try {
        l1 = await this.#l1.l1Fee(tx.unsignedSerialized as Hex, r.blockNumber);
      } catch (e) {
        this.#log.warn({ err: (e as Error).message }, "L1 fee could not be read");
      }
    }
    return { txHash, gasUsed, l1FeeWei: l1, costWei: gasUsed * price + (l1 ?? 0n) };
  }

  /**
   * What the mined transaction `txHash` cost this account (a transaction sent before a restart and
   * found mined after it); null when it is not mined or another account sent it.
   */
  async costOf(txHash: Hex): Promise<PaidTx | null> {
    const r = await this.#rpc.request<(RawReceipt & { from: string }) | null>("eth_getTransactionReceipt", [
      txHash,
    ]);
    if (!r || r.from.toLowerCase() !== this.address) return null;
    const t = await this.#rpc.request<{
      nonce: string;
      to: string | null;
      input: string;
      value: string;
      gas: string;
      maxFeePerGas?: string;
      maxPriorityFeePerGas?: string;
      gasPrice?: string;
      type: string;
      chainId?: string;
    } | null>("eth_getTransactionByHash", [txHash]);
    if (!t) return null;
    // The unsigned transaction as it was signed: the L1 fee oracle prices its serialized bytes.
    const tx = Transaction.from({
      type: Number(BigInt(t.type)),
      chainId: this.#chainId,
      nonce: Number(BigInt(t.nonce)),
      to: t.to,
      data: t.input,
      value: BigInt(t.value),
      gasLimit: BigInt(t.gas),
      ...(t.maxFeePerGas !== undefined
        ? {
            maxFeePerGas: BigInt(t.maxFeePerGas),
            maxPriorityFeePerGas: BigInt(t.maxPriorityFeePerGas ?? 0),
          }
        : { gasPrice: BigInt(t.gasPrice ?? 0) }),
    });
    // The day it was paid: the spend ledger counts it on that UTC day only.
    const block = await this.#rpc.request<{ timestamp: string } | null>("eth_getBlockByNumber", [
      r.blockNumber,
      false,
    ]);
    const paid = await this.#paid(txHash, r, tx);
    return block ? { ...paid, minedAtUs: Number(BigInt(block.timestamp)) * 1e6 } : paid;
  }

  async #findMined(versions: readonly Version[]): Promise<{ v: Version; r: RawReceipt } | null> {
    for (let i = versions.length - 1; i >= 0; i--) {
      const v = versions[i]!;
      const r = await this.#receipt(v.hash);
      if (r) return { v, r };
    }
    return null;
  }

  async #finish(v: Version, r: RawReceipt, nonce: number, bumps: number, req: SendRequest): Promise<MinedTx> {
    this.counters.mined++;
    const blockNumber = Number(BigInt(r.blockNumber));
    const paid = await this.#paid(v.hash, r, v.tx);
    const { gasUsed, l1FeeWei: l1, costWei } = paid;
    // The price #paid counted (the receipt's, or the worst case when it was implausible): exact.
    const price = (costWei - (l1 ?? 0n)) / gasUsed;
    req.onCost?.(paid);
    if (BigInt(r.status) !== 1n) {
      // Mined but failed (e.g. another relayer anchored the seq first): find out why.
      let reason: ChainError = new ChainStateError(`transaction ${v.hash} was mined but failed`);
      try {
        await this.#rpc.request("eth_call", [
          { from: this.address, to: req.to, data: req.data },
          `0x${blockNumber.toString(16)}`,
        ]);
      } catch (e) {
        if (e instanceof ContractRevertError) reason = e;
      }
      throw reason;
    }
    return {
      txHash: v.hash,
      nonce,
      blockNumber,
      blockHash: r.blockHash.toLowerCase() as Hex,
      gasUsed,
      effectiveGasPrice: price,
      l1FeeWei: l1,
      costWei,
      bumps,
      logs: r.logs.map((l) => ({
        address: l.address.toLowerCase(),
        topics: l.topics.map((t) => t.toLowerCase()),
        data: l.data,
        index: Number(BigInt(l.logIndex)),
      })),
    };
  }
}
