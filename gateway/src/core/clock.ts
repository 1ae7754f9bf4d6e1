/** Time source, injected so tests can control it (see aedes' get-timer). */
export interface Clock {
  /** Microseconds since the Unix epoch. */
  nowUs(): number;
  /** Milliseconds since the Unix epoch. */
  nowMs(): number;
}

export const systemClock: Clock = {
  nowUs: () => Math.round((performance.timeOrigin + performance.now()) * 1000),
  nowMs: () => Date.now(),
};

/** A clock that only moves when told to. */
export class FakeClock implements Clock {
  constructor(private us: number = 1_764_000_000_000_000) {}
  nowUs(): number {
    return this.us;
  }
  nowMs(): number {
    return Math.floor(this.us / 1000);
  }
  advanceMs(ms: number): void {
    this.us += Math.round(ms * 1000);
  }
}
