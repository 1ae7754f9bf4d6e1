/**
 * The frame store, shared by the LevelDB and in-memory stores: a facade over its parts, one job
 * each —
 *   log.ts        frame log: group commit and deduplication (the hot path)
 *   reads.ts      reads by index, (device, seq), leaf hash, and the merged entry stream
 *   outbox.ts     sealed batches (the anchoring outbox) and anchor records
 *   retention.ts  pruning by anchored age on an uptime clock
 *   recovery.ts   unavailable → retry, the disk guard
 *   integrity.ts  the watermark and the open-time checks
 * all working on one StoreContext (context.ts). It runs on a {@link Kv}.
 */
import { VigilError } from "../core/errors.ts";
import { performance } from "node:perf_hooks";
import type { AppendOutcome, FrameRecord, LeafRecord } from "../core/records.ts";
import type { Logger } from "../core/log.ts";
import { realTimers, type Timers } from "../core/timers.ts";
import { StoreContext } from "./context.ts";
import { StoreUnavailableError, translateLevelError } from "./errors.ts";
import {
  StoreIntegrityError,
  MemoryWatermark,
  checkAtOpen,
  watermarkOf,
  type WatermarkStore,
} from "./integrity.ts";
import { P_UPDATES } from "./codec.ts";
import { checkStoreFormat, formatRecord } from "./format.ts";
import type { Kv } from "./kv.ts";
import { FrameLog, type GroupCommitOptions, type StoreLimits } from "./log.ts";
import { Outbox } from "./outbox.ts";
import { LogReader } from "./reads.ts";
import { Recovery, type StoreGuard } from "./recovery.ts";
import { Retention } from "./retention.ts";
import { RegistryCache, type RegistryCacheEntry, type RegistryCacheState } from "./registry-cache.ts";
import type {
  AnchorRecord,
  CommitTiming,
  DeviceSeqState,
  FrameStore,
  LogEntry,
  PruneOptions,
  SealedBatch,
  StoreStats,
  StoredFrame,
  StoredLeaf,
} from "./types.ts";

export { DEFAULT_GROUP_COMMIT, type GroupCommitOptions, type StoreLimits } from "./log.ts";
export type { StoreGuard } from "./recovery.ts";

export interface CoreStoreOptions {
  groupCommit?: Partial<GroupCommitOptions>;
  limits?: StoreLimits;
  timers?: Timers;
  /** Retry period after an I/O error (reopen, probe write). Default 1000 ms. */
  recoverIntervalMs?: number;
  guard?: StoreGuard;
  logger?: Logger;
  /** Where the integrity watermark lives. Default: in memory (the LevelDB store uses a file). */
  watermark?: WatermarkStore;
  /**
   * Open to inspect (`vigil store check`): a store without a watermark does not get one. Default
   * false. A check that wrote one would record whatever the store holds now (after a loss) as
   * what it acknowledged, and no later check could see the loss.
   */
  inspectOnly?: boolean;
  /** Monotonic milliseconds for retention's uptime clock. Default performance.now. */
  monotonicMs?: () => number;
  /** Wall clock, µs (leaf `receivedUs`). Default Date.now() × 1000. */
  nowUs?: () => number;
  /**
   * Committed entries kept in memory until a sealed batch covers them, for the sealer's reads
   * (tail.ts). Default 65,536; 0 when nothing seals (they would stay until the limit).
   */
  tailEntries?: number;
}

export class KvFrameStore implements FrameStore {
  protected readonly kv: Kv;
  protected readonly ctx: StoreContext;
  readonly #log: FrameLog;
  readonly #reads: LogReader;
  readonly #outbox: Outbox;
  readonly #retention: Retention;
  readonly #recovery: Recovery;
  readonly #registry: RegistryCache;
  readonly #guard: StoreGuard | undefined;
  readonly #watermark: WatermarkStore;
  readonly #inspectOnly: boolean;
  /** After open(): whether a watermark was there to check the store against. */
  hadWatermark = false;
  /** After open(): the store's format (format.ts; 1 for a store from before the format record). */
  format = 0;
  /** Watermark writes, one at a time, each with the counters current when it starts. */
  #wmChain: Promise<void> = Promise.resolve();
  /** Set while rewindAnchors runs: the watermark's anchored count may not exceed it. */
  #anchoredCap: number | undefined;

  constructor(kv: Kv, opts: CoreStoreOptions = {}) {
    this.kv = kv;
    const c = (this.ctx = new StoreContext(kv, opts.timers ?? realTimers, opts.logger, opts.tailEntries));
    this.#guard = opts.guard;
    this.#watermark = opts.watermark ?? new MemoryWatermark();
    this.#inspectOnly = opts.inspectOnly ?? false;
    this.#reads = new LogReader(c);
    const failed = (err: StoreUnavailableError): void => this.#recovery.enterUnavailable(err);
    const nowUs = opts.nowUs ?? (() => Date.now() * 1000);
    this.#log = new FrameLog(c, opts.groupCommit ?? {}, opts.limits ?? {}, {
      has: (d, s) => this.#reads.has(d, s),
      failed,
      committed: () => this.#syncWatermark(),
      nowUs,
    });
    this.#outbox = new Outbox(c, this.#reads, failed);
    this.#registry = new RegistryCache(c, failed);
    this.#retention = new Retention(
      c,
      this.#reads,
      this.#outbox,
      failed,
      opts.monotonicMs ?? (() => performance.now()),
    );
    this.#recovery = new Recovery(c, this.#log, opts.guard, opts.recoverIntervalMs ?? 1000, () =>
      this.#reopen(),
    );
  }

  // ------------------------------------------------------------------ lifecycle

  /**
   * Opens the database, loads its state and runs the integrity checks against the watermark
   * (StoreIntegrityError when it lost or damaged acknowledged data; never opened over it).
   */
  onCorrupt(fn: (err: VigilError) => void): void {
    this.ctx.corruptListeners.push(fn);
  }

  async open(): Promise<void> {
    const c = this.ctx;
    const w = await this.#watermark.read();
    try {
      await this.openKv(w !== undefined);
    } catch (e) {
      if (e instanceof StoreIntegrityError) throw e;
      const err = translateLevelError(e, "opening the store");
      if (err.reason !== "DISK_FULL" || !this.#guard) throw err;
      // LevelDB needs a little space to reopen (new MANIFEST, log): free the reserve.
      await this.#guard.releaseReserve();
      await this.openKv(w !== undefined).catch((e2: unknown) => {
        throw translateLevelError(e2, "opening the store");
      });
    }
    let format: Awaited<ReturnType<typeof checkStoreFormat>>;
    try {
      // Before any record is read: a newer format would be misread (format.ts).
      format = await checkStoreFormat(this.kv).catch((e: unknown) => {
        throw e instanceof VigilError ? e : translateLevelError(e, "reading the store's format");
      });
      await this.#loadAndCheck(w);
    } catch (e) {
      await this.kv.close().catch(() => undefined);
      throw e;
    }
    const g = this.#guard;
    try {
      // First open (or a store from before the watermark existed): record what it holds now.
      if (w === undefined && !this.#inspectOnly) await this.#syncWatermark();
      this.hadWatermark = w !== undefined;
      let room = true;
      if (g) {
        room = await g.hasRoom();
        if (room) await g.restoreReserve();
      }
      // A new store, or one from before the format record: say which format it is written in
      // (on a full disk, at a later open).
      if (!format.recorded && !this.#inspectOnly && room) await this.kv.write([formatRecord()], true);
      this.format = format.format;
      c.state = room ? "ok" : "low-space";
    } catch (e) {
      // Not half-open: closed (so the lock is released) and one typed error (a fresh data folder
      // on a full or read-only disk, a watermark that cannot be written).
      await this.kv.close().catch(() => undefined);
      throw translateLevelError(e, "opening the store");
    }
    this.#retention.start();
    if (g) this.#recovery.armGuard();
  }

  /** Opens the key-value store; `mustExist` when a watermark says it held data (never create over lost data). */
  protected async openKv(mustExist: boolean): Promise<void> {
    void mustExist;
    await this.kv.open();
  }

  async #loadAndCheck(w: Awaited<ReturnType<WatermarkStore["read"]>>): Promise<void> {
    const c = this.ctx;
    try {
      await c.load();
    } catch (e) {
      throw translateLevelError(e, "loading the store's state");
    }
    this.#log.reset();
    if (w) {
      const problems = await checkAtOpen(c, this.#reads, w);
      if (problems.length > 0)
        throw new StoreIntegrityError(
          `the store lost or damaged data it had acknowledged (${problems[0]}); it will not accept frames over it. Run "vigil store check", then "vigil store salvage" into a new data folder`,
          problems,
        );
    }
  }

  async #reopen(): Promise<void> {
    await this.kv.close().catch(() => undefined);
    await this.openKv(true);
    await this.#loadAndCheck(await this.#watermark.read());
  }

  /** Syncs the watermark (serialised; each write carries the counters current when it starts). */
  #syncWatermark(): Promise<void> {
    const p = this.#wmChain.then(() => {
      const w = watermarkOf(this.ctx);
      // While anchors are being rewound, no watermark may claim more than the rewind keeps.
      if (this.#anchoredCap !== undefined) w.anchored = Math.min(w.anchored, this.#anchoredCap);
      return this.#watermark.write(w);
    });
    this.#wmChain = p.catch(() => undefined);
    return p;
  }

  async close(): Promise<void> {
    const c = this.ctx;
    if (c.state === "closed") return;
    this.#log.stopTimer();
    if (c.state === "ok" || c.state === "low-space") await this.#log.drain();
    c.state = "closed";
    this.#log.failQueued(new StoreUnavailableError("CLOSED", "store is closed"));
    this.#recovery.stop();
    await c.metaLock.run(async () => {});
    await this.#wmChain;
    await this.closeWatermark();
    await this.kv.close().catch(() => {});
  }

  /** Releases the watermark file handle (LevelDB store). */
  protected async closeWatermark(): Promise<void> {}

  // ------------------------------------------------------------------ append (hot path)

  append(rec: FrameRecord): Promise<AppendOutcome> {
    return this.#log.append(rec);
  }

  appendLeaf(leaf: LeafRecord): Promise<void> {
    return this.#log.appendLeaf(leaf);
  }

  // ------------------------------------------------------------------ recovery

  /** One recovery attempt now (tests; the store also retries by itself). */
  recover(): Promise<boolean> {
    return this.#recovery.recover();
  }

  /** Checks free space now (tests, and callers that just freed space). */
  checkRoom(): Promise<void> {
    return this.#recovery.checkRoom();
  }

  // ------------------------------------------------------------------ reads

  lastSeq(deviceId: number): number | undefined {
    return this.ctx.devices.get(deviceId)?.lastSeq;
  }

  devices(): ReadonlyMap<number, DeviceSeqState> {
    return this.ctx.devices;
  }

  has(deviceId: number, seq: number): Promise<boolean> {
    return this.#reads.has(deviceId, seq);
  }

  getFrame(index: number): Promise<StoredFrame | undefined> {
    return this.#reads.getFrame(index);
  }

  getFrameBySeq(deviceId: number, seq: number): Promise<StoredFrame | undefined> {
    return this.#reads.getFrameBySeq(deviceId, seq);
  }

  framesByIndex(fromIndex: number, toIndex: number): AsyncIterable<StoredFrame> {
    return this.#reads.framesByIndex(fromIndex, toIndex);
  }

  frameChunks(fromIndex: number, toIndex: number): AsyncIterable<StoredFrame[]> {
    return this.#reads.frameChunks(fromIndex, toIndex);
  }

  framesByDevice(deviceId: number, fromSeq?: number, toSeq?: number): AsyncIterable<StoredFrame> {
    return this.#reads.framesByDevice(deviceId, fromSeq, toSeq);
  }

  framesBefore(deviceId: number, beforeSeq: number, count: number): Promise<StoredFrame[]> {
    return this.#reads.framesBefore(deviceId, beforeSeq, count);
  }

  getLeaf(index: number): Promise<StoredLeaf | undefined> {
    return this.#reads.getLeaf(index);
  }

  getByLeafHash(hash: Uint8Array | string): Promise<StoredLeaf | undefined> {
    return this.#reads.getByLeafHash(hash);
  }

  entryByIndex(index: number): Promise<LogEntry | undefined> {
    return this.#reads.entryByIndex(index);
  }

  entryChunks(fromIndex: number, toIndex: number): AsyncIterable<LogEntry[]> {
    return this.#reads.entryChunks(fromIndex, toIndex);
  }

  /** The store's reader and context, for integrity checks (`vigil store check`). */
  get internals(): { ctx: StoreContext; reads: LogReader } {
    return { ctx: this.ctx, reads: this.#reads };
  }

  stats(): StoreStats {
    const c = this.ctx;
    return {
      state: c.state,
      lastIndex: c.lastIndex,
      liveFrames: c.lastIndex - c.pruned.frames,
      liveBytes: c.totalBytes - c.pruned.bytes,
      sealedThrough: c.sealed,
      lastBatchSeq: c.batchSeq,
      anchoredThrough: c.anchored,
      prunedThrough: c.pruned.throughIndex,
      pending: this.#log.pending,
      commits: c.commits,
      leavesStored: c.leavesStored,
      leafFailures: c.leafFailures,
      guardErrors: this.#recovery.guardErrors,
      retentionClockUs: c.ageUs,
      lastError: c.lastError?.shortMessage ?? null,
    };
  }

  get commitTiming(): CommitTiming {
    return this.ctx.commitTiming;
  }

  // ------------------------------------------------------------------ batch log / outbox

  sealedThrough(): number {
    return this.ctx.sealed;
  }

  lastBatchSeq(): number {
    return this.ctx.batchSeq;
  }

  lastHead(): string {
    return this.ctx.head;
  }

  /** Highest arrival index that is durable (what a sealer may include). */
  durableThrough(): number {
    return this.ctx.lastIndex;
  }

  async saveBatch(batch: SealedBatch, leaves: Uint8Array): Promise<void> {
    await this.#outbox.saveBatch(batch, leaves);
    await this.#syncWatermark();
  }

  getBatch(seq: number): Promise<SealedBatch | undefined> {
    return this.#outbox.getBatch(seq);
  }

  getBatchLeaves(seq: number): Promise<Uint8Array | undefined> {
    return this.#outbox.getBatchLeaves(seq);
  }

  batchForIndex(index: number): Promise<SealedBatch | undefined> {
    return this.#outbox.batchForIndex(index);
  }

  anchoredThrough(): number {
    return this.ctx.anchored;
  }

  pendingAnchors(limit?: number): Promise<SealedBatch[]> {
    return this.#outbox.pendingAnchors(limit);
  }

  async markAnchored(seq: number, anchor: AnchorRecord): Promise<void> {
    await this.#outbox.markAnchored(seq, anchor);
    await this.#syncWatermark();
  }

  getAnchor(seq: number): Promise<AnchorRecord | undefined> {
    return this.#outbox.getAnchor(seq);
  }

  async updateAnchor(seq: number, anchor: AnchorRecord): Promise<void> {
    await this.#outbox.updateAnchor(seq, anchor);
  }

  async rewindAnchors(toSeq: number): Promise<number> {
    // The watermark goes down first: a crash before the database write then leaves a store that
    // holds more than its watermark (fine), never less (an integrity error at the next open).
    let n: number;
    try {
      n = await this.#outbox.rewindAnchors(toSeq, () => {
        this.#anchoredCap = toSeq;
        return this.#syncWatermark();
      });
    } finally {
      this.#anchoredCap = undefined;
    }
    if (n > 0) await this.#syncWatermark();
    return n;
  }

  // ------------------------------------------------------------------ retention

  async prune(opts: PruneOptions): Promise<number> {
    const n = await this.#retention.prune(opts);
    if (n > 0) {
      await this.#syncWatermark();
      await this.afterPrune(this.ctx.pruned.throughIndex);
    }
    return n;
  }

  // ------------------------------------------------------------------ registry cache

  loadRegistry(): Promise<RegistryCacheState> {
    return this.#registry.load();
  }

  saveRegistry(
    changes: readonly RegistryCacheEntry[],
    meta: Record<string, unknown>,
    replace = false,
  ): Promise<void> {
    return this.#registry.save(changes, meta, replace);
  }

  /** Hook: the LevelDB store compacts the pruned range so the space is really returned. */
  protected async afterPrune(_throughIndex: number): Promise<void> {}

  // ------------------------------------------------------------------ named records (update agents, spend)

  async getMeta(name: string): Promise<Buffer | undefined> {
    try {
      return await this.kv.get(metaKey(name));
    } catch (e) {
      throw translateLevelError(e, "reading a named record (update agents, anchoring spend)");
    }
  }

  async putMeta(name: string, value: Buffer): Promise<void> {
    try {
      await this.kv.write([{ type: "put", key: metaKey(name), value }], true);
    } catch (e) {
      throw translateLevelError(e, "writing a named record (update agents, anchoring spend)");
    }
  }

  async metaEntries(prefix: string): Promise<Array<[string, Buffer]>> {
    const from = metaKey(prefix);
    const out: Array<[string, Buffer]> = [];
    try {
      for await (const [k, v] of this.kv.range({ gte: from, lt: Buffer.of(P_UPDATES + 1) })) {
        if (!k.subarray(0, from.length).equals(from)) break;
        out.push([k.subarray(1).toString("utf8"), v]);
      }
    } catch (e) {
      throw translateLevelError(e, "reading named records");
    }
    return out;
  }
}

function metaKey(name: string): Buffer {
  return Buffer.concat([Buffer.of(P_UPDATES), Buffer.from(name, "utf8")]);
}
