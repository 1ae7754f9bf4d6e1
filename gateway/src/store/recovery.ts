/**
 * Recovery and the disk guard.
 *
 * - A failed write makes the store `unavailable`: queued appends are rejected (their senders
 *   are not acknowledged and resend), and every `recoverIntervalMs` the store tries to reopen,
 *   reload its state, pass the integrity checks and make a probe write; then it accepts again.
 * - Disk full: the guard's reserve file is deleted so LevelDB can reopen and compact; the store
 *   resumes only when free space is above the watermark again, after recreating the reserve. A
 *   reopen that failed for lack of space is tried again only once the guard sees room.
 * - The guard also watches free space every `checkIntervalMs` and refuses frames (`low-space`)
 *   before LevelDB hits ENOSPC.
 * - Corruption is not retried: the store becomes `corrupt` and stays so (integrity.ts).
 *
 * Guard failures (statfs, reserve file) are logged with their code and counted
 * (`stats().guardErrors`), never swallowed.
 */
import { unrefTimer } from "../core/timers.ts";
import type { StoreContext } from "./context.ts";
import { M_PROBE } from "./context.ts";
import { u64Value } from "./codec.ts";
import { StoreUnavailableError, translateLevelError } from "./errors.ts";
import type { FrameLog } from "./log.ts";

/** Environment checks around a store (LevelDB: free disk space and the reserve file). */
export interface StoreGuard {
  /**
   * True when there is room to accept frames (free space above the watermark); `resuming`: room to
   * accept again after refusing for lack of it, with a margin so that a disk at the line does not
   * flip between the two.
   */
  hasRoom(resuming?: boolean): Promise<boolean>;
  /** Disk full: delete the reserve file so the database can reopen and compact. */
  releaseReserve(): Promise<void>;
  /** Space is back: recreate the reserve file before accepting frames again. */
  restoreReserve(): Promise<void>;
  readonly checkIntervalMs: number;
}

export class Recovery {
  readonly #c: StoreContext;
  readonly #log: FrameLog;
  readonly #guard: StoreGuard | undefined;
  readonly #intervalMs: number;
  /** Closes, reopens and reloads the database, and runs the open checks (core.ts). */
  readonly #reopen: () => Promise<void>;
  #recoverTimer: unknown;
  #guardTimer: unknown;
  /**
   * The last reopen failed for lack of space. Each LevelDB open that fails so leaves a new empty
   * log file behind (storage audit: one a second while the disk stayed full, all replayed at every
   * later open), so the next reopen waits until the guard sees room.
   */
  #reopenFull = false;
  guardErrors = 0;

  constructor(
    c: StoreContext,
    log: FrameLog,
    guard: StoreGuard | undefined,
    intervalMs: number,
    reopen: () => Promise<void>,
  ) {
    this.#c = c;
    this.#log = log;
    this.#guard = guard;
    this.#intervalMs = intervalMs;
    this.#reopen = reopen;
  }

  /** A guard operation whose failure is logged and counted; returns `fallback` on failure. */
  async #guarded<T>(what: string, fn: () => Promise<T>, fallback: T): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      this.guardErrors++;
      this.#c.log.warn(
        {
          code: (e as NodeJS.ErrnoException).code ?? "GUARD",
          err: (e as Error).message,
          failures: this.guardErrors,
        },
        `store guard: ${what} failed`,
      );
      return fallback;
    }
  }

  /** A write failed: refuse frames and retry (I/O), or stop for good (corruption). */
  enterUnavailable(err: StoreUnavailableError): void {
    const c = this.#c;
    if (c.state === "closed" || c.state === "corrupt") return;
    this.#log.stopTimer();
    if (err.reason === "CORRUPTION") {
      c.markCorrupt(err);
      this.#log.failQueued(err);
      return;
    }
    const was = c.state;
    c.state = "unavailable";
    c.lastError = err;
    this.#log.failQueued(err);
    if (was !== "unavailable")
      c.log.warn(
        { code: err.code, reason: err.reason },
        "store unavailable; frames are refused until it recovers",
      );
    const g = this.#guard;
    if (err.reason === "DISK_FULL" && g)
      void this.#guarded("releasing the reserve file", () => g.releaseReserve(), undefined);
    this.#scheduleRecover();
  }

  #scheduleRecover(): void {
    const c = this.#c;
    if (this.#recoverTimer !== undefined || c.state === "closed") return;
    this.#recoverTimer = unrefTimer(
      c.timers.setTimeout(() => {
        this.#recoverTimer = undefined;
        void this.recover();
      }, this.#intervalMs),
    );
  }

  /** One recovery attempt: reopen, reload state, integrity checks, probe a synced write, check room. */
  async recover(): Promise<boolean> {
    const c = this.#c;
    if (c.state !== "unavailable") return c.state === "ok";
    const g = this.#guard;
    try {
      await c.metaLock.run(async () => {
        if (this.#reopenFull && g && !(await this.#guarded("checking free space", () => g.hasRoom(), false)))
          throw new StoreUnavailableError("DISK_FULL", "not enough free disk space yet to reopen the store");
        try {
          await this.#reopen();
          this.#reopenFull = false;
        } catch (e) {
          const err = translateLevelError(e, "reopening the store");
          this.#reopenFull = err.reason === "DISK_FULL";
          if (err.reason === "DISK_FULL" && g)
            await this.#guarded("releasing the reserve file", () => g.releaseReserve(), undefined);
          throw e;
        }
        if (g && !(await this.#guarded("checking free space", () => g.hasRoom(), false)))
          throw new StoreUnavailableError("DISK_FULL", "not enough free disk space yet");
        await c.kv.write([{ type: "put", key: M_PROBE, value: u64Value(Date.now()) }], true);
        if (g) await g.restoreReserve();
      });
    } catch (e) {
      if ((c.state as string) === "closed") return false;
      if ((e as { code?: string }).code === "STORE_INTEGRITY") {
        c.markCorrupt(new StoreUnavailableError("CORRUPTION", (e as Error).message, { cause: e }));
        return false;
      }
      c.lastError = translateLevelError(e, "recovering the store");
      this.#scheduleRecover();
      return false;
    }
    if ((c.state as string) === "closed") return false;
    c.state = "ok";
    c.lastError = undefined;
    this.#log.reset();
    c.log.info({}, "store recovered; accepting frames again");
    return true;
  }

  /** Starts the periodic free-space check. */
  armGuard(): void {
    const g = this.#guard;
    const c = this.#c;
    if (!g || c.state === "closed") return;
    this.#guardTimer = unrefTimer(
      c.timers.setTimeout(() => {
        this.#guardTimer = undefined;
        void this.checkRoom().finally(() => this.armGuard());
      }, g.checkIntervalMs),
    );
  }

  /** One free-space check: ok ⇄ low-space (the periodic check and callers that just freed space). */
  async checkRoom(): Promise<void> {
    const g = this.#guard;
    const c = this.#c;
    if (!g || (c.state !== "ok" && c.state !== "low-space")) return;
    const room = await this.#guarded("checking free space", () => g.hasRoom(c.state === "low-space"), false);
    if (c.state === "ok" && !room) {
      c.state = "low-space";
      c.log.warn({}, "free disk space below the watermark; refusing frames");
    } else if (c.state === "low-space" && room) {
      const restored = await this.#guarded(
        "restoring the reserve file",
        async () => {
          await g.restoreReserve();
          return true;
        },
        false,
      );
      if (!restored) return; // stays low-space; the next check tries again
      c.state = "ok";
      c.log.info({}, "free disk space is back; accepting frames");
    }
  }

  stop(): void {
    const c = this.#c;
    if (this.#recoverTimer !== undefined) c.timers.clearTimeout(this.#recoverTimer);
    if (this.#guardTimer !== undefined) c.timers.clearTimeout(this.#guardTimer);
    this.#recoverTimer = this.#guardTimer = undefined;
  }
}
