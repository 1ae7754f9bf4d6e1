import type { AppendOutcome, FrameRecord, FrameSink } from "../core/records.ts";

/**
 * A sink that keeps records in memory and deduplicates by (device, seq): the fake behind the
 * FrameSink interface for unit tests and for `vigil start --no-store` runs of the ingest path.
 */
export class MemorySink implements FrameSink {
  readonly records: FrameRecord[] = [];
  readonly #keys = new Set<string>();
  /** When set, append() rejects with this error (to test store outages). */
  failWith: Error | undefined;

  append(record: FrameRecord): Promise<AppendOutcome> {
    if (this.failWith) return Promise.reject(this.failWith);
    const key = `${record.deviceId}:${record.seq}`;
    if (this.#keys.has(key)) return Promise.resolve("duplicate");
    this.#keys.add(key);
    this.records.push(record);
    return Promise.resolve("stored");
  }

  has(deviceId: number, seq: number): boolean {
    return this.#keys.has(`${deviceId}:${seq}`);
  }
}
