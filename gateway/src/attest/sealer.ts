/**
 * The batch sealer: every `intervalMs` (T) or as soon as `maxLeaves` (K) durable log entries
 * are unsealed, it takes the next run of entries in arrival order — frames and INFERENCE /
 * ALERT leaf records — hashes their leaves (a frame: its FRAME leaf; a leaf record:
 * keccak256 of its stored preimage, `leafFromPreimage`), builds the Merkle tree, fills the EIP-712 `BatchHeader`, signs the digest with the gateway
 * key and records the batch in the store (the anchoring outbox) with its leaves.
 *
 * Never blocking ingest for long: hashing and tree building run in slices of `sliceHashes`
 * keccak permutations (≈ 0.3-0.5 µs each) separated by `setImmediate`, so the event loop
 * serves ingest between slices (default 2048 → ≈ 1 ms per slice). Measured (README.md):
 * sealing 100k frames during full-speed ingest stalled the loop ≤ 21 ms sliced vs 50 ms
 * unsliced. A worker thread was not built: the main thread must read the frames anyway
 * (LevelDB is single-process) and would have to copy them over.
 */
import { isStoredLeaf, type FrameStore, type SealedBatch } from "../store/types.ts";
import { backoffMs, realTimers, unrefTimer, type Timers } from "../core/timers.ts";
import { batchDigest, nextHead, ZERO_HASH, type VigilDomain } from "../chain/eip712.ts";
import { bytesToHex, type Hex } from "../core/hex.ts";
import { frameLeafInto } from "../core/leaf.ts";
import { MerkleBuilder } from "./merkle.ts";
import { domainJson, toEip712Header } from "./header.ts";
import type { GatewaySigner } from "./signer.ts";

/** Longest wait between trigger checks while sealing keeps failing, ms. */
const MAX_RETRY_MS = 30_000;

export interface SealerOptions {
  store: FrameStore;
  signer: GatewaySigner;
  /** bytes32 gateway id as registered. */
  gatewayId: Hex;
  /** EIP-712 domain: the registry's chain id and address. */
  domain: VigilDomain;
  /** T: seal at most this long after the previous seal when frames wait. Default 10 000 ms. */
  intervalMs?: number;
  /** K: seal as soon as this many frames wait; also the largest batch. Default 10 000. */
  maxLeaves?: number;
  /**
   * How often the trigger is checked. Default min(intervalMs, 250) ms. After failed seals the wait
   * doubles per failure in a row, up to 30 s (never below pollMs).
   */
  pollMs?: number;
  /** Keccak permutations per event-loop slice. Default 2048. */
  sliceHashes?: number;
  /**
   * Header `modelHash` of batches without INFERENCE/ALERT/SENSOR_FAULT leaves. Default zero. A batch whose
   * leaf records all carry one model hash commits that hash; leaves of several models: zero.
   */
  modelHash?: Hex;
  timers?: Timers;
  /** Clock in µs since the epoch (injectable). */
  nowUs?: () => number;
  onSealed?: (batch: SealedBatch) => void;
  onError?: (err: unknown) => void;
}

const yieldLoop = (): Promise<void> => new Promise((r) => setImmediate(r));

export class BatchSealer {
  private readonly o: Required<Omit<SealerOptions, "onSealed" | "onError">> & {
    onSealed: SealerOptions["onSealed"] | undefined;
    onError: SealerOptions["onError"] | undefined;
  };
  private timer: unknown;
  private running = false;
  private sealing: Promise<SealedBatch | undefined> | undefined;
  /** Trigger checks in a row that failed: the next check waits pollMs × 2^failures (≤ 30 s). */
  private failures = 0;
  private lastSealUs: number;

  constructor(opts: SealerOptions) {
    const intervalMs = opts.intervalMs ?? 10_000;
    this.o = {
      intervalMs,
      maxLeaves: opts.maxLeaves ?? 10_000,
      pollMs: opts.pollMs ?? Math.min(intervalMs, 250),
      sliceHashes: opts.sliceHashes ?? 2048,
      modelHash: opts.modelHash ?? ZERO_HASH,
      timers: opts.timers ?? realTimers,
      nowUs: opts.nowUs ?? (() => Date.now() * 1000),
      store: opts.store,
      signer: opts.signer,
      gatewayId: opts.gatewayId,
      domain: opts.domain,
      onSealed: opts.onSealed,
      onError: opts.onError,
    };
    if (!/^0x[0-9a-f]{64}$/i.test(opts.gatewayId)) throw new RangeError("gatewayId must be 32 bytes of hex");
    if (!Number.isInteger(this.o.maxLeaves) || this.o.maxLeaves < 1 || this.o.maxLeaves > 0xffffffff)
      throw new RangeError("maxLeaves must be an integer in 1..2^32-1");
    this.lastSealUs = this.o.nowUs();
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.arm();
  }

  /** Stops the trigger and waits for a seal in progress. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.timer !== undefined) this.o.timers.clearTimeout(this.timer);
    this.timer = undefined;
    await this.sealing?.catch(() => {});
  }

  private arm(): void {
    if (!this.running) return;
    this.timer = unrefTimer(
      this.o.timers.setTimeout(() => {
        this.timer = undefined;
        void this.tick().finally(() => this.arm());
      }, this.delayMs()),
    );
  }

  /**
   * The wait before the next trigger check: pollMs, or after failed seals (a full disk, a store
   * error) pollMs doubled per failure in a row, at most 30 s, so a lasting failure is retried (and
   * reported through onError) a few times a minute instead of four times a second.
   */
  private delayMs(): number {
    if (this.failures === 0) return this.o.pollMs;
    return Math.max(this.o.pollMs, backoffMs(this.o.pollMs, this.failures, MAX_RETRY_MS));
  }

  /** Unsealed durable log entries (frames and leaf records). */
  backlog(): number {
    return this.o.store.stats().lastIndex - this.o.store.sealedThrough();
  }

  /** One trigger check: seals while K frames wait, or once when T has passed. */
  async tick(): Promise<void> {
    try {
      while (this.backlog() >= this.o.maxLeaves) await this.sealNow();
      if (this.backlog() > 0 && this.o.nowUs() - this.lastSealUs >= this.o.intervalMs * 1000)
        await this.sealNow();
      this.failures = 0;
    } catch (e) {
      this.failures++;
      this.o.onError?.(e);
    }
  }

  /** Seals the next batch (up to K frames) now; undefined when nothing waits. One at a time. */
  sealNow(): Promise<SealedBatch | undefined> {
    if (this.sealing) return this.sealing.then(() => this.sealNow());
    const p = this.seal().finally(() => {
      this.sealing = undefined;
    });
    this.sealing = p;
    return p;
  }

  private async seal(): Promise<SealedBatch | undefined> {
    const { store, maxLeaves, sliceHashes } = this.o;
    const from = store.sealedThrough() + 1;
    const to = Math.min(store.stats().lastIndex, from - 1 + maxLeaves);
    if (to < from) return undefined;
    const n = to - from + 1;
    const leaves = new Uint8Array(32 * n);
    let i = 0;
    let first = Number.MAX_SAFE_INTEGER;
    let last = 0;
    let budget = sliceHashes;
    // undefined: no leaf record seen yet; null: leaf records of more than one model.
    let model: Uint8Array | null | undefined;
    for await (const chunk of store.entryChunks(from, to)) {
      for (const f of chunk) {
        if (f.index !== from + i) throw new Error(`log entry ${from + i} is missing`);
        if (isStoredLeaf(f)) {
          leaves.set(f.hash, 32 * i);
          const m = f.preimage.subarray(1, 33);
          if (model === undefined) model = m;
          else if (model !== null && Buffer.compare(model, m) !== 0) model = null;
        } else frameLeafInto(f, leaves, 32 * i);
        if (f.timestampUs < first) first = f.timestampUs;
        if (f.timestampUs > last) last = f.timestampUs;
        i++;
      }
      budget -= chunk.length;
      if (budget <= 0) {
        budget = sliceHashes;
        await yieldLoop();
      }
    }
    if (i !== n) throw new Error(`expected ${n} log entries ${from}..${to}, read ${i}`);
    const builder = new MerkleBuilder(leaves);
    while (!builder.step(sliceHashes)) await yieldLoop();
    const tree = builder.result();
    const prevHead = store.lastHead() as Hex;
    const header = {
      gatewayId: this.o.gatewayId.toLowerCase(),
      seq: store.lastBatchSeq() + 1,
      prevHead,
      root: bytesToHex(tree.root),
      leafCount: n,
      firstTimestamp: first,
      lastTimestamp: last,
      modelHash:
        model === undefined ? this.o.modelHash.toLowerCase() : model === null ? ZERO_HASH : bytesToHex(model),
    };
    const eip = toEip712Header(header);
    const digest = batchDigest(this.o.domain, eip);
    const signature = this.o.signer.sign(digest);
    const batch: SealedBatch = {
      header,
      head: nextHead(prevHead, eip),
      digest,
      signature,
      signer: this.o.signer.info(),
      domain: domainJson(this.o.domain),
      firstIndex: from,
      lastIndex: to,
      sealedAtUs: this.o.nowUs(),
    };
    await store.saveBatch(batch, leaves);
    this.lastSealUs = batch.sealedAtUs;
    this.o.onSealed?.(batch);
    return batch;
  }
}
