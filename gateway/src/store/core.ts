/**
 * The frame store logic shared by the LevelDB and in-memory stores: group commit, dedupe,
 * bounds, the batch log / outbox, retention, and recovery after I/O errors. It runs on a
 * {@link Kv}; the LevelDB store adds a disk guard (free-space watch + reserve file).
 */
import type { AppendOutcome, FrameRecord } from "../core/records.ts";
import { StoreFullError, StoreOrderError, StoreUnavailableError, translateLevelError } from "./errors.ts";
import type { Kv, KvOp } from "./kv.ts";
import { realTimers, unrefTimer, type Timers } from "../core/timers.ts";
import { silentLogger, type Logger } from "../core/log.ts";
import { leafFromPreimage } from "../core/leaf.ts";
import {
  LEAF_FIXED,
  P_ANCHOR,
  P_BATCH,
  P_INDEX,
  P_LEAF,
  P_LEAVES,
  P_LOG,
  P_PRUNED,
  P_SEQ,
  RECORD_FIXED,
  checkLeaf,
  decodeLeaf,
  decodeRecord,
  devKey,
  devSeqKey,
  encodeLeaf,
  encodeRecord,
  leafHashKey,
  metaKey,
  prefixEnd,
  readU64,
  u64Key,
  u64Value,
  writeU64,
} from "./codec.ts";
import type {
  AnchorRecord,
  FrameStore,
  LeafRecord,
  LogEntry,
  PruneOptions,
  SealedBatch,
  StoreState,
  StoreStats,
  StoredFrame,
  StoredLeaf,
} from "./types.ts";

/**
 * Group commit. When the store is idle, a write batch starts when `maxBatchRecords` records
 * wait or `flushIntervalMs` after the first one arrived, whichever comes first. One batch is
 * in flight at a time; records arriving meanwhile form the next batch, which starts as soon
 * as the previous one is synced (pipelined, like LevelDB's own writer queue), holding at most
 * `maxBatchRecords`. Every batch is written with `sync: true`; append() resolves after the
 * batch holding its record is synced.
 */
export interface GroupCommitOptions {
  /**
   * Default 1 ms: only delays the first record after an idle period (while a batch is in
   * flight the next one forms anyway). Measured in attest/README.md "Storage".
   */
  flushIntervalMs: number;
  /** Default 2000 (≈ 10 ms of fsync here). 1 gives the one-sync-per-frame baseline. */
  maxBatchRecords: number;
}

export const DEFAULT_GROUP_COMMIT: GroupCommitOptions = { flushIntervalMs: 1, maxBatchRecords: 2000 };

export interface StoreLimits {
  /** Refuse new frames (StoreFullError) when this many live frames are stored. */
  maxFrames?: number;
  /** Refuse new frames when live frames take this many bytes (keys + values, uncompressed). */
  maxBytes?: number;
}

/** Environment checks around a store (LevelDB: free disk space and the reserve file). */
export interface StoreGuard {
  /** True when there is room to accept frames (free space above the watermark). */
  hasRoom(): Promise<boolean>;
  /** Disk full: delete the reserve file so the database can reopen and compact. */
  releaseReserve(): Promise<void>;
  /** Space is back: recreate the reserve file before accepting frames again. */
  restoreReserve(): Promise<void>;
  readonly checkIntervalMs: number;
}

export interface CoreStoreOptions {
  groupCommit?: Partial<GroupCommitOptions>;
  limits?: StoreLimits;
  timers?: Timers;
  /** Retry period after an I/O error (reopen, probe write). Default 1000 ms. */
  recoverIntervalMs?: number;
  guard?: StoreGuard;
  logger?: Logger;
}

/** A queued leaf record: its encoded `E` value and hash (for the `H` index). */
interface PendingLeaf {
  value: Buffer;
  hash: Uint8Array;
}

/** A queued frame (`{ rec }`, the hot path) or leaf record (`{ leaf }`). */
type Pending = { rec: FrameRecord; leaf?: undefined } | { rec?: undefined; leaf: PendingLeaf };

/** One future write batch: its records share one promise (no per-record promise or closure). */
interface Group {
  records: Pending[];
  bytes: number;
  promise: Promise<AppendOutcome>;
  resolve: (o: AppendOutcome) => void;
  reject: (e: unknown) => void;
}

const slowKey = (dev: number, seq: number): string => `${dev}:${seq}`;

const ZERO32 = "0x" + "00".repeat(32);
const M_LAST = metaKey("last");
const M_SEALED = metaKey("sealed");
const M_BATCH = metaKey("batch");
const M_HEAD = metaKey("head");
const M_ANCHORED = metaKey("anchored");
const M_PRUNED = metaKey("pruned");
const M_PROBE = metaKey("probe");
/** Approximate per-frame key overhead: L key (9) + D key (13) + D value (8). */
const KEY_BYTES = 30;
/** Approximate per-leaf key overhead: E key (9) + H key (41). */
const LEAF_KEY_BYTES = 50;
const EMPTY = Buffer.alloc(0);

class Mutex {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.tail.then(fn, fn);
    this.tail = p.catch(() => {});
    return p;
  }
}

export class KvFrameStore implements FrameStore {
  protected readonly kv: Kv;
  private readonly gc: GroupCommitOptions;
  private readonly limits: StoreLimits;
  private readonly timers: Timers;
  private readonly recoverIntervalMs: number;
  private readonly guard: StoreGuard | undefined;
  protected readonly log: Logger;

  private state: StoreState = "closed";
  private lastError: StoreUnavailableError | undefined;
  // Durable state.
  private lastIndex = 0;
  private totalBytes = 0;
  private lastDurable = new Map<number, number>();
  private prunedFloor = new Map<number, number>();
  private sealed = 0;
  private batchSeq = 0;
  private head = ZERO32;
  private anchored = 0;
  private pruned = { throughIndex: 0, frames: 0, bytes: 0, batchSeq: 0 };
  // Group commit.
  private queue: Group[] = [];
  private inflight: Promise<void> | undefined;
  private inflightGroup: Group | undefined;
  private timer: unknown;
  private lastAccepted = new Map<number, number>();
  private slowChecks = new Map<string, Promise<AppendOutcome>>();
  private commits = 0;
  private leavesStored = 0;
  private leafFailures = 0;
  // Recovery and guard.
  private recoverTimer: unknown;
  private guardTimer: unknown;
  private readonly metaLock = new Mutex();

  constructor(kv: Kv, opts: CoreStoreOptions = {}) {
    this.kv = kv;
    this.gc = { ...DEFAULT_GROUP_COMMIT, ...opts.groupCommit };
    if (!(this.gc.flushIntervalMs >= 0)) throw new RangeError("groupCommit.flushIntervalMs must be ≥ 0");
    if (!Number.isInteger(this.gc.maxBatchRecords) || this.gc.maxBatchRecords < 1)
      throw new RangeError("groupCommit.maxBatchRecords must be an integer ≥ 1");
    this.limits = opts.limits ?? {};
    this.timers = opts.timers ?? realTimers;
    this.recoverIntervalMs = opts.recoverIntervalMs ?? 1000;
    this.guard = opts.guard;
    this.log = opts.logger ?? silentLogger;
  }

  // ------------------------------------------------------------------ lifecycle

  async open(): Promise<void> {
    try {
      await this.kv.open();
    } catch (e) {
      const err = translateLevelError(e, "opening the store");
      if (err.reason === "DISK_FULL" && this.guard) {
        // LevelDB needs a little space to reopen (new MANIFEST, log): free the reserve.
        await this.guard.releaseReserve();
        await this.kv.open().catch((e2: unknown) => {
          throw translateLevelError(e2, "opening the store");
        });
      } else throw err;
    }
    await this.loadState();
    this.state = "ok";
    if (this.guard) {
      if (!(await this.guard.hasRoom())) this.state = "low-space";
      else await this.guard.restoreReserve();
      this.armGuard();
    }
  }

  private async loadState(): Promise<void> {
    const get = async (k: Buffer): Promise<Buffer | undefined> => this.kv.get(k);
    const last = await get(M_LAST);
    this.lastIndex = last ? readU64(last, 0) : 0;
    this.totalBytes = last ? readU64(last, 8) : 0;
    const sealed = await get(M_SEALED);
    this.sealed = sealed ? readU64(sealed, 0) : 0;
    const batch = await get(M_BATCH);
    this.batchSeq = batch ? readU64(batch, 0) : 0;
    const head = await get(M_HEAD);
    this.head = head ? "0x" + head.toString("hex") : ZERO32;
    const anchored = await get(M_ANCHORED);
    this.anchored = anchored ? readU64(anchored, 0) : 0;
    const pruned = await get(M_PRUNED);
    this.pruned = pruned
      ? {
          throughIndex: readU64(pruned, 0),
          frames: readU64(pruned, 8),
          bytes: readU64(pruned, 16),
          batchSeq: readU64(pruned, 24),
        }
      : { throughIndex: 0, frames: 0, bytes: 0, batchSeq: 0 };
    this.lastDurable = new Map();
    for await (const [k, v] of this.kv.range({ gte: Buffer.of(P_SEQ), lt: prefixEnd(P_SEQ) }))
      this.lastDurable.set(k.readUInt32BE(1), readU64(v, 0));
    this.prunedFloor = new Map();
    for await (const [k, v] of this.kv.range({ gte: Buffer.of(P_PRUNED), lt: prefixEnd(P_PRUNED) }))
      this.prunedFloor.set(k.readUInt32BE(1), readU64(v, 0));
    this.lastAccepted = new Map(this.lastDurable);
    this.slowChecks = new Map();
  }

  async close(): Promise<void> {
    if (this.state === "closed") return;
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timer = undefined;
    if (this.state === "ok" || this.state === "low-space") {
      while (this.inflight || this.queue.length > 0) {
        if (!this.inflight) this.flush();
        await this.inflight;
      }
    }
    this.state = "closed";
    this.failQueued(new StoreUnavailableError("CLOSED", "store is closed"));
    if (this.recoverTimer !== undefined) this.timers.clearTimeout(this.recoverTimer);
    if (this.guardTimer !== undefined) this.timers.clearTimeout(this.guardTimer);
    this.recoverTimer = this.guardTimer = undefined;
    await this.metaLock.run(async () => {});
    await this.kv.close().catch(() => {});
  }

  // ------------------------------------------------------------------ append (hot path)

  append(rec: FrameRecord): Promise<AppendOutcome> {
    if (this.state !== "ok") return Promise.reject(this.unavailable());
    const dev = rec.deviceId;
    const seq = rec.seq;
    if (!Number.isSafeInteger(seq) || seq < 0)
      return Promise.reject(new RangeError(`seq must be a safe non-negative integer, got ${seq}`));
    const accepted = this.lastAccepted.get(dev);
    if (accepted === undefined || seq > accepted) {
      // Fast path: above everything stored or queued for this device. No per-record promise:
      // every record of a write batch shares its group's promise.
      const full = this.fullError(RECORD_FIXED + KEY_BYTES + rec.raw.length);
      if (full) return Promise.reject(full);
      this.lastAccepted.set(dev, seq);
      return this.enqueue({ rec }, RECORD_FIXED + KEY_BYTES + rec.raw.length);
    }
    // Slow path (a resend or a late frame): the same seq queued or in flight answers
    // "duplicate" once that write is durable; otherwise ask the index.
    const queued = this.findQueued(dev, seq);
    if (queued) return queued.then(() => "duplicate" as const);
    const check = this.slowChecks.get(slowKey(dev, seq));
    if (check) return check.then(() => "duplicate" as const);
    const p = (async (): Promise<AppendOutcome> => {
      if (await this.has(dev, seq)) return "duplicate";
      if (this.state !== "ok") throw this.unavailable();
      const full = this.fullError(RECORD_FIXED + KEY_BYTES + rec.raw.length);
      if (full) throw full;
      return this.enqueue({ rec }, RECORD_FIXED + KEY_BYTES + rec.raw.length);
    })();
    // Concurrent resends of the same old seq wait for this check (never written twice).
    const k = slowKey(dev, seq);
    this.slowChecks.set(k, p);
    const done = (): void => void this.slowChecks.delete(k);
    p.then(done, done);
    return p;
  }

  /** The promise of the queued or in-flight group holding (dev, seq), if any (linear: slow path only). */
  private findQueued(dev: number, seq: number): Promise<AppendOutcome> | undefined {
    const groups = this.inflightGroup ? [this.inflightGroup, ...this.queue] : this.queue;
    for (const g of groups)
      for (const p of g.records) if (p.rec && p.rec.seq === seq && p.rec.deviceId === dev) return g.promise;
    return undefined;
  }

  private queuedCount(): number {
    let n = this.inflightGroup?.records.length ?? 0;
    for (const g of this.queue) n += g.records.length;
    return n;
  }

  private queuedBytes(): number {
    let n = this.inflightGroup?.bytes ?? 0;
    for (const g of this.queue) n += g.bytes;
    return n;
  }

  /** `bytes`: the new record's approximate size (value + keys). */
  private fullError(bytes: number): StoreFullError | undefined {
    const { maxFrames, maxBytes } = this.limits;
    if (maxFrames === undefined && maxBytes === undefined) return undefined;
    if (maxFrames !== undefined) {
      const frames = this.lastIndex - this.pruned.frames + this.queuedCount();
      if (frames >= maxFrames)
        return new StoreFullError(
          `store holds ${frames} frames, the configured maximum (store.maxFrames); anchored frames are pruned after the retention window`,
        );
    }
    if (maxBytes !== undefined) {
      const total = this.totalBytes - this.pruned.bytes + this.queuedBytes() + bytes;
      if (total > maxBytes)
        return new StoreFullError(
          `store would exceed its configured maximum of ${maxBytes} bytes (store.maxBytes)`,
        );
    }
    return undefined;
  }

  private newGroup(): Group {
    let resolve!: (o: AppendOutcome) => void;
    let reject!: (e: unknown) => void;
    const promise = new Promise<AppendOutcome>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // A group may fail with nobody left awaiting it (all callers were duplicates that already
    // returned): keep that from becoming an unhandled rejection.
    promise.catch(() => {});
    return { records: [], bytes: 0, promise, resolve, reject };
  }

  private enqueue(p: Pending, bytes: number): Promise<AppendOutcome> {
    let g = this.queue[this.queue.length - 1];
    if (!g || g.records.length >= this.gc.maxBatchRecords) this.queue.push((g = this.newGroup()));
    g.records.push(p);
    g.bytes += bytes;
    if (!this.inflight) {
      if (g.records.length >= this.gc.maxBatchRecords) this.flush();
      else if (this.timer === undefined)
        this.timer = this.timers.setTimeout(() => this.onTimer(), this.gc.flushIntervalMs);
    } // else: flushed when the in-flight batch completes
    return g.promise;
  }

  // ------------------------------------------------------------------ leaf records

  appendLeaf(leaf: LeafRecord): Promise<void> {
    const p = this.enqueueLeaf(leaf);
    p.catch(() => void this.leafFailures++);
    return p;
  }

  private enqueueLeaf(leaf: LeafRecord): Promise<void> {
    if (this.state !== "ok") return Promise.reject(this.unavailable());
    let hash: Uint8Array;
    try {
      hash = checkLeaf(leaf);
    } catch (e) {
      return Promise.reject(e);
    }
    const bytes = LEAF_FIXED + LEAF_KEY_BYTES + leaf.preimage.length;
    const full = this.fullError(bytes);
    if (full) return Promise.reject(full);
    const value = encodeLeaf(leaf.preimage, Date.now() * 1000);
    return this.enqueue({ leaf: { value, hash } }, bytes).then(() => undefined);
  }

  async getLeaf(index: number): Promise<StoredLeaf | undefined> {
    const v = await this.read(u64Key(P_LEAF, index));
    return v ? decodeLeaf(index, v) : undefined;
  }

  async getByLeafHash(hash: Uint8Array | string): Promise<StoredLeaf | undefined> {
    const h = typeof hash === "string" ? Buffer.from(hash.replace(/^0x/i, ""), "hex") : Buffer.from(hash);
    if (h.length !== 32) throw new RangeError("leaf hash must be 32 bytes");
    try {
      for await (const [k] of this.kv.range({
        gte: leafHashKey(h, 0),
        lt: leafHashKey(h, Number.MAX_SAFE_INTEGER),
        limit: 1,
      }))
        return await this.getLeaf(readU64(k, 33));
    } catch (e) {
      throw translateLevelError(e, "reading the store");
    }
    return undefined;
  }

  async entryByIndex(index: number): Promise<LogEntry | undefined> {
    return (await this.getFrame(index)) ?? (await this.getLeaf(index));
  }

  /** Merges the `L` (frame) and `E` (leaf) ranges, which share one index space, in index order. */
  async *entryChunks(fromIndex: number, toIndex: number): AsyncIterable<LogEntry[]> {
    if (toIndex < fromIndex) return;
    const lo = Math.max(0, fromIndex);
    const lt = toIndex + 1;
    const frameRange = this.kv.rangeChunks({ gte: u64Key(P_LOG, lo), lt: u64Key(P_LOG, lt) });
    const leafRange = this.kv.rangeChunks({ gte: u64Key(P_LEAF, lo), lt: u64Key(P_LEAF, lt) });
    const frames = frameRange[Symbol.asyncIterator]();
    const leaves = leafRange[Symbol.asyncIterator]();
    const a = { it: frames, chunk: [] as [Buffer, Buffer][], i: 0, done: false };
    const b = { it: leaves, chunk: [] as [Buffer, Buffer][], i: 0, done: false };
    const fill = async (s: typeof a): Promise<number> => {
      while (s.i >= s.chunk.length && !s.done) {
        const r = await s.it.next();
        if (r.done) s.done = true;
        else {
          s.chunk = r.value;
          s.i = 0;
        }
      }
      const e = s.chunk[s.i];
      return e === undefined || s.i >= s.chunk.length ? Infinity : readU64(e[0], 1);
    };
    let out: LogEntry[] = [];
    let ka = await fill(a);
    let kb = await fill(b);
    while (ka !== Infinity || kb !== Infinity) {
      if (ka < kb) {
        // Frame-only runs (the common case) are copied without re-checking the leaf stream.
        const [, v] = a.chunk[a.i++]!;
        out.push(decodeRecord(ka, v));
        ka = a.i < a.chunk.length ? readU64(a.chunk[a.i]![0], 1) : await fill(a);
      } else {
        const [, v] = b.chunk[b.i++]!;
        out.push(decodeLeaf(kb, v));
        kb = b.i < b.chunk.length ? readU64(b.chunk[b.i]![0], 1) : await fill(b);
      }
      if (out.length >= 1024) {
        yield out;
        out = [];
      }
    }
    if (out.length > 0) yield out;
  }

  private onTimer(): void {
    this.timer = undefined;
    this.flush();
  }

  private flush(): void {
    if (this.inflight || this.queue.length === 0) return;
    if (this.timer !== undefined) {
      this.timers.clearTimeout(this.timer);
      this.timer = undefined;
    }
    const group = this.queue.shift()!;
    const ops: KvOp[] = [];
    const maxSeq = new Map<number, number>();
    let index = this.lastIndex;
    let leaves = 0;
    for (const { rec, leaf } of group.records) {
      index++;
      if (leaf) {
        ops.push({ type: "put", key: u64Key(P_LEAF, index), value: leaf.value });
        ops.push({ type: "put", key: leafHashKey(leaf.hash, index), value: EMPTY });
        leaves++;
        continue;
      }
      const key = u64Key(P_LOG, index);
      ops.push({ type: "put", key, value: encodeRecord(rec) });
      ops.push({ type: "put", key: devSeqKey(rec.deviceId, rec.seq), value: key.subarray(1) });
      const m = maxSeq.get(rec.deviceId);
      if (m === undefined || rec.seq > m) maxSeq.set(rec.deviceId, rec.seq);
    }
    for (const [dev, seq] of maxSeq) {
      const d = this.lastDurable.get(dev);
      if (d !== undefined && d >= seq) maxSeq.delete(dev);
      else ops.push({ type: "put", key: devKey(P_SEQ, dev), value: u64Value(seq) });
    }
    const meta = Buffer.allocUnsafe(16);
    writeU64(meta, 0, index);
    writeU64(meta, 8, this.totalBytes + group.bytes);
    ops.push({ type: "put", key: M_LAST, value: meta });
    this.inflightGroup = group;
    this.inflight = this.kv.write(ops, true).then(
      () => {
        this.lastIndex = index;
        this.totalBytes += group.bytes;
        for (const [dev, seq] of maxSeq) this.lastDurable.set(dev, seq);
        this.commits++;
        this.leavesStored += leaves;
        this.endInflight();
        group.resolve("stored");
        if (this.state === "ok" || this.state === "low-space") this.flush();
      },
      (e: unknown) => {
        const err = translateLevelError(e, "writing frames");
        this.endInflight();
        group.reject(err);
        this.enterUnavailable(err);
      },
    );
  }

  private endInflight(): void {
    this.inflight = undefined;
    this.inflightGroup = undefined;
  }

  private failQueued(err: unknown): void {
    const q = this.queue;
    this.queue = [];
    for (const g of q) g.reject(err);
    this.lastAccepted = new Map(this.lastDurable);
  }

  private unavailable(): StoreUnavailableError {
    if (this.state === "closed") return new StoreUnavailableError("CLOSED", "store is closed");
    if (this.state === "low-space")
      return new StoreUnavailableError(
        "DISK_FULL",
        "free disk space is below the store's watermark; frames are refused until space returns",
      );
    return this.lastError ?? new StoreUnavailableError("RECOVERING", "store is recovering from an I/O error");
  }

  // ------------------------------------------------------------------ recovery

  private enterUnavailable(err: StoreUnavailableError): void {
    if (this.state === "closed") return;
    const was = this.state;
    this.state = "unavailable";
    this.lastError = err;
    this.failQueued(err);
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timer = undefined;
    if (was !== "unavailable")
      this.log.warn(
        { code: err.code, reason: err.reason },
        "store unavailable; frames are refused until it recovers",
      );
    if (err.reason === "DISK_FULL" && this.guard) void this.guard.releaseReserve().catch(() => {});
    this.scheduleRecover();
  }

  private scheduleRecover(): void {
    if (this.recoverTimer !== undefined || this.state === "closed") return;
    this.recoverTimer = unrefTimer(
      this.timers.setTimeout(() => {
        this.recoverTimer = undefined;
        void this.recover();
      }, this.recoverIntervalMs),
    );
  }

  /** One recovery attempt: reopen, reload state, probe a synced write, check room. */
  async recover(): Promise<boolean> {
    if (this.state !== "unavailable") return this.state === "ok";
    try {
      await this.metaLock.run(async () => {
        await this.kv.close().catch(() => {});
        try {
          await this.kv.open();
        } catch (e) {
          const err = translateLevelError(e, "reopening the store");
          if (err.reason === "DISK_FULL" && this.guard) await this.guard.releaseReserve();
          throw err;
        }
        await this.loadState();
        if (this.guard && !(await this.guard.hasRoom()))
          throw new StoreUnavailableError("DISK_FULL", "not enough free disk space yet");
        await this.kv.write([{ type: "put", key: M_PROBE, value: u64Value(Date.now()) }], true);
        if (this.guard) await this.guard.restoreReserve();
      });
    } catch (e) {
      this.lastError = translateLevelError(e, "recovering the store");
      this.scheduleRecover();
      return false;
    }
    if ((this.state as StoreState) === "closed") return false;
    this.state = "ok";
    this.lastError = undefined;
    this.log.info({}, "store recovered; accepting frames again");
    return true;
  }

  private armGuard(): void {
    const g = this.guard;
    if (!g) return;
    this.guardTimer = unrefTimer(
      this.timers.setTimeout(() => {
        this.guardTimer = undefined;
        void (async () => {
          if (this.state === "ok" || this.state === "low-space") {
            const room = await g.hasRoom().catch(() => false);
            if ((this.state as StoreState) === "ok" && !room) {
              this.state = "low-space";
              this.log.warn({}, "free disk space below the watermark; refusing frames");
            } else if ((this.state as StoreState) === "low-space" && room) {
              await g.restoreReserve().catch(() => {});
              this.state = "ok";
              this.log.info({}, "free disk space is back; accepting frames");
            }
          }
          if ((this.state as StoreState) !== "closed") this.armGuard();
        })();
      }, g.checkIntervalMs),
    );
  }

  /** Checks the guard now (tests, and callers that just freed space). */
  async checkRoom(): Promise<void> {
    if (!this.guard) return;
    const room = await this.guard.hasRoom();
    if (this.state === "ok" && !room) this.state = "low-space";
    else if (this.state === "low-space" && room) {
      await this.guard.restoreReserve();
      this.state = "ok";
    }
  }

  // ------------------------------------------------------------------ reads

  lastSeq(deviceId: number): number | undefined {
    return this.lastDurable.get(deviceId);
  }

  devices(): ReadonlyMap<number, number> {
    return this.lastDurable;
  }

  async has(deviceId: number, seq: number): Promise<boolean> {
    const floor = this.prunedFloor.get(deviceId);
    if (floor !== undefined && seq <= floor) return true;
    const last = this.lastDurable.get(deviceId);
    if (last === undefined || seq > last) {
      // Not above `last` means maybe stored; above it can only be stored if a late frame
      // was written with a lower seq — impossible, `last` is the maximum. So: not stored.
      return false;
    }
    return (await this.read(devSeqKey(deviceId, seq))) !== undefined;
  }

  private async read(key: Buffer): Promise<Buffer | undefined> {
    try {
      return await this.kv.get(key);
    } catch (e) {
      throw translateLevelError(e, "reading the store");
    }
  }

  async getFrame(index: number): Promise<StoredFrame | undefined> {
    const v = await this.read(u64Key(P_LOG, index));
    return v ? decodeRecord(index, v) : undefined;
  }

  async getFrameBySeq(deviceId: number, seq: number): Promise<StoredFrame | undefined> {
    const v = await this.read(devSeqKey(deviceId, seq));
    return v ? this.getFrame(readU64(v, 0)) : undefined;
  }

  async *framesByIndex(fromIndex: number, toIndex: number): AsyncIterable<StoredFrame> {
    if (toIndex < fromIndex) return;
    for await (const [k, v] of this.kv.range({
      gte: u64Key(P_LOG, Math.max(0, fromIndex)),
      lt: u64Key(P_LOG, toIndex + 1),
    }))
      yield decodeRecord(readU64(k, 1), v);
  }

  async *frameChunks(fromIndex: number, toIndex: number): AsyncIterable<StoredFrame[]> {
    if (toIndex < fromIndex) return;
    for await (const chunk of this.kv.rangeChunks({
      gte: u64Key(P_LOG, Math.max(0, fromIndex)),
      lt: u64Key(P_LOG, toIndex + 1),
    }))
      yield chunk.map(([k, v]) => decodeRecord(readU64(k, 1), v));
  }

  async *framesByDevice(
    deviceId: number,
    fromSeq = 0,
    toSeq = Number.MAX_SAFE_INTEGER - 1,
  ): AsyncIterable<StoredFrame> {
    for await (const [, v] of this.kv.range({
      gte: devSeqKey(deviceId, fromSeq),
      lt: devSeqKey(deviceId, toSeq + 1),
    })) {
      const f = await this.getFrame(readU64(v, 0));
      if (f) yield f;
    }
  }

  stats(): StoreStats {
    return {
      state: this.state,
      lastIndex: this.lastIndex,
      liveFrames: this.lastIndex - this.pruned.frames,
      liveBytes: this.totalBytes - this.pruned.bytes,
      sealedThrough: this.sealed,
      lastBatchSeq: this.batchSeq,
      anchoredThrough: this.anchored,
      prunedThrough: this.pruned.throughIndex,
      pending: this.queuedCount(),
      commits: this.commits,
      leavesStored: this.leavesStored,
      leafFailures: this.leafFailures,
    };
  }

  // ------------------------------------------------------------------ batch log / outbox

  sealedThrough(): number {
    return this.sealed;
  }

  lastBatchSeq(): number {
    return this.batchSeq;
  }

  lastHead(): string {
    return this.head;
  }

  /** Highest arrival index that is durable (what a sealer may include). */
  durableThrough(): number {
    return this.lastIndex;
  }

  private async metaWrite(ops: KvOp[], what: string): Promise<void> {
    if (this.state === "closed") throw new StoreUnavailableError("CLOSED", "store is closed");
    if (this.state === "unavailable") throw this.unavailable();
    try {
      await this.kv.write(ops, true);
    } catch (e) {
      const err = translateLevelError(e, what);
      this.enterUnavailable(err);
      throw err;
    }
  }

  saveBatch(batch: SealedBatch, leaves: Uint8Array): Promise<void> {
    return this.metaLock.run(async () => {
      const seq = batch.header.seq;
      if (seq !== this.batchSeq + 1)
        throw new StoreOrderError(`batch ${seq} is not the next batch (last sealed is ${this.batchSeq})`);
      if (batch.firstIndex !== this.sealed + 1)
        throw new StoreOrderError(
          `batch ${seq} starts at frame ${batch.firstIndex}, expected ${this.sealed + 1}`,
        );
      const n = batch.lastIndex - batch.firstIndex + 1;
      if (n !== batch.header.leafCount || leaves.length !== 32 * n)
        throw new StoreOrderError(
          `batch ${seq} has ${batch.header.leafCount} leaves, frames ${batch.firstIndex}..${batch.lastIndex}`,
        );
      if (batch.lastIndex > this.lastIndex)
        throw new StoreOrderError(`batch ${seq} covers frames not yet durable`);
      if (batch.header.prevHead !== this.head)
        throw new StoreOrderError(`batch ${seq} does not link to the current head`);
      const headBytes = Buffer.from(batch.head.slice(2), "hex");
      await this.metaWrite(
        [
          { type: "put", key: u64Key(P_BATCH, seq), value: Buffer.from(JSON.stringify(batch)) },
          {
            type: "put",
            key: u64Key(P_LEAVES, seq),
            value: Buffer.from(leaves.buffer, leaves.byteOffset, leaves.length),
          },
          { type: "put", key: u64Key(P_INDEX, batch.lastIndex), value: u64Value(seq) },
          { type: "put", key: M_SEALED, value: u64Value(batch.lastIndex) },
          { type: "put", key: M_BATCH, value: u64Value(seq) },
          { type: "put", key: M_HEAD, value: headBytes },
        ],
        "saving a batch",
      );
      this.batchSeq = seq;
      this.sealed = batch.lastIndex;
      this.head = batch.head;
    });
  }

  async getBatch(seq: number): Promise<SealedBatch | undefined> {
    const v = await this.read(u64Key(P_BATCH, seq));
    return v ? (JSON.parse(v.toString("utf8")) as SealedBatch) : undefined;
  }

  async getBatchLeaves(seq: number): Promise<Uint8Array | undefined> {
    const v = await this.read(u64Key(P_LEAVES, seq));
    return v ? new Uint8Array(v) : undefined;
  }

  async batchForIndex(index: number): Promise<SealedBatch | undefined> {
    if (index < 1 || index > this.sealed) return undefined;
    for await (const [, v] of this.kv.range({
      gte: u64Key(P_INDEX, index),
      lt: prefixEnd(P_INDEX),
      limit: 1,
    }))
      return this.getBatch(readU64(v, 0));
    return undefined;
  }

  anchoredThrough(): number {
    return this.anchored;
  }

  async pendingAnchors(limit = 100): Promise<SealedBatch[]> {
    const out: SealedBatch[] = [];
    for (let s = this.anchored + 1; s <= this.batchSeq && out.length < limit; s++) {
      const b = await this.getBatch(s);
      if (!b) throw new StoreOrderError(`batch ${s} is missing from the batch log`);
      out.push(b);
    }
    return out;
  }

  markAnchored(seq: number, anchor: AnchorRecord): Promise<void> {
    return this.metaLock.run(async () => {
      if (seq !== this.anchored + 1)
        throw new StoreOrderError(
          `batch ${seq} is not the next to anchor (anchored through ${this.anchored})`,
        );
      if (seq > this.batchSeq) throw new StoreOrderError(`batch ${seq} is not sealed`);
      await this.metaWrite(
        [
          { type: "put", key: u64Key(P_ANCHOR, seq), value: Buffer.from(JSON.stringify(anchor)) },
          { type: "put", key: M_ANCHORED, value: u64Value(seq) },
        ],
        "recording an anchor",
      );
      this.anchored = seq;
    });
  }

  async getAnchor(seq: number): Promise<AnchorRecord | undefined> {
    const v = await this.read(u64Key(P_ANCHOR, seq));
    return v ? (JSON.parse(v.toString("utf8")) as AnchorRecord) : undefined;
  }

  // ------------------------------------------------------------------ retention

  prune(opts: PruneOptions): Promise<number> {
    return this.metaLock.run(async () => {
      let deleted = 0;
      for (let s = this.pruned.batchSeq + 1; s <= this.anchored; s++) {
        const b = await this.getBatch(s);
        if (!b || b.sealedAtUs > opts.nowUs - opts.retentionUs) break;
        const ops: KvOp[] = [];
        const floors = new Map<number, number>();
        let bytes = 0;
        let frames = 0;
        for await (const f of this.framesByIndex(this.pruned.throughIndex + 1, b.lastIndex)) {
          ops.push(
            { type: "del", key: u64Key(P_LOG, f.index) },
            { type: "del", key: devSeqKey(f.deviceId, f.seq) },
          );
          const fl = floors.get(f.deviceId) ?? this.prunedFloor.get(f.deviceId) ?? -1;
          if (f.seq > fl) floors.set(f.deviceId, f.seq);
          bytes += RECORD_FIXED + KEY_BYTES + f.raw.length;
          frames++;
        }
        for await (const [k, v] of this.kv.range({
          gte: u64Key(P_LEAF, this.pruned.throughIndex + 1),
          lt: u64Key(P_LEAF, b.lastIndex + 1),
        })) {
          const preimage = v.subarray(LEAF_FIXED);
          ops.push(
            { type: "del", key: k },
            { type: "del", key: leafHashKey(leafFromPreimage(preimage), readU64(k, 1)) },
          );
          bytes += LEAF_FIXED + LEAF_KEY_BYTES + preimage.length;
          frames++;
        }
        for (const [dev, seq] of floors)
          ops.push({ type: "put", key: devKey(P_PRUNED, dev), value: u64Value(seq) });
        const next = {
          throughIndex: b.lastIndex,
          frames: this.pruned.frames + frames,
          bytes: this.pruned.bytes + bytes,
          batchSeq: s,
        };
        const meta = Buffer.allocUnsafe(32);
        writeU64(meta, 0, next.throughIndex);
        writeU64(meta, 8, next.frames);
        writeU64(meta, 16, next.bytes);
        writeU64(meta, 24, next.batchSeq);
        ops.push({ type: "put", key: M_PRUNED, value: meta });
        await this.metaWrite(ops, "pruning frames");
        for (const [dev, seq] of floors) this.prunedFloor.set(dev, seq);
        this.pruned = next;
        deleted += frames;
      }
      if (deleted > 0) await this.afterPrune(this.pruned.throughIndex);
      return deleted;
    });
  }

  /** Hook: the LevelDB store compacts the pruned range so the space is really returned. */
  protected async afterPrune(_throughIndex: number): Promise<void> {}
}
