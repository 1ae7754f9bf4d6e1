/**
 * What the parts of the store share: the key-value handle, the durable counters mirrored in
 * memory (loaded from the `M`, `S` and `P` records at open), the state machine and the lock that
 * serialises multi-record metadata writes. Every part (log.ts, outbox.ts, retention.ts,
 * recovery.ts, integrity.ts) works on one `StoreContext`; core.ts is the facade.
 */
import { LogTail } from "./tail.ts";
import { silentLogger, type Logger } from "../core/log.ts";
import { realTimers, type Timers } from "../core/timers.ts";
import { P_PRUNED, P_SEQ, metaKey, prefixEnd, readU64 } from "./codec.ts";
import { StoreUnavailableError, translateLevelError } from "./errors.ts";
import type { Kv, KvOp } from "./kv.ts";
import type { CommitTiming, DeviceSeqState, StoreState } from "./types.ts";
import { LatencyHistogram } from "../core/histogram.ts";

export const ZERO32 = "0x" + "00".repeat(32);
export const M_LAST = metaKey("last");
export const M_SEALED = metaKey("sealed");
export const M_BATCH = metaKey("batch");
export const M_HEAD = metaKey("head");
export const M_ANCHORED = metaKey("anchored");
export const M_PRUNED = metaKey("pruned");
export const M_PROBE = metaKey("probe");
/** Gateway uptime accumulated by retention (µs): the clock anchored ages are measured on. */
export const M_AGE = metaKey("age");
/**
 * Arrival indexes a salvage found lost inside sealed batches (u64 each, ascending): their batches
 * were kept for the entries that survived, so the integrity checks do not count them missing.
 */
export const M_LOST = metaKey("lost");

/** Serialises async critical sections (metadata writes, recovery). */
export class Mutex {
  #tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.#tail.then(fn, fn);
    this.#tail = p.catch(() => {});
    return p;
  }
}

export interface PrunedState {
  throughIndex: number;
  frames: number;
  bytes: number;
  batchSeq: number;
}

export class StoreContext {
  readonly kv: Kv;
  readonly timers: Timers;
  readonly log: Logger;
  readonly metaLock = new Mutex();
  state: StoreState = "closed";
  lastError: StoreUnavailableError | undefined;

  // Durable state, mirrored in memory.
  lastIndex = 0;
  totalBytes = 0;
  /** Per device: last durable extended seq and its boot (sequence space). */
  devices = new Map<number, DeviceSeqState>();
  prunedFloor = new Map<number, number>();
  sealed = 0;
  /** Committed entries above `sealed`, in memory for the sealer (tail.ts). */
  readonly tail: LogTail;
  batchSeq = 0;
  head = ZERO32;
  anchored = 0;
  pruned: PrunedState = { throughIndex: 0, frames: 0, bytes: 0, batchSeq: 0 };
  /** Retention's uptime clock (µs), see retention.ts. */
  ageUs = 0;
  /** Indexes lost inside sealed batches, as a salvage recorded them (M_LOST). */
  lost: ReadonlySet<number> = new Set();

  // Counters since open.
  commits = 0;
  /** Group-commit timing (types.ts `CommitTiming`). */
  readonly commitTiming: CommitTiming = { write: new LatencyHistogram(), watermark: new LatencyHistogram() };
  leavesStored = 0;
  leafFailures = 0;

  constructor(kv: Kv, timers: Timers = realTimers, log: Logger = silentLogger, tailEntries?: number) {
    this.tail = new LogTail(tailEntries);
    this.kv = kv;
    this.timers = timers;
    this.log = log;
  }

  /** Reads the durable counters and per-device state from the key-value store. */
  async load(): Promise<void> {
    const get = (k: Buffer): Promise<Buffer | undefined> => this.kv.get(k);
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
    const age = await get(M_AGE);
    this.ageUs = age ? readU64(age, 0) : 0;
    const lost = await get(M_LOST);
    const lostSet = new Set<number>();
    for (let o = 0; lost && o + 8 <= lost.length; o += 8) lostSet.add(readU64(lost, o));
    this.lost = lostSet;
    this.devices = new Map();
    for await (const [k, v] of this.kv.range({ gte: Buffer.of(P_SEQ), lt: prefixEnd(P_SEQ) }))
      this.devices.set(k.readUInt32BE(1), decodeDeviceSeq(v));
    this.prunedFloor = new Map();
    for await (const [k, v] of this.kv.range({ gte: Buffer.of(P_PRUNED), lt: prefixEnd(P_PRUNED) }))
      this.prunedFloor.set(k.readUInt32BE(1), readU64(v, 0));
  }

  /** A read translated into typed store errors (corruption marks the store corrupt). */
  async read(key: Buffer): Promise<Buffer | undefined> {
    try {
      return await this.kv.get(key);
    } catch (e) {
      throw this.readFailed(e);
    }
  }

  /** Translates a failed read; a corrupt database stops the store from accepting frames. */
  readFailed(e: unknown): StoreUnavailableError {
    const err = translateLevelError(e, "reading the store");
    if (err.reason === "CORRUPTION") this.markCorrupt(err);
    return err;
  }

  /**
   * A store that lost or damaged data never acknowledges new frames over it: the state becomes
   * "corrupt" (no recovery loop; `vigil store check` / `salvage` are the way out).
   */
  markCorrupt(err: StoreUnavailableError): void {
    if (this.state === "closed" || this.state === "corrupt") return;
    this.state = "corrupt";
    this.lastError = err;
    this.log.error({ code: err.code, reason: err.reason }, err.shortMessage);
    for (const fn of this.corruptListeners) fn(err);
  }

  /** Told once when the store turns corrupt (FrameStore.onCorrupt). */
  readonly corruptListeners: Array<(err: StoreUnavailableError) => void> = [];

  unavailable(): StoreUnavailableError {
    if (this.state === "closed") return new StoreUnavailableError("CLOSED", "store is closed");
    if (this.state === "low-space")
      return new StoreUnavailableError(
        "DISK_FULL",
        "free disk space is below the store's watermark; frames are refused until space returns",
      );
    return this.lastError ?? new StoreUnavailableError("RECOVERING", "store is recovering from an I/O error");
  }

  /** A synced metadata write; a failure makes the store unavailable (the caller's onFail decides). */
  async metaWrite(ops: KvOp[], what: string, onFail: (err: StoreUnavailableError) => void): Promise<void> {
    if (this.state === "closed") throw new StoreUnavailableError("CLOSED", "store is closed");
    if (this.state === "unavailable" || this.state === "corrupt") throw this.unavailable();
    try {
      await this.kv.write(ops, true);
    } catch (e) {
      const err = translateLevelError(e, what);
      onFail(err);
      throw err;
    }
  }
}

/**
 * `S` values: last durable extended seq u64, then (since boot-aware sequences) the device's boot
 * id u32 and the base of that boot's sequence space u64. An 8-byte legacy value has no boot.
 */
export function decodeDeviceSeq(v: Buffer): DeviceSeqState {
  if (v.length >= 20) return { lastSeq: readU64(v, 0), bootId: v.readUInt32BE(8), base: readU64(v, 12) };
  return { lastSeq: readU64(v, 0), bootId: undefined, base: 0 };
}
