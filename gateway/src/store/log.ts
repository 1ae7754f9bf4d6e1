/**
 * The frame log: group commit and deduplication.
 *
 * Group commit. When the store is idle, a write batch starts when `maxBatchRecords` records
 * wait or `flushIntervalMs` after the first one arrived, whichever comes first. One batch is in
 * flight at a time; records arriving meanwhile form the next batch, which starts as soon as the
 * previous one is synced (pipelined, like LevelDB's own writer queue), holding at most
 * `maxBatchRecords`. Every batch is written with `sync: true`, then the integrity watermark
 * (integrity.ts) is synced; append() resolves after both, i.e. when the record is durable and
 * the store knows it must contain it.
 *
 * Deduplication. A record above everything stored or queued for its device takes the fast path
 * (no lookup). A lower one (a resend or a late frame) waits for the same (device, seq) queued or
 * in flight, or asks the index; concurrent resends of one old seq share one check, so nothing is
 * ever written twice.
 */
import type { AppendOutcome, FrameRecord, LeafRecord } from "../core/records.ts";
import type { StoreContext } from "./context.ts";
import { M_LAST } from "./context.ts";
import {
  LEAF_FIXED,
  P_LEAF,
  P_LOG,
  P_SEQ,
  RECORD_FIXED,
  checkLeaf,
  devKey,
  devSeqKey,
  encodeDeviceSeq,
  encodeLeaf,
  encodeRecord,
  leafHashKey,
  u64Key,
  writeU64,
} from "./codec.ts";
import { StoreFullError, translateLevelError, type StoreUnavailableError } from "./errors.ts";
import type { KvOp } from "./kv.ts";

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

/** Approximate per-frame key overhead: L key (9) + D key (13) + D value (8). */
export const KEY_BYTES = 30;
/** Approximate per-leaf key overhead: E key (9) + H key (41). */
export const LEAF_KEY_BYTES = 50;
const EMPTY = Buffer.alloc(0);

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

/** Hooks the log needs from the rest of the store. */
export interface LogHooks {
  /** Is (device, seq) durably stored (or pruned)? The index lookup of the slow path. */
  has(deviceId: number, seq: number): Promise<boolean>;
  /** A write failed: the store becomes unavailable (recovery.ts). */
  failed(err: StoreUnavailableError): void;
  /** After each synced batch, before its appends resolve: sync the integrity watermark. */
  committed(): Promise<void>;
  /** Wall clock for leaf `receivedUs`, µs. */
  nowUs(): number;
}

export class FrameLog {
  readonly #c: StoreContext;
  readonly #gc: GroupCommitOptions;
  readonly #limits: StoreLimits;
  readonly #hooks: LogHooks;
  #queue: Group[] = [];
  #inflight: Promise<void> | undefined;
  #inflightGroup: Group | undefined;
  #timer: unknown;
  /** Highest seq stored or queued per device (the fast-path test). */
  #accepted = new Map<number, number>();
  #slowChecks = new Map<string, Promise<AppendOutcome>>();

  constructor(c: StoreContext, gc: Partial<GroupCommitOptions>, limits: StoreLimits, hooks: LogHooks) {
    this.#c = c;
    this.#gc = { ...DEFAULT_GROUP_COMMIT, ...gc };
    if (!(this.#gc.flushIntervalMs >= 0)) throw new RangeError("groupCommit.flushIntervalMs must be ≥ 0");
    if (!Number.isInteger(this.#gc.maxBatchRecords) || this.#gc.maxBatchRecords < 1)
      throw new RangeError("groupCommit.maxBatchRecords must be an integer ≥ 1");
    this.#limits = limits;
    this.#hooks = hooks;
  }

  /** Resets the dedupe state from the durable per-device state (open, recovery). */
  reset(): void {
    this.#c.tail.clear();
    this.#accepted = new Map([...this.#c.devices].map(([d, s]) => [d, s.lastSeq]));
    this.#slowChecks = new Map();
  }

  append(rec: FrameRecord): Promise<AppendOutcome> {
    const c = this.#c;
    if (c.state !== "ok") return Promise.reject(c.unavailable());
    const dev = rec.deviceId;
    const seq = rec.seq;
    if (!Number.isSafeInteger(seq) || seq < 0)
      return Promise.reject(new RangeError(`seq must be a safe non-negative integer, got ${seq}`));
    const bytes = RECORD_FIXED + KEY_BYTES + rec.raw.length;
    const accepted = this.#accepted.get(dev);
    if (accepted === undefined || seq > accepted) {
      // Fast path: above everything stored or queued for this device. No per-record promise:
      // every record of a write batch shares its group's promise.
      const full = this.#fullError(bytes);
      if (full) return Promise.reject(full);
      this.#accepted.set(dev, seq);
      return this.#enqueue({ rec }, bytes);
    }
    // Slow path (a resend or a late frame): the same seq queued or in flight answers
    // "duplicate" once that write is durable; otherwise ask the index.
    const queued = this.#findQueued(dev, seq);
    if (queued) return queued.then(() => "duplicate" as const);
    const k = slowKey(dev, seq);
    const check = this.#slowChecks.get(k);
    if (check) return check.then(() => "duplicate" as const);
    const p = (async (): Promise<AppendOutcome> => {
      if (await this.#hooks.has(dev, seq)) return "duplicate";
      if (c.state !== "ok") throw c.unavailable();
      const full = this.#fullError(bytes);
      if (full) throw full;
      return this.#enqueue({ rec }, bytes);
    })();
    // Concurrent resends of the same old seq wait for this check (never written twice).
    this.#slowChecks.set(k, p);
    const done = (): void => void this.#slowChecks.delete(k);
    p.then(done, done);
    return p;
  }

  /**
   * Records an INFERENCE or ALERT leaf at the next arrival index. The producer hashed it (the
   * store checks the preimage's structure, not its hash: each leaf is hashed once in its life).
   */
  appendLeaf(leaf: LeafRecord): Promise<void> {
    const c = this.#c;
    const p = (() => {
      if (c.state !== "ok") return Promise.reject(c.unavailable());
      try {
        checkLeaf(leaf);
      } catch (e) {
        return Promise.reject(e);
      }
      const bytes = LEAF_FIXED + LEAF_KEY_BYTES + leaf.preimage.length;
      const full = this.#fullError(bytes);
      if (full) return Promise.reject(full);
      const value = encodeLeaf(leaf.preimage, leaf.hash, this.#hooks.nowUs());
      return this.#enqueue({ leaf: { value, hash: leaf.hash } }, bytes).then(() => undefined);
    })();
    p.catch(() => void c.leafFailures++);
    return p;
  }

  /** Records waiting or in flight. */
  get pending(): number {
    let n = this.#inflightGroup?.records.length ?? 0;
    for (const g of this.#queue) n += g.records.length;
    return n;
  }

  get #pendingBytes(): number {
    let n = this.#inflightGroup?.bytes ?? 0;
    for (const g of this.#queue) n += g.bytes;
    return n;
  }

  /** Writes everything queued and waits for it (close). */
  async drain(): Promise<void> {
    while (this.#inflight || this.#queue.length > 0) {
      if (!this.#inflight) this.flush();
      await this.#inflight;
    }
  }

  /** Stops the flush timer. */
  stopTimer(): void {
    if (this.#timer !== undefined) this.#c.timers.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Rejects everything queued (not in flight) and forgets what it had accepted. */
  failQueued(err: unknown): void {
    const q = this.#queue;
    this.#queue = [];
    for (const g of q) g.reject(err);
    this.reset();
  }

  /** The promise of the queued or in-flight group holding (dev, seq), if any (linear: slow path only). */
  #findQueued(dev: number, seq: number): Promise<AppendOutcome> | undefined {
    const groups = this.#inflightGroup ? [this.#inflightGroup, ...this.#queue] : this.#queue;
    for (const g of groups)
      for (const p of g.records) if (p.rec && p.rec.seq === seq && p.rec.deviceId === dev) return g.promise;
    return undefined;
  }

  /** `bytes`: the new record's approximate size (value + keys). */
  #fullError(bytes: number): StoreFullError | undefined {
    const { maxFrames, maxBytes } = this.#limits;
    if (maxFrames === undefined && maxBytes === undefined) return undefined;
    const c = this.#c;
    if (maxFrames !== undefined) {
      const frames = c.lastIndex - c.pruned.frames + this.pending;
      if (frames >= maxFrames)
        return new StoreFullError(
          `store holds ${frames} frames, the configured maximum (store.maxFrames); anchored frames are pruned after the retention window`,
        );
    }
    if (maxBytes !== undefined) {
      const total = c.totalBytes - c.pruned.bytes + this.#pendingBytes + bytes;
      if (total > maxBytes)
        return new StoreFullError(
          `store would exceed its configured maximum of ${maxBytes} bytes (store.maxBytes)`,
        );
    }
    return undefined;
  }

  #newGroup(): Group {
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

  #enqueue(p: Pending, bytes: number): Promise<AppendOutcome> {
    let g = this.#queue[this.#queue.length - 1];
    if (!g || g.records.length >= this.#gc.maxBatchRecords) this.#queue.push((g = this.#newGroup()));
    g.records.push(p);
    g.bytes += bytes;
    if (!this.#inflight) {
      if (g.records.length >= this.#gc.maxBatchRecords) this.flush();
      // Not unref'd: records waiting for this timer are work the process must finish.
      else if (this.#timer === undefined)
        this.#timer = this.#c.timers.setTimeout(() => {
          this.#timer = undefined;
          this.flush();
        }, this.#gc.flushIntervalMs);
    } // else: flushed when the in-flight batch completes
    return g.promise;
  }

  /** Writes the next group (if none is in flight). */
  flush(): void {
    const c = this.#c;
    if (this.#inflight || this.#queue.length === 0) return;
    this.stopTimer();
    const group = this.#queue.shift()!;
    const ops: KvOp[] = [];
    const newest = new Map<number, FrameRecord>();
    let index = c.lastIndex;
    let leaves = 0;
    // The values written, in index order: kept in the unsealed tail once durable (tail.ts).
    const values: Buffer[] = [];
    for (const { rec, leaf } of group.records) {
      index++;
      if (leaf) {
        ops.push({ type: "put", key: u64Key(P_LEAF, index), value: leaf.value });
        ops.push({ type: "put", key: leafHashKey(leaf.hash, index), value: EMPTY });
        values.push(leaf.value);
        leaves++;
        continue;
      }
      const key = u64Key(P_LOG, index);
      const value = encodeRecord(rec);
      values.push(value);
      ops.push({ type: "put", key, value });
      ops.push({ type: "put", key: devSeqKey(rec.deviceId, rec.seq), value: key.subarray(1) });
      const m = newest.get(rec.deviceId);
      if (m === undefined || rec.seq > m.seq) newest.set(rec.deviceId, rec);
    }
    for (const [dev, rec] of newest) {
      const d = c.devices.get(dev);
      if (d !== undefined && d.lastSeq >= rec.seq) newest.delete(dev);
      else ops.push({ type: "put", key: devKey(P_SEQ, dev), value: encodeDeviceSeq(rec) });
    }
    const meta = Buffer.allocUnsafe(16);
    writeU64(meta, 0, index);
    writeU64(meta, 8, c.totalBytes + group.bytes);
    ops.push({ type: "put", key: M_LAST, value: meta });
    this.#inflightGroup = group;
    const t0 = performance.now();
    let t1 = t0;
    this.#inflight = c.kv
      .write(ops, true)
      .then(
        () => {
          t1 = performance.now();
          c.commitTiming.write.record((t1 - t0) * 1000);
          let i = c.lastIndex;
          for (let k = 0; k < values.length; k++)
            c.tail.push(++i, group.records[k]!.leaf !== undefined, values[k]!);
          c.lastIndex = index;
          c.totalBytes += group.bytes;
          for (const [dev, rec] of newest)
            c.devices.set(dev, { lastSeq: rec.seq, bootId: rec.boot?.id, base: rec.boot?.base ?? 0 });
          c.commits++;
          c.leavesStored += leaves;
        },
        (e: unknown) => {
          throw translateLevelError(e, "writing frames");
        },
      )
      .then(() => this.#hooks.committed())
      .then(
        () => {
          c.commitTiming.watermark.record((performance.now() - t1) * 1000);
          this.#endInflight();
          group.resolve("stored");
          if (c.state === "ok" || c.state === "low-space") this.flush();
        },
        (e: unknown) => {
          const err = translateLevelError(e, "writing frames");
          this.#endInflight();
          group.reject(err);
          this.#hooks.failed(err);
        },
      );
  }

  #endInflight(): void {
    this.#inflight = undefined;
    this.#inflightGroup = undefined;
  }
}
