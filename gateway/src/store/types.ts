/**
 * The store interface: a durable, append-only frame log with a (device, extended seq)
 * index, the batch log / anchoring outbox, and retention. Implemented by `LevelFrameStore`
 * (classic-level, production) and `MemoryFrameStore` (tests, simulations); both pass the
 * shared suite in test/store/abstract.ts.
 */
import type { AppendOutcome, FrameRecord, FrameSink } from "../ingest/sink.ts";

export type { AppendOutcome, FrameRecord, FrameSink };

/** A frame as stored: the record plus its arrival index (1, 2, 3, … in commit order). */
export interface StoredFrame extends FrameRecord {
  index: number;
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
  /** secp256k1: checksummed address the signature recovers to. */
  address?: string;
  /** Uncompressed public key, 0x04‖x‖y hex. */
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
  /** Arrival indices of the first and last frame in the batch (leaf i = frame firstIndex + i). */
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
   * Transaction and block of the BatchAnchored event. null only when the batch was found
   * already anchored (e.g. sent just before a crash) and the RPC could not look up its log.
   */
  txHash: string | null;
  blockNumber: number | null;
  /** Confirmations waited for before recording. */
  confirmations: number;
  anchoredAtUs: number;
}

export type StoreState = "ok" | "low-space" | "unavailable" | "closed";

export interface StoreStats {
  state: StoreState;
  /** Last arrival index (0 when empty). */
  lastIndex: number;
  /** Frames currently kept (not pruned). */
  liveFrames: number;
  /** Approximate bytes of live frames (keys + values, before LevelDB compression). */
  liveBytes: number;
  sealedThrough: number;
  lastBatchSeq: number;
  anchoredThrough: number;
  prunedThrough: number;
  /** Records waiting in the group-commit queue. */
  pending: number;
  commits: number;
}

export interface PruneOptions {
  /** Current time, µs since the epoch. */
  nowUs: number;
  /** Keep frames whose batch was sealed less than this long ago (µs). */
  retentionUs: number;
}

export interface FrameStore extends FrameSink {
  /** Opens the store and recovers per-device state (last seq) and the outbox. */
  open(): Promise<void>;
  /** Flushes pending appends, stops timers, closes. */
  close(): Promise<void>;

  /** Last durably stored extended seq of a device (undefined when none): ingest's start-up state. */
  lastSeq(deviceId: number): number | undefined;
  /** All devices with their last stored extended seq. */
  devices(): ReadonlyMap<number, number>;
  /**
   * Slow path for the dedupe window: true if (device, seq) is stored, or is at or below the
   * device's pruned floor (frames older than the retention window count as seen).
   */
  has(deviceId: number, seq: number): Promise<boolean>;

  getFrame(index: number): Promise<StoredFrame | undefined>;
  getFrameBySeq(deviceId: number, seq: number): Promise<StoredFrame | undefined>;
  /** Frames with fromIndex ≤ index ≤ toIndex in arrival order. */
  framesByIndex(fromIndex: number, toIndex: number): AsyncIterable<StoredFrame>;
  /** The same in chunks of up to 1024 frames (long scans: sealing, export). */
  frameChunks(fromIndex: number, toIndex: number): AsyncIterable<StoredFrame[]>;
  /** Frames of one device with fromSeq ≤ seq ≤ toSeq in seq order. */
  framesByDevice(deviceId: number, fromSeq?: number, toSeq?: number): AsyncIterable<StoredFrame>;

  stats(): StoreStats;

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
  /** The batch holding the frame at arrival index `index`, if sealed. */
  batchForIndex(index: number): Promise<SealedBatch | undefined>;
  /** Highest batch seq anchored (0 when none); all lower ones are anchored too. */
  anchoredThrough(): number;
  /** Sealed, not yet anchored batches in seq order (the outbox). */
  pendingAnchors(limit?: number): Promise<SealedBatch[]>;
  /** Marks batch `seq` anchored; requires seq = anchoredThrough()+1 (StoreOrderError otherwise). */
  markAnchored(seq: number, anchor: AnchorRecord): Promise<void>;
  getAnchor(seq: number): Promise<AnchorRecord | undefined>;

  /**
   * Deletes frames of anchored batches sealed more than `retentionUs` ago. Batch records,
   * leaves and anchors are kept, so proofs stay re-derivable for anyone holding the frame.
   * Returns the number of frames deleted.
   */
  prune(opts: PruneOptions): Promise<number>;
}
