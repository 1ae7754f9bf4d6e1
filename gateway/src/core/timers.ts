/**
 * Injectable timers, so stages with retry, flush or schedule timers can be driven by fake clocks
 * in tests (the way aedes injects its timer). Handles are opaque.
 */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Node's timers. */
export const realTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/**
 * Lets the process exit while only this (periodic, background) timer is pending. Timers that
 * guard pending work (a group-commit flush) must stay ref'd.
 */
export function unrefTimer<T>(handle: T): T {
  (handle as { unref?: () => void } | null)?.unref?.();
  return handle;
}

/**
 * True when `p` settles (resolves or rejects) within `ms`, false when the time runs out first; the
 * timer is cleared either way. For waits that must not hold a start or a stop forever (a broker
 * that never acknowledges).
 */
export async function settlesWithin(
  p: Promise<unknown>,
  ms: number,
  timers: Timers = realTimers,
): Promise<boolean> {
  let timer: unknown;
  const late = new Promise<boolean>((res) => (timer = timers.setTimeout(() => res(false), ms)));
  try {
    return await Promise.race([
      p.then(
        () => true,
        () => true,
      ),
      late,
    ]);
  } finally {
    timers.clearTimeout(timer);
  }
}

/**
 * Timers moved by hand (tests, simulations): `advance(ms)` moves the attached clock forward and
 * fires every timer that falls due, in due order (a timer set by a firing timer fires in the same
 * advance when it is due within it).
 */
export class ManualTimers implements Timers {
  #jobs: Array<{ at: number; id: number; fn: () => void }> = [];
  #id = 0;
  #nowMs = 0;

  constructor(private readonly clock?: { advanceMs(ms: number): void }) {}

  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.#id;
    this.#jobs.push({ at: this.#nowMs + Math.max(0, ms), id, fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.#jobs = this.#jobs.filter((j) => j.id !== handle);
  }

  /** Timers not yet fired. */
  get pending(): number {
    return this.#jobs.length;
  }

  advance(ms: number): void {
    const end = this.#nowMs + ms;
    while (true) {
      let next: { at: number; id: number; fn: () => void } | undefined;
      for (const j of this.#jobs)
        if (j.at <= end && (!next || j.at < next.at || (j.at === next.at && j.id < next.id))) next = j;
      if (!next) break;
      this.#jobs = this.#jobs.filter((j) => j !== next);
      this.clock?.advanceMs(next.at - this.#nowMs);
      this.#nowMs = next.at;
      next.fn();
    }
    this.clock?.advanceMs(end - this.#nowMs);
    this.#nowMs = end;
  }
}

/**
 * Exponential backoff: `initialMs` doubled `attempt` times (attempt 0 → initialMs), at most `maxMs`.
 * The exponent is clamped at 30, so a long run of failures never overflows.
 */
export function backoffMs(initialMs: number, attempt: number, maxMs: number): number {
  return Math.min(maxMs, initialMs * 2 ** Math.min(30, Math.max(0, attempt)));
}
