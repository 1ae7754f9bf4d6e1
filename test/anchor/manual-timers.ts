/**
 * Timers under a test's control for the anchor service (core/timers.ts `Timers`): the service's
 * next run waits in `pending` until `step()` runs it; `delays` records every delay it asked for.
 */
import type { Timers } from "../../gateway/src/core/timers.ts";

export function manualTimers(): {
  timers: Timers;
  delays: number[];
  /** Runs the pending run, then waits (up to 50 turns of the event loop) until the next is scheduled; false when none was. */
  step(): Promise<boolean>;
} {
  const delays: number[] = [];
  let pending: (() => void) | undefined;
  const timers: Timers = {
    setTimeout(fn, ms) {
      delays.push(ms);
      pending = fn;
      return 1;
    },
    clearTimeout() {
      pending = undefined;
    },
  };
  const step = async (): Promise<boolean> => {
    const f = pending!;
    pending = undefined;
    f();
    for (let i = 0; i < 50 && !pending; i++) await new Promise((r) => setImmediate(r));
    return pending !== undefined;
  };
  return { timers, delays, step };
}
