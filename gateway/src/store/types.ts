/**
 * The store interface: a durable, append-only frame log with a (device, extended seq)
 * index, the batch log / anchoring outbox, and retention. Implemented by `LevelFrameStore`
 * (classic-level, production) and `MemoryFrameStore` (tests, simulations); both pass the
 * shared suite in test/store/abstract.ts.
 */
import type { VigilError } from "../core/errors.ts";
import type { LatencyHistogram } from "../core/histogram.ts";
import type { AppendOutcome, FrameRecord, FrameSink, LeafRecord } from "../core/records.ts";

export type { AppendOutcome, FrameRecord, FrameSink, LeafRecord };

/** A device's durable sequence state: its last stored extended seq and the boot it belongs to. */
export interface DeviceSeqState {
  lastSeq: number;
  /** HELLO boot id of the sequence space `lastSeq` is in; undefined before the first HELLO. */
  bootId: number | undefined;
  /** Extended seq where that boot's sequence space starts. */
  base: number;
}

/** A frame as stored: the record plus its arrival index (1, 2, 3, … in commit order). */
export interface StoredFrame extends FrameRecord {
  index: number;
}

/** A leaf record as stored: it shares the arrival index space with frames. */
export interface StoredLeaf {
  index: number;
  kind: "inference" | "alert" | "sensor-fault";
  deviceId: number;
  timestampUs: number;
  /** Gateway clock when the leaf was appended, µs. */
  receivedUs: number;
  preimage: Uint8Array;
  /** keccak256(preimage): the Merkle leaf. */
  hash: Uint8Array;
}

/** One entry of the arrival-ordered log: a frame or a leaf record (tell them apart with isStoredLeaf). */
export type LogEntry = StoredFrame | StoredLeaf;

export function isStoredLeaf(e: LogEntry): e is StoredLeaf {
  return "preimage" in e;
}

/** EIP-712 `BatchHeader` fields in JSON-friendly form (hex strings, safe integers). */
export interface BatchHeaderJson {
  gatewayId: string;
  seq: number;
  prevHead: string;
  root: string;
  leafCount: number;
  firstTimestamp: number;
  lastTimestamp: number;
  modelHash: string;
}

export interface SignerInfo {
  keyType: "secp256k1" | "p256";
  /** secp256k1: the address the signature recovers to (lowercase hex); absent for P-256. */
  address?: string;
  /** Registry encoding: the 20-byte address (secp256k1) or x‖y, 64 bytes (P-256), lowercase hex. */
  publicKey: string;
}

export interface Eip712DomainJson {
  name: string;
  version: string;
  chainId: number;
  verifyingContract: string;
}

/** A sealed batch as kept in the batch log (= the anchoring outbox until anchored). */
export interface SealedBatch {
  header: BatchHeaderJson;
  /** keccak256(abi.encode(prevHead, hashStruct(header))): the gateway's head after this batch. */
  head: string;
  /** EIP-712 digest that was signed. */
  digest: string;
  /** secp256k1: 65-byte r‖s‖v; P-256: 64-byte r‖s (hex). */
  signature: string;
  signer: SignerInfo;
  domain: Eip712DomainJson;
  /**
   * Arrival indices of the first and last log entry in the batch (leaf i = entry firstIndex + i;
   * an entry is a frame or an INFERENCE/ALERT leaf record).
   */
  firstIndex: number;
  lastIndex: number;
  sealedAtUs: number;
}

/** Where and when a batch was anchored. */
export interface AnchorRecord {
  chainId: number;
  /** Registry address (lowercase). */
  contract: string;
  /**
   * Transaction and block of the BatchAnchored event. null only in records written before the
   * gateway looked anchors up in bounded log ranges (a batch found already anchored after a crash
   * whose log the RPC could not return).
   */
  txHash: string | null;
  blockNumber: number | null;
  /** Hash of that block (detects a reorg that moved or dropped it); absent in older records. */
  blockHash?: string | null;
  /**
   * Finality depth the gateway applies (an anchor is final once its block has this many
   * confirmations); 0 with `finality: "finalized"` (the chain's `finalized` tag decides).
   */
  confirmations: number;
  /**
   * Whether the anchor is final: its block is at least `confirmations` deep, or at or below the
   * chain's `finalized` block. Until then a reorg may still drop it (the gateway then anchors the
   * same header again). Absent in older records, which were written after waiting for
   * `confirmations`: read absent as true.
   */
  final?: boolean;
  anchoredAtUs: number;
  /** Gateway clock when the anchor was seen final (µs); absent until then. */
  finalAtUs?: number;
  /** L2 gas used by the transaction (shared by the batches of one anchorMany). */
  gasUsed?: number;
  /** What the transaction cost: gasUsed × effective gas price + L1 data fee, wei (decimal string). */
  costWei?: string;
  /** OP-Stack L1 data fee of the transaction, wei (decimal string); null on other chains. */
  l1FeeWei?: string | null;
  /**
   * The store's retention clock (gateway uptime, µs) when the anchor was recorded: retention
   * counts from here (retention.ts). Set by the store; absent in records written before it.
   */
  anchoredAgeUs?: number;
}

/**
 * ok: accepting frames. low-space: free disk below the watermark (refusing, reads go on).
 * unavailable: an I/O error, retried. corrupt: the store lost or damaged data it had
 * acknowledged; it refuses frames for good (`vigil store check` / `salvage`). closed.
 */
export type StoreState = "ok" | "low-space" | "unavailable" | "corrupt" | "closed";

export interface StoreStats {
  state: StoreState;
  /** Last arrival index of the log, frames and leaf records (0 when empty). */
  lastIndex: number;
  /** Log entries currently kept (not pruned): frames and leaf records. */
  liveFrames: number;
  /** Approximate bytes of live entries (keys + values, before LevelDB compression). */
  liveBytes: number;
  sealedThrough: number;
  lastBatchSeq: number;
  anchoredThrough: number;
  prunedThrough: number;
  /** Records (frames and leaves) waiting in the group-commit queue. */
  pending: number;
  commits: number;
  /** Leaf records durably stored since open (not persisted across restarts). */
  leavesStored: number;
  /** appendLeaf() calls that were refused or failed since open (store unavailable, full, invalid). */
  leafFailures: number;
  /** Disk-guard operations that failed since open (free-space check, reserve file). */
  guardErrors: number;
  /** Retention's uptime clock, µs (retention.ts). */
  retentionClockUs: number;
  /** Why the store is not accepting frames (null when it is). */
  lastError: string | null;
}

/**
 * How long group commits take, µs, as the event loop sees them (I/O plus the wait for the loop to
 * run the completion): `write`, the batch write with sync (the database's log `fdatasync`);
 * `watermark`, the watermark's write and `fdatasync` that follows it (watermark.ts). A frame's
 * acknowledgement waits for both.
 */
export interface CommitTiming {
  readonly write: LatencyHistogram;
  readonly watermark: LatencyHistogram;
}

export interface PruneOptions {
  /**
   * Keep a batch's frames until it has been anchored this long (µs), measured on the store's
   * uptime clock, not the wall clock (retention.ts).
   */
  retentionUs: number;
}

export interface FrameStore extends FrameSink {
  /** Opens the store and recovers per-device state (last seq) and the outbox. */
  open(): Promise<void>;
  /**
   * Calls `fn` once if the store finds, while running, that it lost or damaged data (state
   * "corrupt"): it then refuses every frame for good; the gateway stops (fatal).
   */
  onCorrupt(fn: (err: VigilError) => void): void;
  /** Flushes pending appends, stops timers, closes. */
  close(): Promise<void>;

  /** Last durably stored extended seq of a device (undefined when none). */
  lastSeq(deviceId: number): number | undefined;
  /** All devices with their durable sequence state: ingest's start-up state. */
  devices(): ReadonlyMap<number, DeviceSeqState>;
  /**
   * Slow path for the dedupe window: true if (device, seq) is stored, or is at or below the
   * device's pruned floor (frames older than the retention window count as seen).
   */
  has(deviceId: number, seq: number): Promise<boolean>;

  /**
   * Records an INFERENCE or ALERT leaf at the next arrival index, group-committed with frames
   * (resolves once synced). Leaf records are not deduplicated; the same hash appended twice
   * is stored twice and getByLeafHash returns the first. Rejects like append() when the store
   * cannot accept writes (StoreUnavailableError, StoreFullError) and with RangeError for an
   * invalid record (a preimage that does not decode or does not match kind, device, timestamp).
   */
  appendLeaf(leaf: LeafRecord): Promise<void>;
  /** The leaf record at arrival index `index` (undefined for a frame, a pruned or no entry). */
  getLeaf(index: number): Promise<StoredLeaf | undefined>;
  /** The first leaf record whose keccak256 is `hash` (32 bytes or 0x-hex). */
  getByLeafHash(hash: Uint8Array | string): Promise<StoredLeaf | undefined>;
  /** The frame or leaf record at arrival index `index`. */
  entryByIndex(index: number): Promise<LogEntry | undefined>;
  /**
   * Frames and leaf records with fromIndex ≤ index ≤ toIndex in arrival order, in chunks of up
   * to 1024 (what the sealer reads).
   */
  entryChunks(fromIndex: number, toIndex: number): AsyncIterable<LogEntry[]>;

  /** The frame at arrival index `index` (undefined for a leaf record). */
  getFrame(index: number): Promise<StoredFrame | undefined>;
  getFrameBySeq(deviceId: number, seq: number): Promise<StoredFrame | undefined>;
  /** Frames (only) with fromIndex ≤ index ≤ toIndex in arrival order; leaf indices are skipped. */
  framesByIndex(fromIndex: number, toIndex: number): AsyncIterable<StoredFrame>;
  /** The same in chunks of up to 1024 frames (long scans: sealing, export). */
  frameChunks(fromIndex: number, toIndex: number): AsyncIterable<StoredFrame[]>;
  /** Frames of one device with fromSeq ≤ seq ≤ toSeq in seq order. */
  framesByDevice(deviceId: number, fromSeq?: number, toSeq?: number): AsyncIterable<StoredFrame>;
  /** The last `count` frames of one device with seq < beforeSeq, oldest first, across boots. */
  framesBefore(deviceId: number, beforeSeq: number, count: number): Promise<StoredFrame[]>;

  stats(): StoreStats;

  /** Group-commit timing since open (histograms, read by the metrics endpoint). */
  readonly commitTiming: CommitTiming;

  // ---- batch log / anchoring outbox
  /** Last arrival index covered by a sealed batch (0 when none). */
  sealedThrough(): number;
  lastBatchSeq(): number;
  /** Head after the last sealed batch (0x00…00 before the first). */
  lastHead(): string;
  /**
   * Records a sealed batch atomically with its leaves. Requires header.seq = lastBatchSeq()+1
   * and firstIndex = sealedThrough()+1 (StoreOrderError otherwise): nothing skipped, nothing twice.
   */
  saveBatch(batch: SealedBatch, leaves: Uint8Array): Promise<void>;
  getBatch(seq: number): Promise<SealedBatch | undefined>;
  /** Packed 32-byte leaves of a batch (kept after frames are pruned). */
  getBatchLeaves(seq: number): Promise<Uint8Array | undefined>;
  /** The batch holding the entry (frame or leaf) at arrival index `index`, if sealed. */
  batchForIndex(index: number): Promise<SealedBatch | undefined>;
  /** Highest batch seq anchored (0 when none); all lower ones are anchored too. */
  anchoredThrough(): number;
  /** Sealed, not yet anchored batches in seq order (the outbox). */
  pendingAnchors(limit?: number): Promise<SealedBatch[]>;
  /** Marks batch `seq` anchored; requires seq = anchoredThrough()+1 (StoreOrderError otherwise). */
  markAnchored(seq: number, anchor: AnchorRecord): Promise<void>;
  getAnchor(seq: number): Promise<AnchorRecord | undefined>;
  /**
   * Replaces the record of an anchored batch (seq ≤ anchoredThrough()): the anchor was seen final,
   * or a reorg moved its transaction to another block, or it was found under another transaction.
   * Chain id and registry must stay the same; the retention clock stamp is kept (StoreOrderError
   * otherwise).
   */
  updateAnchor(seq: number, anchor: AnchorRecord): Promise<void>;
  /**
   * Un-anchors every batch above `toSeq` (their anchor records are deleted and anchoredThrough()
   * becomes `toSeq`): the chain no longer holds them (a reorg dropped the transaction, or an operator
   * reconciled the store with the chain). The batches stay sealed and go out again, unchanged.
   * Refused (StoreOrderError) below a batch whose frames retention already pruned. Returns the
   * number of records removed.
   */
  rewindAnchors(toSeq: number): Promise<number>;

  /**
   * Deletes frames and leaf records of batches anchored (final) more than `retentionUs` ago, on
   * the store's uptime clock (retention.ts).
   * Batch records, packed leaves and anchors are kept, so proofs stay re-derivable for anyone
   * holding the frame or preimage. Returns the number of log entries deleted.
   */
  prune(opts: PruneOptions): Promise<number>;

  // ---- registry cache (registry-cache.ts; read and written by chain/watch.ts)
  /** The cached registry entries and the meta record of the last save. */
  loadRegistry(): Promise<RegistryCacheState>;
  /**
   * Writes changed entries (value undefined = delete) and the meta record in one synced batch;
   * `replace` deletes every other entry first.
   */
  saveRegistry(
    changes: readonly RegistryCacheEntry[],
    meta: Record<string, unknown>,
    replace?: boolean,
  ): Promise<void>;

  // ---- small named records (key prefix `U`): the update agents' (`updates/…`), the anchoring
  // spend ledger (`anchor/spend`)
  /** A named record (key prefix `U`), or undefined. */
  getMeta(name: string): Promise<Buffer | undefined>;
  /** Writes (synced) a named record; an empty value is kept (use it as "cleared"). */
  putMeta(name: string, value: Buffer): Promise<void>;
  /** Every named record whose name starts with `prefix`. */
  metaEntries(prefix: string): Promise<Array<[string, Buffer]>>;
}

/** One cache entry; a `value` of undefined in a save deletes the entry. */
export interface RegistryCacheEntry {
  /** One ASCII character (not NUL). */
  kind: string;
  /** At most 200 bytes of UTF-8. */
  id: string;
  value: unknown;
}

export interface RegistryCacheState {
  /** The meta record of the last save (undefined before the first). */
  meta: Record<string, unknown> | undefined;
  entries: RegistryCacheEntry[];
}
