/**
 * The anchoring service: drains the store's outbox (sealed, unanchored batches) into the registry,
 * in seq order, exactly once, and watches every anchor until it is final.
 *
 * - Order and uniqueness: the store only accepts `markAnchored(anchoredThrough+1)`; before sending,
 *   the service reads the registry's head for the gateway. A batch whose seq the chain already has
 *   (sent before a crash, or by another relayer) is recorded after its BatchAnchored event is found
 *   and its header hash checked, not resent; the contract rejects any other seq (`UnexpectedSequence`).
 * - Transactions: `AnchorChain.submit` (chain/tx-sender.ts) — EIP-1559 fees under the caps, nonces
 *   from the chain, fee bumps for a transaction not mined after N blocks. A backlog goes out
 *   `maxBatchesPerTx` batches per `anchorMany` transaction.
 * - Finality: an anchor is recorded at inclusion with `final: false` and its block hash. Each run
 *   (when the latest block changed) checks the unfinished anchors: one whose block is at or below the
 *   chain's final block (`confirmations` deep, or the `finalized` tag) is marked final; one whose
 *   transaction moved to another block is updated. A registry head below the local anchored count
 *   (a reorg dropped anchor transactions) un-anchors every batch above it in the store
 *   (`rewindAnchors`), and the same sealed headers are anchored again — seq and head chain
 *   unchanged. A chain whose head is below a *final*
 *   anchor (a reorg deeper than the finality depth, a reset chain, another registry) stops anchoring
 *   with `AnchorStateError`: `vigil anchor resync` reconciles the store with the chain.
 * - Pauses: a base fee above `maxFeePerGas` (fee-cap), the daily spend cap (spend-cap: until the next
 *   UTC midnight when the day's spend leaves no room for a transaction like the last one paid;
 *   otherwise only the momentary worst case is over, and it is re-checked every `intervalMs`), a
 *   gateway the registry does not accept (gateway-inactive: revoked or suspended; signer-mismatch:
 *   its key changed), an empty sending account (insufficient-funds). Anchoring
 *   pauses with one log line, `status().paused` and a counter per reason; ingest and sealing go on,
 *   the backlog waits in the store and drains when the cause is gone.
 * - Failures: network errors drop the connection (reconnect next time, failover inside it) and retry
 *   with exponential backoff (initialMs · 2^n, capped at maxMs, ±20 % jitter).
 * - Scheduling: every `intervalMs` (default 5 s) or on a node-cron expression (`cron`), and
 *   `trigger()` after a seal.
 */
import cron from "node-cron";
import { VigilError, redactText, redactedError } from "../core/errors.ts";
import {
  ChainError,
  ChainNetworkError,
  ContractRevertError,
  FeeCapError,
  InsufficientFundsError,
  SpendCapError,
} from "../chain/errors.ts";
import { hashBatchHeader } from "../chain/eip712.ts";
import { type Hex } from "../core/hex.ts";
import { toEip712Header } from "../attest/header.ts";
import { backoffMs, realTimers, unrefTimer, type Timers } from "../core/timers.ts";
import { silentLogger, type Logger } from "../core/log.ts";
import type { AnchorRecord, FrameStore, SealedBatch } from "../store/types.ts";
import type { PaidTx } from "../chain/tx-sender.ts";
import type { AnchorChain, AnchorChainHealth, SubmittedAnchor } from "./chain.ts";
import { dayStartUs, SpendLedger } from "./spend.ts";

export class AnchorStateError extends VigilError {
  override name = "AnchorStateError";
  constructor(message: string) {
    super("ANCHOR_STATE", message);
  }
}

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
}

/** Why anchoring is paused. */
export type AnchorPauseReason =
  "fee-cap" | "spend-cap" | "gateway-inactive" | "signer-mismatch" | "insufficient-funds";

export const PAUSE_REASONS: readonly AnchorPauseReason[] = [
  "fee-cap",
  "spend-cap",
  "gateway-inactive",
  "signer-mismatch",
  "insufficient-funds",
];

export interface AnchorPause {
  reason: AnchorPauseReason;
  /** One sentence: what was hit and what happens next. */
  message: string;
  sinceUs: number;
  /** When anchoring is tried again by itself (µs), null = at the next scheduled retry. */
  untilUs: number | null;
}

export interface AnchorServiceOptions {
  store: FrameStore;
  gatewayId: Hex;
  /** Opens a chain connection; called lazily and again after a network failure. */
  connect: () => Promise<AnchorChain>;
  /** Finality depth recorded in each AnchorRecord (`confirmations`), 0 with the finalized tag. Default 12. */
  confirmations?: number;
  /** Run period. Default 5000 ms. Ignored when `cron` is set. */
  intervalMs?: number;
  /** node-cron expression (e.g. every 10 s: a six-field expression with seconds). */
  cron?: string;
  /** Batches per run. Default 100. */
  maxPerRun?: number;
  /** Batches per transaction when a backlog waits (registry `anchorMany`, all or nothing). Default 1. */
  maxBatchesPerTx?: number;
  /** Daily spend cap (gas + L1 fee per UTC day), wei; undefined = none. */
  maxSpendPerDayWei?: bigint;
  /** Retry backoff. Default 1 s doubling to 60 s. */
  backoff?: Partial<BackoffOptions>;
  timers?: Timers;
  nowUs?: () => number;
  /** In [0, 1); jitter source (injectable for deterministic tests). */
  random?: () => number;
  logger?: Logger;
  onAnchored?: (batch: SealedBatch, anchor: AnchorRecord) => void;
  /** Called when anchoring pauses (with the pause) and resumes (with null). */
  onPause?: (pause: AnchorPause | null) => void;
  /**
   * An anchor transaction in flight while the chain's head has not moved for this long is shown
   * as stalled (`no-blocks`). Default 120 000 ms.
   */
  stallAfterMs?: number;
}

/** Why the anchor transaction in flight is not being mined (status, readiness warning). */
export interface AnchorStall {
  /**
   * `fee-cap`: its fee reached the configured caps and the base fee stays above them;
   * `no-blocks`: the endpoint has reported no new block for `stallAfterMs` (a halted sequencer
   * or a frozen endpoint).
   */
  reason: "fee-cap" | "no-blocks";
  /** One sentence: what waits, why, and what to do. */
  message: string;
  /** The waiting transaction; null when it is the account's pending one of another process. */
  txHash: string | null;
  /** When the transaction was first sent (or the wait for another process's began), µs. */
  sentAtUs: number;
}

export interface AnchorCounters {
  /** Batches recorded as anchored (including ones found already on chain). */
  anchored: number;
  /** Anchoring transactions mined. */
  transactions: number;
  /** Anchors seen final. */
  finalized: number;
  /** Anchors a reorg dropped (each is anchored again). */
  reorgs: number;
  /** Anchor records moved to another block by a reorg (same transaction). */
  moved: number;
  /** Pauses started, by reason. */
  pauses: Record<AnchorPauseReason, number>;
}

export interface AnchorStatus {
  anchoredThrough: number;
  /** Highest seq whose anchor is final (all lower ones are final too). */
  finalThrough: number;
  /** Sealed batches not anchored yet. */
  backlog: number;
  /** Anchored batches not final yet. */
  unfinalized: number;
  failures: number;
  lastError: { code: string; message: string } | null;
  nextRetryMs: number | null;
  /** Non-null while anchoring is paused (alert on it). */
  paused: AnchorPause | null;
  /** Non-null while the anchor transaction in flight is stuck (alert on it). */
  stalled: AnchorStall | null;
  /**
   * Gas used by the anchoring transactions this gateway's account paid for, counted since start:
   * reverted ones and ones sent before a restart and found mined after it included.
   */
  gasUsed: number;
  /** Their L2 execution fees (cost minus the L1 data fee), wei as a decimal string, since start. */
  feeWei: string;
  /** Their OP-Stack L1 data fees, wei as a decimal string, since start ("0" without one). */
  l1FeeWei: string;
  /**
   * Spent on anchoring this UTC day (gas + L1 fee of every mined transaction, reverted ones
   * included), wei as a decimal string; kept in the store across restarts.
   */
  spentTodayWei: string;
  /** The daily cap, wei as a decimal string; null = none. */
  spendCapWei: string | null;
  /** The last anchoring transaction: L2 gas and the L1 data fee beside it. */
  lastTx: {
    txHash: string;
    seqs: [number, number];
    gasUsed: number;
    l1FeeWei: string | null;
    costWei: string;
    bumps: number;
  } | null;
  counters: AnchorCounters;
  /** RPC endpoints (redacted URLs, the current index), the sender's in-flight transaction. */
  chain: AnchorChainHealth | null;
}

const DAY_US = 86_400e6;

export class AnchorService {
  /** Totals since start, for metrics (vigil_anchor_gas_used_total, vigil_anchor_fee_wei_total). */
  private readonly paid = { gasUsed: 0n, feeWei: 0n, l1FeeWei: 0n };
  private readonly store: FrameStore;
  private readonly gatewayId: Hex;
  private readonly connectFn: () => Promise<AnchorChain>;
  private readonly confirmations: number;
  private readonly intervalMs: number;
  private readonly cronExpr: string | undefined;
  private readonly maxPerRun: number;
  private readonly maxBatchesPerTx: number;
  private readonly spendCap: bigint | undefined;
  private readonly backoff: BackoffOptions;
  private readonly timers: Timers;
  private readonly nowUs: () => number;
  private readonly random: () => number;
  private readonly log: Logger;
  private readonly onAnchored: AnchorServiceOptions["onAnchored"];
  private readonly onPause: AnchorServiceOptions["onPause"];
  private readonly stallAfterMs: number;

  private chain: AnchorChain | undefined;
  private timer: unknown;
  private cronTask: { stop(): void | Promise<void> } | undefined;
  private running: Promise<number> | undefined;
  private started = false;
  private failures = 0;
  private lastError: VigilError | undefined;
  private nextRetryMs: number | null = null;
  private paused: AnchorPause | null = null;
  private finalThrough = -1;
  private lastSeenBlock: string | undefined;
  private spend: SpendLedger | undefined;
  private lastTx: AnchorStatus["lastTx"] = null;
  private abort = new AbortController();
  readonly counters: AnchorCounters = {
    anchored: 0,
    transactions: 0,
    finalized: 0,
    reorgs: 0,
    moved: 0,
    pauses: Object.fromEntries(PAUSE_REASONS.map((r) => [r, 0])) as Record<AnchorPauseReason, number>,
  };

  constructor(o: AnchorServiceOptions) {
    this.store = o.store;
    this.gatewayId = o.gatewayId.toLowerCase() as Hex;
    this.connectFn = o.connect;
    this.confirmations = o.confirmations ?? 12;
    this.intervalMs = o.intervalMs ?? 5000;
    this.cronExpr = o.cron;
    this.maxPerRun = o.maxPerRun ?? 100;
    this.maxBatchesPerTx = o.maxBatchesPerTx ?? 1;
    if (!Number.isInteger(this.maxBatchesPerTx) || this.maxBatchesPerTx < 1)
      throw new RangeError("anchor.maxBatchesPerTx must be an integer ≥ 1");
    this.spendCap = o.maxSpendPerDayWei;
    this.backoff = { initialMs: 1000, maxMs: 60_000, ...o.backoff };
    this.timers = o.timers ?? realTimers;
    this.nowUs = o.nowUs ?? (() => Date.now() * 1000);
    this.random = o.random ?? Math.random;
    this.log = o.logger ?? silentLogger;
    this.onAnchored = o.onAnchored;
    this.onPause = o.onPause;
    this.stallAfterMs = o.stallAfterMs ?? 120_000;
    if (this.cronExpr !== undefined && !cron.validate(this.cronExpr))
      throw new RangeError(`anchor.cron: invalid cron expression "${this.cronExpr}"`);
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.abort = new AbortController();
    if (this.cronExpr !== undefined) this.cronTask = cron.schedule(this.cronExpr, () => this.trigger());
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.started = false;
    this.abort.abort();
    await this.cronTask?.stop();
    this.cronTask = undefined;
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => {});
    const c = this.chain;
    this.chain = undefined;
    await c?.close().catch(() => {});
  }

  /** Runs soon (e.g. right after a seal), unless a retry backoff or a pause is pending. */
  trigger(): void {
    if (!this.started || this.nextRetryMs !== null || this.paused) return;
    void this.runAndReschedule();
  }

  status(): AnchorStatus {
    const anchored = this.store.anchoredThrough();
    const final = Math.max(0, Math.min(this.finalThrough, anchored));
    return {
      anchoredThrough: anchored,
      finalThrough: final,
      backlog: this.store.lastBatchSeq() - anchored,
      unfinalized: this.finalThrough < 0 ? 0 : anchored - final,
      failures: this.failures,
      lastError: this.lastError ? { code: this.lastError.code, message: this.lastError.shortMessage } : null,
      nextRetryMs: this.nextRetryMs,
      paused: this.paused ? { ...this.paused } : null,
      stalled: this.stall(),
      gasUsed: Number(this.paid.gasUsed),
      feeWei: String(this.paid.feeWei),
      l1FeeWei: String(this.paid.l1FeeWei),
      spentTodayWei: String(this.spend?.spentWei(this.nowUs()) ?? 0n),
      spendCapWei: this.spendCap === undefined ? null : String(this.spendCap),
      lastTx: this.lastTx ? { ...this.lastTx } : null,
      counters: { ...this.counters, pauses: { ...this.counters.pauses } },
      chain: this.chain?.health?.() ?? null,
    };
  }

  /** Why the transaction in flight is not mined, judged from the sender's view (see AnchorStall). */
  private stall(): AnchorStall | null {
    const sender = this.chain?.health?.().sender;
    const tx = sender?.inFlight;
    const wait = sender?.pendingWait;
    if (!tx && wait) {
      // Waiting for the account's pending transactions of another process: no send until they clear.
      const quietMs = this.nowUs() / 1000 - wait.headSeenAtMs;
      return quietMs >= this.stallAfterMs
        ? {
            txHash: null,
            sentAtUs: wait.sinceMs * 1000,
            reason: "no-blocks",
            message: `no new block for ${Math.round(quietMs / 1000)} s (block ${wait.headBlock}) while anchoring waits for the sending account's pending transaction (nonce ${wait.nonce}): the sequencer is halted or the RPC endpoint is frozen (add another endpoint to chain.rpcUrls)`,
          }
        : null;
    }
    if (!tx) return null;
    const base = { txHash: tx.txHash, sentAtUs: tx.sentAtMs * 1000 };
    if (tx.atCap)
      return {
        ...base,
        reason: "fee-cap",
        message: `anchor transaction ${tx.txHash} (nonce ${tx.nonce}) is at the fee caps and not mined: no replacement can pay more within chain.maxFeePerGasGwei, chain.maxPriorityFeePerGasGwei and the day's remaining chain.maxSpendPerDayEth; it is broadcast again until the fee falls (or raise the limit that holds it)`,
      };
    const quietMs = this.nowUs() / 1000 - tx.headSeenAtMs;
    if (quietMs >= this.stallAfterMs)
      return {
        ...base,
        reason: "no-blocks",
        message: `no new block for ${Math.round(quietMs / 1000)} s (block ${tx.headBlock}) while anchor transaction ${tx.txHash} waits: the sequencer is halted or the RPC endpoint is frozen (add another endpoint to chain.rpcUrls)`,
      };
    return null;
  }

  private schedule(ms: number): void {
    if (!this.started) return;
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timer = unrefTimer(
      this.timers.setTimeout(() => {
        this.timer = undefined;
        void this.runAndReschedule();
      }, ms),
    );
  }

  private async runAndReschedule(): Promise<void> {
    let ok = true;
    try {
      await this.runOnce();
    } catch {
      ok = false;
    }
    if (!this.started) return;
    if (this.paused) {
      const wait =
        this.paused.untilUs !== null
          ? Math.max(1000, Math.min(this.intervalMs, Math.ceil((this.paused.untilUs - this.nowUs()) / 1000)))
          : this.paused.reason === "fee-cap" || this.paused.reason === "spend-cap"
            ? Math.max(this.backoff.initialMs, Math.min(this.intervalMs, this.backoff.maxMs))
            : this.backoff.maxMs;
      this.nextRetryMs = wait;
      this.schedule(wait);
    } else if (ok) {
      this.nextRetryMs = null;
      // More waiting than one run takes: go again at once; else at the interval (or cron).
      const backlog = this.store.lastBatchSeq() - this.store.anchoredThrough();
      if (backlog > 0) this.schedule(0);
      else if (this.cronExpr === undefined) this.schedule(this.intervalMs);
    } else {
      const base = backoffMs(this.backoff.initialMs, this.failures - 1, this.backoff.maxMs);
      const delay = Math.round(base * (0.8 + 0.4 * this.random()));
      this.nextRetryMs = delay;
      this.schedule(delay);
    }
  }

  /**
   * One pass: finality and reorg checks, then the outbox. Resolves with the number of batches
   * anchored; rejects with a typed error (ChainError, AnchorStateError, StoreUnavailableError) after
   * recording it. A pause resolves 0 and sets `status().paused`. Concurrent calls share one pass.
   */
  runOnce(): Promise<number> {
    if (this.running) return this.running;
    const p = this.pass().finally(() => {
      this.running = undefined;
    });
    this.running = p;
    return p;
  }

  /**
   * Today's spend: the ledger in the store (spend.ts), loaded at the first pass. A store written
   * before the ledger existed starts from the costs in today's anchor records.
   */
  private async spentToday(): Promise<bigint> {
    this.spend ??= await SpendLedger.load(this.store, this.nowUs(), async () => {
      const day = Math.floor(this.nowUs() / DAY_US) * DAY_US;
      let wei = 0n;
      const seen = new Set<string>();
      for (let s = this.store.anchoredThrough(); s >= 1; s--) {
        const a = await this.store.getAnchor(s);
        if (!a || a.anchoredAtUs < day) break;
        if (a.costWei && a.txHash && !seen.has(a.txHash)) {
          seen.add(a.txHash);
          wei += BigInt(a.costWei);
        }
      }
      return wei;
    });
    return this.spend.spentWei(this.nowUs());
  }

  /** Counts a mined transaction's cost once: today's spend and the totals since start. */
  private noteCost(paid: PaidTx): void {
    if (!this.spend!.note(paid.txHash, paid.costWei, this.nowUs())) return;
    const l1 = paid.l1FeeWei ?? 0n;
    this.paid.gasUsed += paid.gasUsed;
    this.paid.l1FeeWei += l1;
    this.paid.feeWei += paid.costWei - l1;
  }

  private pause(reason: AnchorPauseReason, message: string, untilUs: number | null): void {
    if (this.paused?.reason === reason) {
      this.paused.message = message;
      this.paused.untilUs = untilUs;
      return;
    }
    this.paused = { reason, message, sinceUs: this.nowUs(), untilUs };
    this.counters.pauses[reason]++;
    this.log.warn(
      { reason, until: untilUs === null ? null : new Date(untilUs / 1000).toISOString() },
      `anchoring paused: ${message}`,
    );
    this.onPause?.({ ...this.paused });
  }

  private resume(): void {
    if (!this.paused) return;
    this.log.info({ reason: this.paused.reason }, "anchoring resumed");
    this.paused = null;
    this.onPause?.(null);
  }

  private async pass(): Promise<number> {
    let done = 0;
    try {
      await this.spentToday(); // loaded before anything is sent: the status shows it after a restart
      const chain = (this.chain ??= await this.connectFn());
      // Reading costs nothing: finality and reorgs are tracked during a spend-cap pause too.
      await this.trackFinality(chain);
      if (
        this.paused?.untilUs !== undefined &&
        this.paused.untilUs !== null &&
        this.nowUs() < this.paused.untilUs
      )
        return 0;
      const batches = await this.store.pendingAnchors(this.maxPerRun);
      if (batches.length === 0) {
        this.failures = 0;
        this.lastError = undefined;
        this.resume();
        return 0;
      }
      let onChain = (await chain.getHead(this.gatewayId)).seq;
      for (let i = 0; i < batches.length;) {
        const b = batches[i]!;
        const seq = BigInt(b.header.seq);
        if (onChain >= seq) {
          await this.commit(b, await this.recordExisting(chain, b, onChain));
          done++;
          i++;
          continue;
        }
        if (onChain !== seq - 1n)
          throw new AnchorStateError(
            `registry has ${onChain} batches of gateway ${this.gatewayId}, but batch ${b.header.seq} is next here: the chain was reset or this is another registry (run "vigil anchor resync")`,
          );
        // A backlog (e.g. after an outage) goes out several batches per transaction.
        const group = batches.slice(i, i + this.maxBatchesPerTx);
        const spent = await this.spentToday();
        let r: SubmittedAnchor;
        try {
          r = await chain.submit(
            group.map((g) => ({ header: toEip712Header(g.header), signature: g.signature as Hex })),
            {
              ...(this.spendCap !== undefined ? { budget: { spentWei: spent, capWei: this.spendCap } } : {}),
              signal: this.abort.signal,
              // Failed transactions too: a revert still pays for its gas.
              onCost: (paid) => this.noteCost(paid),
            },
          );
        } catch (e) {
          await this.spend!.save();
          // The chain moved under us (a transaction from before a restart, another relayer): re-read it.
          if (e instanceof ContractRevertError && /^Unexpected(Sequence|PrevHead)$/.test(e.errorName)) {
            const head = (await chain.getHead(this.gatewayId)).seq;
            if (head >= seq) {
              onChain = head;
              continue;
            }
          }
          throw e;
        }
        // Counted once (by hash) whether or not the chain connection reported it through onCost;
        // saved before the anchor record: a crash between the two finds the transaction mined and
        // the ledger already holding its hash.
        this.noteCost({ txHash: r.txHash, gasUsed: r.gasUsed, l1FeeWei: r.l1FeeWei, costWei: r.costWei });
        await this.spend!.save();
        this.lastSeenBlock = undefined; // a new anchor to watch: check again next time
        this.counters.transactions++;
        this.resume();
        for (const [k, g] of group.entries()) {
          const ev = r.events[k]!;
          if (ev.seq !== BigInt(g.header.seq) || ev.head !== g.head.toLowerCase())
            throw new AnchorStateError(
              `registry head after batch ${g.header.seq} is ${ev.head}, the gateway computed ${g.head}`,
            );
          await this.commit(g, {
            ...this.record(chain, r.txHash, r.blockNumber, r.blockHash),
            gasUsed: Number(r.gasUsed),
            costWei: String(r.costWei),
            l1FeeWei: r.l1FeeWei === null ? null : String(r.l1FeeWei),
          });
        }
        this.lastTx = {
          txHash: r.txHash,
          seqs: [group[0]!.header.seq, group.at(-1)!.header.seq],
          gasUsed: Number(r.gasUsed),
          l1FeeWei: r.l1FeeWei === null ? null : String(r.l1FeeWei),
          costWei: String(r.costWei),
          bumps: r.bumps,
        };
        this.log.info(
          {
            seqs: this.lastTx.seqs,
            tx: r.txHash,
            block: r.blockNumber,
            gasUsed: this.lastTx.gasUsed,
            l1FeeWei: this.lastTx.l1FeeWei,
            costWei: this.lastTx.costWei,
            bumps: r.bumps,
          },
          "anchor transaction mined",
        );
        onChain = BigInt(group.at(-1)!.header.seq);
        done += group.length;
        i += group.length;
      }
      this.failures = 0;
      this.lastError = undefined;
      return done;
    } catch (e) {
      if (await this.pauseFor(e)) return done;
      // stop() aborted the wait for a transaction: not a failure (it may still be mined; the next
      // start finds it on chain and records it without resending).
      if (!this.started && e instanceof ChainError && e.code === "CHAIN_ABORTED") {
        this.log.info({ anchored: done }, "anchoring stopped while a transaction was in flight");
        return done;
      }
      const err =
        e instanceof VigilError
          ? e
          : new ChainError("CHAIN", `anchoring failed: ${redactText((e as Error)?.message ?? String(e))}`, {
              cause: redactedError(e),
            });
      this.failures++;
      this.lastError = err;
      // A network failure may leave the connection in a bad state: open a new one next time.
      if (err instanceof ChainNetworkError) {
        const c = this.chain;
        this.chain = undefined;
        await c?.close().catch(() => {});
      }
      this.log.warn(
        { code: err.code, err: err.shortMessage, anchored: done, failures: this.failures },
        "anchoring failed; will retry",
      );
      throw err;
    }
  }

  /** Turns a cap or a refusal by the registry into a pause; false for other errors. */
  private async pauseFor(e: unknown): Promise<boolean> {
    if (e instanceof FeeCapError) {
      this.pause("fee-cap", `${e.shortMessage}; retrying until it falls`, null);
    } else if (e instanceof SpendCapError) {
      // Money spent: the day's spend leaves no room for a transaction like the last one paid (or
      // reaches the cap), and only the next UTC day makes room. Otherwise the cap is passed only by
      // the worst case of the next transaction, built from momentary readings (base fee, the
      // endpoint's gas estimate): re-checked at the fee-cap pause's cadence (RPC audit, finding 3).
      const last = await this.lastTxCostWei();
      if (e.spentWei >= e.capWei || (last !== undefined && e.spentWei + last > e.capWei)) {
        const next = (Math.floor(this.nowUs() / DAY_US) + 1) * DAY_US;
        this.pause("spend-cap", `${e.shortMessage}; anchoring resumes at 00:00 UTC`, next);
      } else {
        const every = Math.max(this.backoff.initialMs, Math.min(this.intervalMs, this.backoff.maxMs));
        this.pause(
          "spend-cap",
          `${e.shortMessage}; the day's spend leaves room${last === undefined ? "" : " for a transaction like the last one"}, so the worst case is checked again every ${every / 1000} s (and the day's spend restarts at 00:00 UTC)`,
          null,
        );
      }
    } else if (e instanceof InsufficientFundsError) {
      this.pause("insufficient-funds", "the sending account cannot pay for gas: fund it", null);
    } else if (e instanceof ContractRevertError && e.errorName === "GatewayNotActive") {
      this.pause(
        "gateway-inactive",
        `the registry refuses anchors: ${e.sentence}. Batches stay sealed in the store`,
        null,
      );
    } else if (
      e instanceof ContractRevertError &&
      /^(InvalidSignature|InvalidSignatureLength)$/.test(e.errorName)
    ) {
      this.pause(
        "signer-mismatch",
        `the registry refuses anchors: ${e.sentence} (the gateway key was rotated?). Batches stay sealed in the store`,
        null,
      );
    } else return false;
    const err = e as VigilError;
    this.lastError = err;
    return true;
  }

  /**
   * What the last anchoring transaction cost (wei): the one this process sent, else the newest
   * anchor record's (after a restart); undefined when none is known.
   */
  private async lastTxCostWei(): Promise<bigint | undefined> {
    if (this.lastTx) return BigInt(this.lastTx.costWei);
    try {
      const a = await this.store.getAnchor(this.store.anchoredThrough());
      return a?.costWei ? BigInt(a.costWei) : undefined;
    } catch (e) {
      // Judged without it (as a momentary worst case); the store's trouble shows elsewhere too.
      this.log.warn({ err: (e as Error).message }, "the last anchor's cost could not be read from the store");
      return undefined;
    }
  }

  private async commit(b: SealedBatch, rec: AnchorRecord): Promise<void> {
    await this.store.markAnchored(b.header.seq, rec);
    this.counters.anchored++;
    this.onAnchored?.(b, rec);
  }

  private record(chain: AnchorChain, txHash: string, blockNumber: number, blockHash: string): AnchorRecord {
    return {
      chainId: Number(chain.chainId),
      contract: chain.registryAddress.toLowerCase(),
      txHash,
      blockNumber,
      blockHash: blockHash.toLowerCase(),
      confirmations: this.confirmations,
      final: false,
      anchoredAtUs: this.nowUs(),
    };
  }

  /** The chain already has this batch: check it is ours and record where it is. */
  private async recordExisting(chain: AnchorChain, b: SealedBatch, onChain: bigint): Promise<AnchorRecord> {
    // Judged at one block: the registry's head and the event search both at the latest block read
    // here. `onChain` may come from a pool endpoint ahead of this one (load-balanced backends at
    // different heights): one that has not the batch yet is behind, not in conflict; and an
    // endpoint whose logs end below this block is refused by its node (LogsBeyondHeadError) and
    // retried, not searched short and reported as a state error.
    const latest = await chain.latestBlock();
    const seq = BigInt(b.header.seq);
    const at = await chain.getHead(this.gatewayId, latest.number);
    if (at.seq < seq)
      throw new ChainError(
        "CHAIN_BEHIND",
        `the registry counts batch ${b.header.seq} as anchored (${onChain} batches), but not at block ${latest.number}, the RPC endpoint's latest: waiting for it to catch up`,
      );
    if (at.seq === seq && at.head.toLowerCase() !== b.head.toLowerCase())
      throw new AnchorStateError(
        `registry head at batch ${b.header.seq} is ${at.head}, the gateway's is ${b.head}: another signer anchored this seq`,
      );
    const found = await chain.findAnchor(this.gatewayId, BigInt(b.header.seq), latest.number);
    if (!found)
      throw new AnchorStateError(
        `the registry counts batch ${b.header.seq} as anchored but no BatchAnchored event was found for it up to block ${latest.number}`,
      );
    if (found.headerHash !== hashBatchHeader(toEip712Header(b.header)))
      throw new AnchorStateError(
        `registry anchored a different header as batch ${b.header.seq}: another signer used this seq`,
      );
    this.log.info(
      { seq: b.header.seq, tx: found.txHash },
      "batch was already anchored; recorded without resending",
    );
    const rec = this.record(chain, found.txHash, found.blockNumber, found.blockHash);
    // Sent by this gateway's account before a restart: counted in the day's spend when it was mined
    // today (a store restored from a backup finds earlier days' anchors: not today's money).
    const paid = await chain.costOf?.(found.txHash);
    if (!paid) return rec;
    const today = dayStartUs(this.nowUs());
    if (paid.minedAtUs === undefined || dayStartUs(paid.minedAtUs) >= today) this.noteCost(paid);
    await this.spend!.save();
    return {
      ...rec,
      gasUsed: Number(paid.gasUsed),
      costWei: String(paid.costWei),
      l1FeeWei: paid.l1FeeWei === null ? null : String(paid.l1FeeWei),
    };
  }

  /** Finality and reorg checks of the anchored, not yet final batches (see the file comment). */
  private async trackFinality(chain: AnchorChain): Promise<void> {
    const anchored = this.store.anchoredThrough();
    if (anchored === 0) return;
    if (this.finalThrough < 0) this.finalThrough = await this.scanFinal(anchored);
    const latest = await chain.latestBlock();
    const key = `${latest.number}:${latest.hash}`;
    if (key === this.lastSeenBlock) return; // nothing mined, nothing reorganised since the last check
    // An endpoint below the newest anchor's block (a lagging fallback after a failover) has neither
    // its receipt nor the registry's newer head: that is not a reorg. Nothing is judged until the
    // chain it serves is at least that high (a real reorg keeps the height, or regains it).
    const newest = await this.store.getAnchor(anchored);
    if (newest?.blockNumber != null && latest.number < newest.blockNumber)
      throw new ChainError(
        "CHAIN_BEHIND",
        `the RPC endpoint is at block ${latest.number}, below block ${newest.blockNumber} of batch ${anchored}'s anchor: waiting for it to catch up (if the chain was reset instead, run "vigil anchor resync")`,
      );
    // At that block: another endpoint of the pool may answer, and must not be judged at its own head.
    const head = (await chain.getHead(this.gatewayId, latest.number)).seq;
    if (head < BigInt(this.finalThrough))
      throw new AnchorStateError(
        `the registry holds ${head} batches of gateway ${this.gatewayId}, fewer than the ${this.finalThrough} anchored as final here: a reorg deeper than the finality depth, a reset chain or another registry (run "vigil anchor resync")`,
      );
    let through = anchored;
    if (head < BigInt(anchored)) {
      // The registry holds fewer batches than anchored here, but all the final ones: a reorg dropped
      // the newest anchor transactions. Un-anchor everything above the registry's head and send it
      // again. Judged from the head, not per record: the dropped anchors can lie past the
      // `maxPerRun` records examined below (over 100 unfinished anchors is normal on an OP chain
      // with `finality: "finalized"`), and the send path would then see a registry behind the next
      // batch and report a reset chain.
      const n = await this.store.rewindAnchors(Number(head));
      this.counters.reorgs += n;
      this.log.warn(
        { registryHead: Number(head), anchored, unanchored: n },
        "a reorg dropped anchor transactions; anchoring the same batches again",
      );
      through = Number(head);
    }
    if (this.finalThrough >= through) {
      this.lastSeenBlock = through === anchored ? key : undefined;
      return;
    }
    // From the same "latest" block as the checks above: one read of the chain per pass.
    const finalBlock = await chain.finalizedBlock(latest.number);
    const limit = Math.min(through, this.finalThrough + this.maxPerRun);
    const complete = limit >= through && through === anchored;
    for (let s = this.finalThrough + 1; s <= limit; s++) {
      const rec = await this.store.getAnchor(s);
      if (!rec) throw new AnchorStateError(`batch ${s} is anchored but has no anchor record`);
      let loc = rec.txHash ? await chain.locate(rec.txHash as Hex) : null;
      let ev = loc?.events.find((e) => e.gatewayId === this.gatewayId && e.seq === BigInt(s));
      let updated: AnchorRecord = rec;
      if (!loc || !ev) {
        // s ≤ the registry's head (above it was un-anchored before the loop): anchored on chain
        // by another transaction (another relayer, or a record without a tx).
        const found = await chain.findAnchor(this.gatewayId, BigInt(s), latest.number);
        const b = await this.store.getBatch(s);
        if (!found || !b || found.headerHash !== hashBatchHeader(toEip712Header(b.header)))
          throw new AnchorStateError(
            `batch ${s}'s anchor transaction is gone, and the registry's batch ${s} is not this gateway's header (run "vigil anchor resync")`,
          );
        loc = { blockNumber: found.blockNumber, blockHash: found.blockHash, events: [] };
        updated = { ...rec, txHash: found.txHash };
        ev = undefined;
      }
      if (loc.blockHash !== rec.blockHash || loc.blockNumber !== rec.blockNumber) {
        if (rec.blockHash) this.counters.moved++;
        updated = { ...updated, blockNumber: loc.blockNumber, blockHash: loc.blockHash };
      }
      const isFinal = loc.blockNumber <= finalBlock;
      if (isFinal) updated = { ...updated, final: true, finalAtUs: this.nowUs() };
      if (updated !== rec) await this.store.updateAnchor(s, updated);
      if (!isFinal) continue;
      if (s === this.finalThrough + 1) {
        this.finalThrough = s;
        this.counters.finalized++;
      }
    }
    // Skip the next check while this block stays the latest (only when every record was looked at).
    this.lastSeenBlock = complete ? key : undefined;
  }

  /** The highest seq whose record (and every lower one) is final, scanning back from `anchored`. */
  private async scanFinal(anchored: number): Promise<number> {
    let s = anchored;
    // Records are final in seq order; stop at the first final one from the top.
    for (; s >= 1 && anchored - s < 100_000; s--) {
      const a = await this.store.getAnchor(s);
      if (!a || a.final !== false) break;
    }
    return s;
  }
}
