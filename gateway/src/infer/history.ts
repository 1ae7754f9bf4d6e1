/**
 * A device's stored frames, read back to warm its inference window after a gateway restart.
 *
 * The loop's per-device state (the ring of the last `window` rows and, for models with
 * `inputs.baseline`, the mean of the device's first rows) lives in memory. Without a warm-up, a
 * restarted gateway would pad the first windows of a running device and, worse, take the first
 * frames after the restart as the device's baseline. The frame log has both: the device's
 * earliest frames (unless retention pruned them) and the ones just before the first frame seen
 * since the restart.
 */
import { decodeFrame, FrameType } from "../protocol/frame.ts";
import type { FrameStore, StoredFrame } from "../store/types.ts";

/** One stored DATA frame, as the loop replays it. */
export interface HistoryRow {
  /** Extended sequence number. */
  seq: number;
  timestampUs: number;
  receivedUs: number;
  values: Float32Array;
  /** The raw frame (set for live frames held during a warm-up: their sensor-fault leaves need it). */
  raw?: Buffer;
}

/** What {@link DeviceHistory.read} found. */
export interface HistoryRead {
  first: HistoryRow[];
  last: HistoryRow[];
  /**
   * Stored frames in the ranges read that no longer decode (their CRC or layout is broken: the
   * store was damaged after they were validated on arrival). They are skipped. Default 0.
   */
  damaged?: number;
}

export interface DeviceHistory {
  /**
   * Rows of `deviceId` with extended seq below `beforeSeq`, oldest first: `first` = up to
   * `firstCount` of the earliest ones, `last` = the (up to) `lastCount` stored frames just before
   * `beforeSeq`, across a reboot's seq gap. The two may overlap when the device has few frames.
   */
  read(deviceId: number, beforeSeq: number, firstCount: number, lastCount: number): Promise<HistoryRead>;
}

/**
 * DeviceHistory over the frame store's per-device index: `first` from `framesByDevice`, `last` from
 * `framesBefore` (the frames just before, across a device reboot: a new boot's seqs start at the
 * next multiple of 2^32, so a seq range would find only the new boot's few frames).
 */
export function storeHistory(store: Pick<FrameStore, "framesByDevice" | "framesBefore">): DeviceHistory {
  const rows = async (
    frames: AsyncIterable<StoredFrame> | Iterable<StoredFrame>,
    max: number,
    damaged: Set<number>,
  ): Promise<HistoryRow[]> => {
    const out: HistoryRow[] = [];
    if (max <= 0) return out;
    for await (const f of frames) {
      let frame;
      try {
        frame = decodeFrame(f.raw);
      } catch {
        // Validated on arrival, so the store was damaged since: skipped, and counted by seq (the
        // two ranges may overlap) for the loop's `warmupDamaged`.
        damaged.add(f.seq);
        continue;
      }
      if (frame.type !== FrameType.Data) continue;
      out.push({ seq: f.seq, timestampUs: f.timestampUs, receivedUs: f.receivedUs, values: frame.values });
      if (out.length >= max) break;
    }
    return out;
  };
  return {
    async read(deviceId, beforeSeq, firstCount, lastCount) {
      const damaged = new Set<number>();
      if (beforeSeq <= 0) return { first: [], last: [] };
      const first = await rows(store.framesByDevice(deviceId, 0, beforeSeq - 1), firstCount, damaged);
      // Frames that are not DATA (a device's ERROR reports) are skipped: `last` may be shorter.
      const last = await rows(await store.framesBefore(deviceId, beforeSeq, lastCount), lastCount, damaged);
      return damaged.size > 0 ? { first, last, damaged: damaged.size } : { first, last };
    },
  };
}
