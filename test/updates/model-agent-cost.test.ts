/**
 * The model update agent's judgement of a candidate's cost, its size and its recall, against a
 * real inference loop and real ONNX models (releases in memory, fake-releases.ts):
 * - a candidate far beyond the cost limit is judged after a few windows, not after
 *   `shadowWindows` (each of its windows takes the thread ingest shares);
 * - a cost refusal may be the machine's load: tried again after a backoff, remembered only after
 *   `costAttempts` phases in a row; an install afterwards forgets the count;
 * - a release revoked while it was fetched is neither loaded nor run; one revoked during its
 *   shadow phase is REVOKED even when it also cost too much;
 * - a model larger than `maxModelBytes` is refused before anything is fetched;
 * - a candidate runs in a worker (no session on the main thread), also once promoted.
 */
import { rmSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { FakeClock } from "../../gateway/src/core/clock.ts";
import type { LoadedModel } from "../../gateway/src/infer/registry.ts";
import { open, remembered, setup } from "./agent-setup.ts";

describe("model update agent: cost, recall and size", () => {
  it("behavior: a candidate far beyond the cost limit is judged after a few windows, not after shadowWindows", async () => {
    const s = await setup("cost-early", { shadowWindows: 100_000, maxCostFactor: 0.001 });
    await s.releases.add(1n, "cost-early", "3.1.0");
    await s.rig.feedUntil(s.agent.check());
    expect(s.agent.counters.rejected).toEqual({ SHADOW_FAILED: 1 });
    const reason = s.agent.status().lastFailure!.reason;
    const m = /× the live model's \(limit 0\.001×; judged after (\d+) windows\)/.exec(reason);
    expect(m, reason).not.toBeNull();
    expect(Number(m![1])).toBeLessThan(100); // the rig's 3 devices: a few ticks' windows
  }, 60_000);

  it("behavior: a cost refusal is tried again after a backoff and remembered only at costAttempts; an install then forgets the count", async () => {
    const clock = new FakeClock();
    const s = await setup("cost-retry", { clock, maxCostFactor: 0.001, costAttempts: 2, costRetryMs: 1000 });
    await s.releases.add(1n, "cost-retry", "3.1.0");
    const tries = (): number => s.agent.counters.rejected.SHADOW_FAILED ?? 0;
    await s.rig.feedUntil(s.agent.check());
    expect([tries(), remembered(s.state, 1n)]).toEqual([1, undefined]);
    expect(s.agent.status().lastFailure!.reason).toMatch(
      /\(too slow in shadow, attempt 1 of 2; tried again from .* on\)$/,
    );
    clock.advanceMs(999);
    await s.agent.check();
    expect(tries()).toBe(1); // within the backoff: not fetched, not run
    clock.advanceMs(1);
    await s.rig.feedUntil(s.agent.check());
    expect(tries()).toBe(2);
    expect(remembered(s.state, 1n)).toMatch(/^SHADOW_FAILED: .*attempt 2 of 2: remembered as failed/);
    clock.advanceMs(86_400_000);
    await s.agent.check();
    expect(tries()).toBe(2);
    // The operator's retry forgets it; on a box where it fits (a limit it meets) it installs.
    expect(await s.agent.retry(1n)).toBe(true);
    const b = s.make({ clock, maxCostFactor: 0.001, costAttempts: 2, costRetryMs: 1000 });
    open.push(() => b.stop());
    await s.rig.feedUntil(b.check()); // attempt 1 again (the count started over)
    expect(b.status().lastFailure!.reason).toMatch(/attempt 1 of 2/);
    clock.advanceMs(1000);
    const c = s.make({ clock, maxCostFactor: 50 });
    open.push(() => c.stop());
    await s.rig.feedUntil(c.check());
    expect(c.counters.installs).toBe(1);
    expect(s.state.map.get("updates/slow/1")?.length ?? 0).toBe(0);
  }, 60_000);

  it("attack: a release revoked while it was fetched is neither loaded nor run in shadow", async () => {
    const s = await setup("cost-revoked-fetch");
    await s.releases.add(1n, "cost-revoked-fetch", "3.1.0");
    // Active when the check read it; revoked by the time its bytes are in.
    const get = s.releases.getRelease.bind(s.releases);
    s.releases.getRelease = async (id) => {
      const r = await get(id);
      return r && { ...r, status: "revoked" };
    };
    const shadows: LoadedModel[] = [];
    const add = s.rig.loop.addShadow.bind(s.rig.loop);
    s.rig.loop.addShadow = (...a) => (shadows.push(a[0]), add(...a));
    await s.rig.feedUntil(s.agent.check());
    expect(s.agent.counters.rejected).toEqual({ REVOKED: 1 });
    expect(s.agent.status().lastFailure!.reason).toBe(
      "release 1 was revoked while it was fetched; not loaded",
    );
    expect(shadows).toEqual([]);
    expect(s.rig.loop.models).toEqual([s.live]);
  }, 60_000);

  it("attack: a release revoked during its shadow phase is REVOKED even when it also cost too much", async () => {
    const s = await setup("cost-revoked-shadow", { maxCostFactor: 0.001 });
    await s.releases.add(1n, "cost-revoked-shadow", "3.1.0");
    const add = s.rig.loop.addShadow.bind(s.rig.loop);
    s.rig.loop.addShadow = async (...a) => {
      await add(...a);
      s.releases.releases.get(1n)!.status = "revoked";
    };
    await s.rig.feedUntil(s.agent.check());
    expect(s.agent.status().lastFailure!.reason).toMatch(/was revoked during the shadow phase; not promoted/);
    expect(s.agent.counters.rejected).toEqual({ REVOKED: 1 });
  }, 60_000);

  it("behavior: a candidate has no session on the main thread: it is shadowed in a worker, and keeps it when promoted", async () => {
    const s = await setup("cost-worker");
    await s.releases.add(1n, "cost-worker", "3.1.0");
    const seen: Array<[boolean, string | undefined]> = [];
    const add = s.rig.loop.addShadow.bind(s.rig.loop);
    s.rig.loop.addShadow = (...a) => (seen.push([a[0].session === undefined, a[2]]), add(...a));
    await s.rig.feedUntil(s.agent.check());
    expect(s.agent.counters.installs).toBe(1);
    expect(seen).toEqual([[true, "worker"]]);
    expect(s.rig.loop.lanes().map((l) => [l.role, l.runner])).toEqual([["live", "worker"]]);
  }, 60_000);

  it("input: a model larger than maxModelBytes is refused before anything is fetched, and remembered", async () => {
    const s = await setup("cost-large", { maxModelBytes: 1000 });
    const rel = await s.releases.add(1n, "cost-large", "3.1.0");
    rmSync(rel.file); // a fetch would now fail (FETCH_FAILED): none is made
    await s.agent.check();
    expect(s.agent.counters.rejected).toEqual({ TOO_LARGE: 1 });
    expect(s.agent.status().lastFailure!.reason).toMatch(
      /^release 1's model is \d+ bytes, above updates\.maxModelBytes \(1000\); raise it .* then run vigil update retry 1$/,
    );
    expect(remembered(s.state, 1n)).toMatch(/^TOO_LARGE: /);
  }, 60_000);
});
