/**
 * The model update agent when something other than the release fails, against a real inference
 * loop and real ONNX models; the chain is a fake ReleaseSource that throws the chain client's
 * typed errors (gateway/src/chain/errors.ts), as EthersRegistryClient does:
 * - a store write that fails right after promotion must not unload the model that just went live;
 * - a stop during the shadow phase is INTERRUPTED: not remembered, the next start installs it;
 * - an RPC outage during an install fails the check (checkErrors) and remembers nothing;
 * - partial downloads a crash left are removed at start;
 * - wrong bytes from a source (the model's or the pinned manifest's) are that source's fault until
 *   they come back `mismatchAttempts` times: tried again after a growing backoff, then remembered.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { FakeClock } from "../../gateway/src/core/clock.ts";
import { MemoryUpdateState } from "../../gateway/src/updates/model-agent.ts";
import { open, remembered, setup } from "./agent-setup.ts";

/** A store whose install records cannot be written (a full disk); the rest of it works. */
class FailingState extends MemoryUpdateState {
  override async putMeta(key: string, value: Buffer): Promise<void> {
    if (key.startsWith("updates/model/")) throw new Error("IO error: No space left on device");
    return super.putMeta(key, value);
  }
}

describe("model update agent: failures that are not the release's", () => {
  it("error: a store write that fails after promotion leaves the new model live (a warning, not a refusal)", async () => {
    const s = await setup("faults-b", { state: new FailingState() });
    await s.releases.add(1n, "faults-b", "3.1.0");
    await s.rig.feedUntil(s.agent.check());
    expect(s.agent.counters.installs).toBe(1);
    expect(s.agent.status().lastFailure).toBeUndefined();
    expect(s.rig.loop.models.map((m) => m.manifest.version)).toEqual(["3.1.0"]);
    expect(s.rig.loop.lanes().map((l) => l.role)).toEqual(["live"]);
    const before = s.rig.results.length;
    for (let i = 0; i < 5; i++) await s.rig.feed();
    expect(s.rig.results.length).toBeGreaterThan(before);
  }, 60_000);

  it("error: an install whose record cannot be written and whose report fails: the report is retried at the next check, then not sent again", async () => {
    const s = await setup("faults-r", { state: new FailingState() });
    const agent = s.make({ reporter: s.releases });
    open.push(() => agent.stop());
    s.releases.down.report = 1;
    await s.releases.add(1n, "faults-r", "3.1.0");
    await s.rig.feedUntil(agent.check());
    expect(agent.counters).toMatchObject({ installs: 1, reports: 0, reportErrors: 1 });
    expect(s.releases.reports).toEqual([]);
    await s.rig.feedUntil(agent.check());
    expect(s.releases.reports).toEqual([1n]);
    expect(agent.counters).toMatchObject({ installs: 1, reports: 1, reportErrors: 1 });
    expect(agent.status().lastInstall).toMatchObject({ releaseId: "1", reported: true });
    await s.rig.feedUntil(agent.check());
    expect(s.releases.reports).toEqual([1n]);
  }, 60_000);

  it("error: a file-system error of this machine during an install (its models folder unusable) fails the check and is not remembered against the release", async () => {
    const s = await setup("faults-f");
    await s.releases.add(1n, "faults-f", "3.1.0");
    mkdirSync(s.dir, { recursive: true });
    // A dangling link where the models folder belongs: making models/ fails (EEXIST: the link is
    // in the way), while the clean-up of the failed install succeeds, so the failure reaches the
    // agent's verdict.
    symlinkSync(join(s.dir, "gone"), join(s.dir, "models"));
    await s.rig.feedUntil(s.agent.check());
    expect(s.agent.counters).toMatchObject({ installs: 0, checkErrors: 1, rejected: {} });
    expect(s.agent.status().lastCheckError).toMatch(
      /^cannot mkdir .*\/models: a file of that name is in the way \(EEXIST\)$/,
    );
    expect(remembered(s.state, 1n)).toBeUndefined();
    // Fixed on the machine: the next check installs the release.
    rmSync(join(s.dir, "models"));
    await s.rig.feedUntil(s.agent.check());
    expect(s.agent.counters.installs).toBe(1);
    expect(s.rig.loop.models.map((m) => m.manifest.version)).toEqual(["3.1.0"]);
  }, 60_000);

  it("behavior: a stop during the shadow phase is INTERRUPTED, not remembered: the next start installs the release", async () => {
    const s = await setup("faults-m", { shadowWindows: 1000 });
    await s.releases.add(1n, "faults-m", "3.1.0");
    const check = s.agent.check();
    while (s.agent.status().state !== "shadowing") await s.rig.feed();
    const stopping = s.agent.stop();
    await s.rig.feedUntil(Promise.all([check, stopping]));
    expect(s.agent.status().lastFailure?.code).toBe("INTERRUPTED");
    expect(s.state.map.has("updates/failed/1")).toBe(false);
    const again = s.make({ shadowWindows: 5 });
    open.push(() => again.stop());
    await s.rig.feedUntil(again.check());
    expect(again.counters.installs).toBe(1);
    expect(s.rig.loop.models.map((m) => m.manifest.version)).toEqual(["3.1.0"]);
  }, 60_000);

  it("behavior: a shadow phase in which no frames came ends as NO_WINDOWS, not remembered: the next check with frames installs the release", async () => {
    const clock = new FakeClock();
    // In the first shadow phase only, the clock jumps past shadowMaxMs once the phase has started
    // (its start time is read right after the status says so); no frame is fed meanwhile.
    let phases = 0;
    const s = await setup("faults-w", {
      clock,
      shadowMaxMs: 60_000,
      onStatus: (st) => {
        if (st.state === "shadowing" && phases++ === 0) queueMicrotask(() => clock.advanceMs(61_000));
      },
    });
    await s.releases.add(1n, "faults-w", "3.1.0");
    await s.agent.check();
    expect(s.agent.status().lastFailure).toMatchObject({
      releaseId: "1",
      code: "NO_WINDOWS",
      reason:
        "no window ran in shadow within updates.shadowMaxMs (no frames of its profiles came); the next check tries again",
    });
    expect(s.agent.counters).toMatchObject({ installs: 0, rejected: { NO_WINDOWS: 1 } });
    expect(remembered(s.state, 1n)).toBeUndefined();
    expect(s.rig.loop.models.map((m) => m.manifest.version)).toEqual(["3.0.0"]);
    expect(s.rig.loop.lanes().map((l) => l.role)).toEqual(["live"]);
    // Frames come again: the next check judges and installs it.
    await s.rig.feedUntil(s.agent.check());
    expect(s.agent.counters).toMatchObject({ installs: 1, rejected: { NO_WINDOWS: 1 } });
    expect(s.rig.loop.models.map((m) => m.manifest.version)).toEqual(["3.1.0"]);
  }, 60_000);

  it("behavior: a candidate that runs no window while the live model runs them (its data-quality rules withhold every one) is SHADOW_FAILED, remembered", async () => {
    const s = await setup("faults-q", { shadowWindows: 1000, shadowMaxMs: 60_000, clock: new FakeClock() });
    await s.releases.add(1n, "faults-q", "3.1.0", undefined, undefined, (m) => {
      // Every value of every channel is out of range: nothing is good, every window is withheld.
      const q = m.inputs.quality!;
      for (const c of Object.values(q.channels)) Object.assign(c, { min: 1e30, max: 2e30 });
    });
    let done = false;
    const check = s.agent.check().finally(() => (done = true));
    while (s.agent.status().state !== "shadowing" && !done) await s.rig.feed();
    expect(s.agent.status().lastFailure).toBeUndefined(); // the manifest passed its checks
    const liveBefore = s.rig.loop.lanes().find((l) => l.role === "live")!.windowsRun;
    while (s.rig.loop.lanes().find((l) => l.role === "live")!.windowsRun < liveBefore + 3) await s.rig.feed();
    expect(s.rig.loop.lanes().find((l) => l.role === "shadow")!.shadow!.windows).toBe(0);
    s.agent.judgeShadowNow();
    await s.rig.feedUntil(check);
    expect(s.agent.status().lastFailure).toMatchObject({ releaseId: "1", code: "SHADOW_FAILED" });
    expect(s.agent.status().lastFailure!.reason).toMatch(
      /^in shadow the candidate ran no window while the live model ran \d+$/,
    );
    expect(remembered(s.state, 1n)).toMatch(/^SHADOW_FAILED: /);
    expect(s.rig.loop.models.map((m) => m.manifest.version)).toEqual(["3.0.0"]);
  }, 60_000);

  it("input: a manifest whose version is not the release's chain version is refused (it would raise the rollback floor)", async () => {
    const s = await setup("faults-o");
    await s.releases.add(1n, "faults-o", "9.0.0", 3_001_000n);
    await s.rig.feedUntil(s.agent.check());
    expect(s.agent.status().lastFailure).toMatchObject({
      code: "MANIFEST_MISMATCH",
      reason: "the manifest says version 9.0.0, release 1 is version 3001000 on chain",
    });
    expect(s.rig.loop.models.map((m) => m.manifest.version)).toEqual(["3.0.0"]);
    // A property of the verified bytes: remembered at once, not tried again.
    expect(remembered(s.state, 1n)).toMatch(/^MANIFEST_MISMATCH: /);
    await s.agent.check();
    expect(s.agent.counters.rejected).toEqual({ MANIFEST_MISMATCH: 1 });
  }, 60_000);

  it.each([
    [
      "the model",
      "SIZE_MISMATCH",
      (rel: { file: string }) => rel.file,
      (b: Buffer) => b.subarray(0, b.length - 7),
    ],
    [
      "the manifest",
      "MANIFEST_INVALID",
      (rel: { manifest: string }) => rel.manifest,
      (b: Buffer) => Buffer.concat([b, Buffer.from(" ")]),
    ],
  ] as const)(
    "error: a source that delivers wrong bytes of %s once is not remembered: tried again after the backoff, the release installs",
    async (what, code, path, spoil) => {
      const clock = new FakeClock();
      const profile = `faults-s-${what.split(" ")[1]!}`;
      const s = await setup(profile, { clock, mismatchRetryMs: 60_000 });
      const rel = await s.releases.add(1n, profile, "3.1.0");
      const good = readFileSync(path(rel));
      writeFileSync(path(rel), spoil(good));
      await s.agent.check();
      expect(s.agent.status().lastFailure).toMatchObject({ releaseId: "1", code });
      expect(s.agent.status().lastFailure?.reason).toMatch(/attempt 1 of 8; tried again from \S+ on\)$/);
      expect(s.agent.counters.rejected).toEqual({ [code]: 1 });
      expect(remembered(s.state, 1n)).toBeUndefined();
      // Within the backoff a check does not fetch it again.
      clock.advanceMs(59_999);
      await s.agent.check();
      expect(s.agent.counters.rejected).toEqual({ [code]: 1 });
      // The source answers right again: the first check after the backoff installs it.
      writeFileSync(path(rel), good);
      clock.advanceMs(1);
      await s.rig.feedUntil(s.agent.check());
      expect([s.agent.counters.rejected, s.agent.counters.installs]).toEqual([{ [code]: 1 }, 1]);
      expect(s.rig.loop.models.map((m) => m.manifest.version)).toEqual(["3.1.0"]);
      expect(s.state.map.get("updates/mismatch/1")?.length ?? 0).toBe(0);
    },
    60_000,
  );

  it("error: wrong bytes at every attempt are remembered after mismatchAttempts, the backoff doubling in between; retry forgets them", async () => {
    const clock = new FakeClock();
    const s = await setup("faults-t", { clock, mismatchAttempts: 3, mismatchRetryMs: 1000 });
    const rel = await s.releases.add(1n, "faults-t", "3.1.0");
    const good = readFileSync(rel.file);
    writeFileSync(rel.file, Buffer.alloc(good.length, 1)); // right size, other bytes
    const tries = (): number => s.agent.counters.rejected.HASH_MISMATCH ?? 0;
    await s.agent.check();
    expect([tries(), remembered(s.state, 1n)]).toEqual([1, undefined]);
    clock.advanceMs(999);
    await s.agent.check();
    expect(tries()).toBe(1);
    clock.advanceMs(1);
    await s.agent.check();
    expect([tries(), remembered(s.state, 1n)]).toEqual([2, undefined]);
    clock.advanceMs(1999); // 2 s now
    await s.agent.check();
    expect(tries()).toBe(2);
    clock.advanceMs(1);
    await s.agent.check();
    expect(tries()).toBe(3);
    expect(remembered(s.state, 1n)).toMatch(/^HASH_MISMATCH: /);
    expect(s.agent.status().lastFailure?.reason).toMatch(/attempt 3 of 3: remembered as failed/);
    clock.advanceMs(86_400_000);
    await s.agent.check();
    expect(tries()).toBe(3); // remembered: not tried again
    // Fixed at the source; the operator's retry forgets it and the next check installs.
    writeFileSync(rel.file, good);
    expect(await s.agent.retry(1n)).toBe(true);
    await s.rig.feedUntil(s.agent.check());
    expect(s.agent.counters.installs).toBe(1);
  }, 60_000);

  it("behavior: partial downloads a crash left in the staging folder are removed at start", async () => {
    const s = await setup("faults-p");
    mkdirSync(join(s.dir, "staging"), { recursive: true });
    writeFileSync(join(s.dir, "staging", `${"ab".repeat(32)}.3.part`), "cut");
    s.agent.start();
    await s.agent.stop();
    expect(readdirSync(join(s.dir, "staging"))).toEqual([]);
  });

  it("behavior: retry forgets a release waiting out its backoff (the operator need not wait)", async () => {
    const clock = new FakeClock();
    const s = await setup("faults-r", { clock });
    const rel = await s.releases.add(1n, "faults-r", "3.1.0");
    const good = readFileSync(rel.file);
    writeFileSync(rel.file, Buffer.concat([good, Buffer.alloc(3)]));
    await s.agent.check();
    expect(s.agent.counters.rejected).toEqual({ SIZE_MISMATCH: 1 });
    writeFileSync(rel.file, good);
    expect(await s.agent.retry(1n)).toBe(true);
    await s.rig.feedUntil(s.agent.check());
    expect(s.agent.counters.installs).toBe(1);
  }, 60_000);

  it.each(["getRelease", "installedRelease"] as const)(
    "error: the RPC down once during an install (%s) fails the check, remembers nothing, and the next check installs",
    async (method) => {
      const profile = `faults-a-${method.toLowerCase()}`;
      const s = await setup(profile);
      await s.releases.add(1n, profile, "3.1.0");
      s.releases.down[method] = 1;
      await s.rig.feedUntil(s.agent.check());
      expect(s.agent.counters.checkErrors).toBe(1);
      expect(s.agent.status().lastCheckError).toMatch(/RPC endpoint unreachable/);
      expect(s.agent.status().lastFailure).toBeUndefined();
      expect(s.state.map.has("updates/failed/1")).toBe(false);
      await s.rig.feedUntil(s.agent.check());
      expect(s.agent.counters.installs).toBe(1);
    },
    60_000,
  );
});
