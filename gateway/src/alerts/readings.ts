/**
 * Decoded readings for dashboards, throttled per device: at most one `reading` event per device
 * per interval — the first frame at once, then the latest frame of each interval when it ends
 * (so a dashboard always ends on a device's last stored values, also when the device goes
 * quiet). Memory: one held event per device.
 */
import type { Clock } from "../core/clock.ts";
import { unrefTimer, type Timers } from "../core/timers.ts";
import type { ReadingEvent } from "./events.ts";

export interface ReadingFeedOptions {
  /** Minimum time between two readings of one device, ms (0: every stored frame). */
  intervalMs: number;
  clock: Clock;
  timers: Timers;
  emit: (e: ReadingEvent) => void;
}

interface DeviceState {
  lastUs: number;
  held: ReadingEvent | undefined;
}

export class ReadingFeed {
  readonly counters = { published: 0, throttled: 0 };
  readonly #o: ReadingFeedOptions;
  readonly #intervalUs: number;
  readonly #devices = new Map<number, DeviceState>();
  readonly #held = new Set<number>();
  #timer: unknown;
  #stopped = false;

  constructor(o: ReadingFeedOptions) {
    this.#o = o;
    this.#intervalUs = o.intervalMs * 1000;
  }

  /** One stored frame. O(1). */
  offer(e: ReadingEvent): void {
    if (this.#stopped) return;
    let d = this.#devices.get(e.deviceId);
    if (!d) this.#devices.set(e.deviceId, (d = { lastUs: -Infinity, held: undefined }));
    const now = this.#o.clock.nowUs();
    if (now - d.lastUs >= this.#intervalUs) {
      if (d.held) this.counters.throttled++; // superseded by this newer frame
      d.held = undefined;
      this.#held.delete(e.deviceId);
      this.#publish(d, e, now);
      return;
    }
    if (d.held) this.counters.throttled++;
    d.held = e;
    this.#held.add(e.deviceId);
    this.#arm(d.lastUs + this.#intervalUs - now);
  }

  /** Publishes every held reading now (at stop), then accepts no more. */
  stop(): void {
    if (this.#timer !== undefined) this.#o.timers.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.flush(true);
    this.#stopped = true;
  }

  /** Publishes held readings: all when `all`, else those due (and re-arms for the next). */
  flush(all = false): void {
    const now = this.#o.clock.nowUs();
    let next = Infinity;
    for (const id of this.#held) {
      const d = this.#devices.get(id)!;
      const due = d.lastUs + this.#intervalUs;
      if (!all && due > now) {
        next = Math.min(next, due);
        continue;
      }
      const e = d.held!;
      d.held = undefined;
      this.#held.delete(id);
      this.#publish(d, e, now);
    }
    if (next !== Infinity) this.#arm(next - now);
  }

  #publish(d: DeviceState, e: ReadingEvent, nowUs: number): void {
    d.lastUs = nowUs;
    this.counters.published++;
    this.#o.emit(e);
  }

  #arm(inUs: number): void {
    if (this.#timer !== undefined || this.#stopped) return;
    this.#timer = unrefTimer(
      this.#o.timers.setTimeout(
        () => {
          this.#timer = undefined;
          this.flush(false);
        },
        Math.max(0, Math.ceil(inUs / 1000)),
      ),
    );
  }
}
