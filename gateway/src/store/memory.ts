/**
 * In-memory frame store: the same logic as the LevelDB store on a sorted map. For tests,
 * simulations and `--memory` runs; nothing survives the process. `kv.faults` simulates a
 * full disk.
 */
import { KvFrameStore, type CoreStoreOptions } from "./core.ts";
import { MemoryKv } from "./kv.ts";

export type MemoryFrameStoreOptions = CoreStoreOptions;

export class MemoryFrameStore extends KvFrameStore {
  readonly memory: MemoryKv;
  constructor(opts: MemoryFrameStoreOptions = {}, kv: MemoryKv = new MemoryKv()) {
    // The watermark lives with the key-value data, so a store reopened on the same MemoryKv
    // is checked against it like a LevelDB store against its watermark file.
    super(kv, { watermark: kv.watermark, ...opts });
    this.memory = kv;
  }
}
