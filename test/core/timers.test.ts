// settlesWithin: the bound on waits that must not hold a start or a stop forever.
import { describe, expect, it } from "vitest";
import { ManualTimers, settlesWithin } from "../../gateway/src/core/timers.ts";

describe("settlesWithin", () => {
  it("behavior: true when the promise resolves or rejects in time, false when the time runs out; the timer is cleared", async () => {
    const t = new ManualTimers();
    expect(await settlesWithin(Promise.resolve(1), 100, t)).toBe(true);
    expect(await settlesWithin(Promise.reject(new Error("refused")), 100, t)).toBe(true);
    expect(t.pending).toBe(0);
    const never = settlesWithin(new Promise(() => undefined), 100, t);
    t.advance(99);
    let done: boolean | undefined;
    void never.then((v) => (done = v));
    await Promise.resolve();
    expect(done).toBeUndefined();
    t.advance(1);
    expect(await never).toBe(false);
    expect(t.pending).toBe(0);
  });
});
