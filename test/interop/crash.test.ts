/**
 * The crash harness in CI: SIGKILL the gateway process at random moments while a simulator
 * process keeps sending and resending. The full run (`npm run test:crash`, 50 kills) is
 * documented in the README with its last result; CI runs a shorter one.
 */
import { expect, it } from "vitest";
import { runCrashHarness } from "../crash/harness.ts";

it("behavior: after 8 kill -9s every acknowledged frame is stored exactly once and every batch verifies", async () => {
  const r = await runCrashHarness({ kills: 8, seed: 7, devices: 3, rate: 150, verbose: false });
  expect(r.batchViolations).toEqual([]);
  expect(r.duplicatesInLog).toBe(0);
  expect(r.missingFromLog).toBe(0);
  expect(r.framesAcked).toBe(r.framesGenerated);
  expect(r.framesStored).toBe(r.framesGenerated);
  expect(r.batches).toBeGreaterThan(0);
  expect(r.ok).toBe(true);
}, 240_000);
