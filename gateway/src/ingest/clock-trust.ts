/**
 * Whether the gateway's own clock can judge device timestamps. A Raspberry Pi has no real-time
 * clock: it boots with the time it saved at shutdown (or 1970) until NTP syncs, and a gateway
 * that NACKed `ABSURD_TIMESTAMP` then would refuse every correctly timestamped frame (PROTOCOL.md
 * §ABSURD_TIMESTAMP tells devices to drop those). Until the clock is known good, frames beyond
 * the skew limit are accepted instead, and every frame stored meanwhile is marked
 * `clockUnverified` in its store record (core/records.ts) and counted.
 *
 * The clock is known good when:
 * - systemd-timesyncd runs (`/run/systemd/timesync` exists) and reports sync (the file
 *   `synchronized` there, timedatectl's NTPSynchronized), or there is no timesyncd to wait for;
 * - and it is not behind a known lower bound of the time: the chain's latest block time, advanced
 *   by the monotonic time since it was read (more than `toleranceMs` behind = not good).
 */
import { existsSync } from "node:fs";
import { join } from "node:path";

export interface ClockTrustOptions {
  /** timesyncd's state folder. Default `/run/systemd/timesync`. */
  syncDir?: string;
  /** Wall clock, ms. Default Date.now. */
  now?: () => number;
  /** Monotonic clock, ms. Default performance.now. */
  mono?: () => number;
  exists?: (path: string) => boolean;
  /** Default 30 000 ms. */
  toleranceMs?: number;
  /**
   * How long {@link ClockTrust.trusted} reuses its last answer, ms of the monotonic clock: ingest
   * asks once per frame, and the answer costs two stat() calls. Default 1000.
   */
  recheckMs?: number;
}

export class ClockTrust {
  readonly #o: Required<ClockTrustOptions>;
  #bound: { timeMs: number; at: number } | undefined;
  #cached: { trusted: boolean; at: number } | undefined;

  constructor(o: ClockTrustOptions = {}) {
    this.#o = {
      syncDir: o.syncDir ?? "/run/systemd/timesync",
      now: o.now ?? Date.now,
      mono: o.mono ?? (() => performance.now()),
      exists: o.exists ?? existsSync,
      toleranceMs: o.toleranceMs ?? 30_000,
      recheckMs: o.recheckMs ?? 1000,
    };
  }

  /** Records a lower bound of the true time (the chain's latest block timestamp, seconds). */
  noteLowerBound(timeS: number): void {
    this.#bound = { timeMs: timeS * 1000, at: this.#o.mono() };
    this.#cached = undefined;
  }

  /** How far the wall clock is behind the lower bound, ms (≤ 0 when not behind or unknown). */
  behindMs(): number {
    if (!this.#bound) return 0;
    return this.#bound.timeMs + (this.#o.mono() - this.#bound.at) - this.#o.now();
  }

  /** Undefined when the clock is known good, else why not (for logs). */
  untrustedReason(): string | undefined {
    const behind = this.behindMs();
    if (behind > this.#o.toleranceMs)
      return `the system clock is ${Math.round(behind / 1000)} s behind the chain's latest block`;
    const { syncDir, exists } = this.#o;
    if (exists(syncDir) && !exists(join(syncDir, "synchronized")))
      return "systemd-timesyncd has not synchronised the clock yet";
    return undefined;
  }

  /** Whether the clock is known good; the answer is reused for `recheckMs`. */
  trusted(): boolean {
    const at = this.#o.mono();
    const c = this.#cached;
    if (c && at - c.at < this.#o.recheckMs && at >= c.at) return c.trusted;
    const trusted = this.untrustedReason() === undefined;
    this.#cached = { trusted, at };
    return trusted;
  }
}
