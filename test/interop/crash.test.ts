/**
 * The crash harness in CI: SIGKILL the whole gateway (models, sealing, anchoring to anvil) at
 * random moments while a simulator process keeps sending and resending. The full run
 * (`npm run test:crash`, 50 kills) is documented in the README with its last result; CI runs a
 * shorter one.
 */
import { expect, it } from "vitest";
import { runCrashHarness } from "../crash/harness.ts";

it("behavior: after 8 kill -9s while frames flow, every acknowledged frame is on disk exactly once, every batch verifies and the chain agrees", async () => {
  const r = await runCrashHarness({ kills: 8, seed: 7, devices: 3, rate: 150, verbose: false });
  expect(r.violations).toEqual([]);
  expect(r.killsWhileFlowing).toBe(8);
  expect(r.acknowledgedButMissing).toBe(0);
  expect(r.storedTwice).toBe(0);
  // The devices drain at the end: everything generated was acknowledged, and is on disk once.
  expect(r.framesAcked).toBeGreaterThan(0);
  expect(r.neverAcknowledged).toBe(0);
  expect(r.framesAcked).toBe(r.framesGenerated);
  expect(r.framesStored).toBe(r.framesGenerated);
  expect(r.batches).toBeGreaterThan(0);
  expect(r.batchesAnchored).toBeGreaterThan(0);
  expect(r.ok).toBe(true);
}, 400_000);
