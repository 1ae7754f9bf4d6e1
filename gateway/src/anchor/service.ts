/**
 * The anchoring service: drains the store's outbox (sealed, unanchored batches) into the
 * registry, in seq order, exactly once.
 *
 * - Order and uniqueness: the store only accepts `markAnchored(anchoredThrough+1)`; before
 *   sending, the service reads the registry's head for the gateway. A batch whose seq the
 *   chain already has (sent before a crash, or by another relayer) is recorded, not resent;
 *   the contract itself rejects any other seq (`UnexpectedSequence`).
 * - Confirmations: the chain client waits for them (EthersRegistryClient `confirmations`)
 *   before `anchor()` resolves; the number is recorded with the anchor.
 * - Failures: network errors drop the client (reconnect next time) and retry with
 *   exponential backoff (initialMs · 2^n, capped at maxMs, ±20 % jitter); ingest and sealing
 *   are untouched, so the backlog simply grows in the store and drains when the chain returns.
 *   A chain whose head is behind the local anchored count (chain reset, wrong registry) is
 *   reported (`AnchorStateError`) and retried at maxMs: that needs an operator.
 * - Scheduling: every `intervalMs` (default 5 s) or on a node-cron expression (`cron`), and
 *   `trigger()` after a seal.
 */
import cron from "node-cron";
import { VigilError } from "../core/errors.ts";
import { ChainError, ContractRevertError } from "../chain/errors.ts";
import { hashBatchHeader } from "../chain/eip712.ts";
import { type Hex } from "../core/hex.ts";
import { toEip712Header } from "../attest/header.ts";
import { realTimers, unrefTimer, type Timers } from "../core/timers.ts";
import { silentLogger, type Logger } from "../core/log.ts";
import type { AnchorRecord, FrameStore, SealedBatch } from "../store/types.ts";
import type { AnchorChain } from "./chain.ts";

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

export interface AnchorServiceOptions {
  store: FrameStore;
  gatewayId: Hex;
  /** Opens a chain connection; called lazily and again after a network failure. */
  connect: () => Promise<AnchorChain>;
  /** Confirmations the chain client waits for (recorded in each AnchorRecord). Default 1. */
  confirmations?: number;
  /** Run period. Default 5000 ms. Ignored when `cron` is set. */
  intervalMs?: number;
  /** node-cron expression (e.g. every 10 s: a six-field expression with seconds). */
  cron?: string;
  /** Batches per run. Default 100. */
  maxPerRun?: number;
  /**
   * Batches per transaction when a backlog waits (registry `anchorMany`, all or nothing).
   * Default 1: one transaction per batch.
   */
  maxBatchesPerTx?: number;
  /** Retry backoff. Default 1 s doubling to 60 s. */
  backoff?: Partial<BackoffOptions>;
  timers?: Timers;
  nowUs?: () => number;
  /** In [0, 1); jitter source (injectable for deterministic tests). */
  random?: () => number;
  logger?: Logger;
  onAnchored?: (batch: SealedBatch, anchor: AnchorRecord) => void;
}

export interface AnchorStatus {
  anchoredThrough: number;
  backlog: number;
  failures: number;
  lastError: { code: string; message: string } | null;
  nextRetryMs: number | null;
}

export class AnchorService {
  private readonly store: FrameStore;
  private readonly gatewayId: Hex;
  private readonly connectFn: () => Promise<AnchorChain>;
  private readonly confirmations: number;
  private readonly intervalMs: number;
  private readonly cronExpr: string | undefined;
  private readonly maxPerRun: number;
  private readonly maxBatchesPerTx: number;
  private readonly backoff: BackoffOptions;
  private readonly timers: Timers;
  private readonly nowUs: () => number;
  private readonly random: () => number;
  private readonly log: Logger;
  private readonly onAnchored: AnchorServiceOptions["onAnchored"];

  private chain: AnchorChain | undefined;
  private timer: unknown;
  private cronTask: { stop(): void | Promise<void> } | undefined;
  private running: Promise<number> | undefined;
  private started = false;
  private failures = 0;
  private lastError: VigilError | undefined;
  private nextRetryMs: number | null = null;

  constructor(o: AnchorServiceOptions) {
    this.store = o.store;
    this.gatewayId = o.gatewayId.toLowerCase() as Hex;
    this.connectFn = o.connect;
    this.confirmations = o.confirmations ?? 1;
    this.intervalMs = o.intervalMs ?? 5000;
    this.cronExpr = o.cron;
    this.maxPerRun = o.maxPerRun ?? 100;
    this.maxBatchesPerTx = o.maxBatchesPerTx ?? 1;
    if (!Number.isInteger(this.maxBatchesPerTx) || this.maxBatchesPerTx < 1)
      throw new RangeError("anchor.maxBatchesPerTx must be an integer ≥ 1");
    this.backoff = { initialMs: 1000, maxMs: 60_000, ...o.backoff };
    this.timers = o.timers ?? realTimers;
    this.nowUs = o.nowUs ?? (() => Date.now() * 1000);
    this.random = o.random ?? Math.random;
    this.log = o.logger ?? silentLogger;
    this.onAnchored = o.onAnchored;
    if (this.cronExpr !== undefined && !cron.validate(this.cronExpr))
      throw new RangeError(`anchor.cron: invalid cron expression "${this.cronExpr}"`);
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    if (this.cronExpr !== undefined) this.cronTask = cron.schedule(this.cronExpr, () => this.trigger());
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.started = false;
    await this.cronTask?.stop();
    this.cronTask = undefined;
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => {});
    const c = this.chain;
    this.chain = undefined;
    await c?.close().catch(() => {});
  }

  /** Runs soon (e.g. right after a seal), unless a retry backoff is pending. */
  trigger(): void {
    if (!this.started || this.nextRetryMs !== null) return;
    void this.runAndReschedule();
  }

  status(): AnchorStatus {
    return {
      anchoredThrough: this.store.anchoredThrough(),
      backlog: this.store.lastBatchSeq() - this.store.anchoredThrough(),
      failures: this.failures,
      lastError: this.lastError ? { code: this.lastError.code, message: this.lastError.shortMessage } : null,
      nextRetryMs: this.nextRetryMs,
    };
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
    if (ok) {
      this.nextRetryMs = null;
      // More waiting than one run takes: go again at once; else at the interval (or cron).
      const backlog = this.store.lastBatchSeq() - this.store.anchoredThrough();
      if (backlog > 0) this.schedule(0);
      else if (this.cronExpr === undefined) this.schedule(this.intervalMs);
    } else {
      const base = Math.min(
        this.backoff.maxMs,
        this.backoff.initialMs * 2 ** Math.min(30, this.failures - 1),
      );
      const delay = Math.round(base * (0.8 + 0.4 * this.random()));
      this.nextRetryMs = delay;
      this.schedule(delay);
    }
  }

  /**
   * One pass over the outbox. Resolves with the number of batches anchored; rejects with a
   * typed error (ChainError, AnchorStateError, StoreUnavailableError) after recording it.
   * Concurrent calls share one pass.
   */
  runOnce(): Promise<number> {
    if (this.running) return this.running;
    const p = this.pass().finally(() => {
      this.running = undefined;
    });
    this.running = p;
    return p;
  }

  private async pass(): Promise<number> {
    let done = 0;
    try {
      const batches = await this.store.pendingAnchors(this.maxPerRun);
      if (batches.length === 0) {
        this.failures = 0;
        return 0;
      }
      const chain = (this.chain ??= await this.connectFn());
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
            `registry has ${onChain} batches of gateway ${this.gatewayId}, but batch ${b.header.seq} is next here: the chain was reset or this is another registry`,
          );
        // A backlog (e.g. after an outage) goes out several batches per transaction.
        const group = batches.slice(i, i + (chain.anchorMany ? this.maxBatchesPerTx : 1));
        if (group.length > 1 && chain.anchorMany) {
          const r = await chain.anchorMany(
            group.map((g) => ({ header: toEip712Header(g.header), signature: g.signature as Hex })),
          );
          const last = group[group.length - 1]!;
          const head = await chain.getHead(this.gatewayId);
          if (head.seq !== BigInt(last.header.seq) || head.head.toLowerCase() !== last.head.toLowerCase())
            throw new AnchorStateError(
              `registry head after batches ${b.header.seq}..${last.header.seq} is not the gateway's`,
            );
          for (const g of group) await this.commit(g, this.record(chain, r.txHash, Number(r.blockNumber)));
        } else {
          const r = await chain.anchor(toEip712Header(b.header), b.signature as Hex);
          if (r.head.toLowerCase() !== b.head.toLowerCase())
            throw new AnchorStateError(
              `registry head after batch ${b.header.seq} is ${r.head}, the gateway computed ${b.head}`,
            );
          await this.commit(b, this.record(chain, r.txHash, Number(r.blockNumber)));
        }
        onChain = BigInt(group[group.length - 1]!.header.seq);
        done += group.length;
        i += group.length;
      }
      this.failures = 0;
      this.lastError = undefined;
      return done;
    } catch (e) {
      const err =
        e instanceof VigilError
          ? e
          : new ChainError("CHAIN", `anchoring failed: ${(e as Error)?.message ?? String(e)}`, { cause: e });
      this.failures++;
      this.lastError = err;
      // Any chain failure may leave the connection or the nonce manager in a bad state.
      if (err instanceof ChainError && !(err instanceof ContractRevertError)) {
        const c = this.chain;
        this.chain = undefined;
        await c?.close().catch(() => {});
      }
      this.log.warn(
        { code: err.code, anchored: done, failures: this.failures },
        "anchoring failed; will retry",
      );
      throw err;
    }
  }

  private async commit(b: SealedBatch, rec: AnchorRecord): Promise<void> {
    await this.store.markAnchored(b.header.seq, rec);
    this.onAnchored?.(b, rec);
  }

  private record(chain: AnchorChain, txHash: string | null, blockNumber: number | null): AnchorRecord {
    return {
      chainId: Number(chain.chainId),
      contract: chain.registryAddress.toLowerCase(),
      txHash,
      blockNumber,
      confirmations: this.confirmations,
      anchoredAtUs: this.nowUs(),
    };
  }

  /** The chain already has this batch: check it is ours and record where it is. */
  private async recordExisting(chain: AnchorChain, b: SealedBatch, onChain: bigint): Promise<AnchorRecord> {
    if (onChain === BigInt(b.header.seq)) {
      const head = (await chain.getHead(this.gatewayId)).head;
      if (head.toLowerCase() !== b.head.toLowerCase())
        throw new AnchorStateError(
          `registry head at batch ${b.header.seq} is ${head}, the gateway's is ${b.head}: another signer anchored this seq`,
        );
    }
    const found = chain.findAnchor ? await chain.findAnchor(this.gatewayId, BigInt(b.header.seq)) : null;
    if (found && found.headerHash !== hashBatchHeader(toEip712Header(b.header)))
      throw new AnchorStateError(
        `registry anchored a different header as batch ${b.header.seq}: another signer used this seq`,
      );
    this.log.info(
      { seq: b.header.seq, found: found !== null },
      "batch was already anchored; recorded without resending",
    );
    return this.record(chain, found?.txHash ?? null, found?.blockNumber ?? null);
  }
}
