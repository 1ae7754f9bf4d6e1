/**
 * Retention: frames and leaf records of anchored batches are deleted once the batch has been
 * anchored for `retentionUs`. Batch records, packed leaves and anchors are kept, so proofs stay
 * re-derivable for anyone holding the frame or preimage.
 *
 * Age is measured on the store's own uptime clock, never on the wall clock: a Pi boots with a
 * stale clock and jumps forward when NTP syncs, which with wall-clock ages pruned every anchored
 * batch within a minute. Each prune() call advances the clock by the monotonic time since the
 * previous call, at most `maxStepUs` (a suspended process or a stalled timer cannot fast-forward
 * it), and persists it (`Mage`); each anchor record carries the clock value at anchoring
 * (`anchoredAgeUs`, outbox.ts). Time the gateway is stopped does not count: data is kept longer,
 * never shorter.
 */
import type { StoreContext } from "./context.ts";
import { M_AGE, M_PRUNED } from "./context.ts";
import {
  P_LEAF,
  P_LOG,
  P_PRUNED,
  RECORD_FIXED,
  devKey,
  devSeqKey,
  readU64,
  storedLeafHash,
  leafHashKey,
  u64Key,
  u64Value,
  writeU64,
} from "./codec.ts";
import type { StoreUnavailableError } from "./errors.ts";
import type { KvOp } from "./kv.ts";
import { KEY_BYTES, LEAF_KEY_BYTES } from "./log.ts";
import type { Outbox } from "./outbox.ts";
import type { LogReader } from "./reads.ts";
import type { PruneOptions } from "./types.ts";

/** Largest advance of the retention clock per prune() call, µs. Default 10 minutes. */
export const DEFAULT_MAX_AGE_STEP_US = 600e6;

export class Retention {
  readonly #c: StoreContext;
  readonly #reads: LogReader;
  readonly #outbox: Outbox;
  readonly #failed: (err: StoreUnavailableError) => void;
  readonly #monoMs: () => number;
  readonly #maxStepUs: number;
  #lastMono: number | undefined;

  constructor(
    c: StoreContext,
    reads: LogReader,
    outbox: Outbox,
    failed: (err: StoreUnavailableError) => void,
    monoMs: () => number,
    maxStepUs = DEFAULT_MAX_AGE_STEP_US,
  ) {
    this.#c = c;
    this.#reads = reads;
    this.#outbox = outbox;
    this.#failed = failed;
    this.#monoMs = monoMs;
    this.#maxStepUs = maxStepUs;
  }

  /** Starts measuring uptime from now (at open). */
  start(): void {
    this.#lastMono = this.#monoMs();
  }

  /** Advances the uptime clock by the monotonic time since the last call (bounded); returns it. */
  #tick(): number {
    const now = this.#monoMs();
    const last = this.#lastMono;
    this.#lastMono = now;
    if (last !== undefined) this.#c.ageUs += Math.min(Math.max(0, (now - last) * 1000), this.#maxStepUs);
    return this.#c.ageUs;
  }

  prune(opts: PruneOptions): Promise<number> {
    const c = this.#c;
    return c.metaLock.run(async () => {
      const age = this.#tick();
      let deleted = 0;
      for (let s = c.pruned.batchSeq + 1; s <= c.anchored; s++) {
        const b = await this.#outbox.getBatch(s);
        const a = await this.#outbox.getAnchor(s);
        if (!b || !a || (a.anchoredAgeUs ?? 0) + opts.retentionUs > age) break;
        // Not final yet: a reorg may still un-anchor it (outbox.ts refuses that once pruned), so
        // it stays until final (records of gateways before finality tracking have no flag: final).
        if (a.final === false) break;
        const ops: KvOp[] = [];
        const floors = new Map<number, number>();
        let bytes = 0;
        let frames = 0;
        for await (const f of this.#reads.framesByIndex(c.pruned.throughIndex + 1, b.lastIndex)) {
          ops.push(
            { type: "del", key: u64Key(P_LOG, f.index) },
            { type: "del", key: devSeqKey(f.deviceId, f.seq) },
          );
          const fl = floors.get(f.deviceId) ?? c.prunedFloor.get(f.deviceId) ?? -1;
          if (f.seq > fl) floors.set(f.deviceId, f.seq);
          bytes += RECORD_FIXED + KEY_BYTES + f.raw.length;
          frames++;
        }
        for await (const [k, v] of this.#reads.range({
          gte: u64Key(P_LEAF, c.pruned.throughIndex + 1),
          lt: u64Key(P_LEAF, b.lastIndex + 1),
        })) {
          ops.push(
            { type: "del", key: k },
            { type: "del", key: leafHashKey(storedLeafHash(v), readU64(k, 1)) },
          );
          bytes += LEAF_KEY_BYTES + v.length; // as the log counted it: fixed part + preimage + keys
          frames++;
        }
        for (const [dev, seq] of floors)
          ops.push({ type: "put", key: devKey(P_PRUNED, dev), value: u64Value(seq) });
        const next = {
          throughIndex: b.lastIndex,
          frames: c.pruned.frames + frames,
          bytes: c.pruned.bytes + bytes,
          batchSeq: s,
        };
        const meta = Buffer.allocUnsafe(32);
        writeU64(meta, 0, next.throughIndex);
        writeU64(meta, 8, next.frames);
        writeU64(meta, 16, next.bytes);
        writeU64(meta, 24, next.batchSeq);
        ops.push(
          { type: "put", key: M_PRUNED, value: meta },
          { type: "put", key: M_AGE, value: u64Value(age) },
        );
        await c.metaWrite(ops, "pruning frames", this.#failed);
        for (const [dev, seq] of floors) c.prunedFloor.set(dev, seq);
        c.pruned = next;
        deleted += frames;
      }
      if (deleted === 0 && c.state === "ok")
        await c.metaWrite(
          [{ type: "put", key: M_AGE, value: u64Value(age) }],
          "recording the retention clock",
          this.#failed,
        );
      return deleted;
    });
  }
}
