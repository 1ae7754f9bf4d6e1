/**
 * One reconciliation suite, run unchanged against every ingest transport (embedded aedes,
 * a real pty pair, an external Mosquitto): what the simulator sent, faulted and saw
 * acknowledged must match what the gateway stored and rejected, exactly.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { parseFaultRates } from "../../device-sim/src/faults.ts";
import { Simulator, type SimReport, type SimulatorOptions } from "../../device-sim/src/simulator.ts";
import type { Transport } from "../../device-sim/src/transports/types.ts";
import type { Rig } from "./rig.ts";
import type { MemorySink } from "../../gateway/src/ingest/memory-sink.ts";
import { decodeFrame, FrameType } from "../../gateway/src/protocol/frame.ts";

/** True when a stored raw DATA frame carries a NaN/±Inf value (the decoder marks it). */
function hasNonFinite(raw: Uint8Array): boolean {
  const f = decodeFrame(raw);
  return f.type === FrameType.Data && f.nonFinite !== undefined;
}

export interface ReconcileEnv {
  transport(): Transport;
  gateway: Rig;
  sink: MemorySink;
  stop(): Promise<void>;
}

/**
 * `lostAcks`: the link may lose frames in flight (a disconnect), so some copies the simulator
 * sent never reached the gateway.
 */
export function reconcile(report: SimReport, env: ReconcileEnv, lostAcks = false): void {
  const snap = env.gateway.ingest.counters.snapshot();
  expect(report.pending).toBe(0);
  // Every frame the devices saw acknowledged is stored, exactly once.
  expect(snap.accepted).toBe(report.acked);
  expect(env.sink.records.length).toBe(report.acked);
  expect(new Set(env.sink.records.map((r) => `${r.deviceId}:${r.seq}`)).size).toBe(report.acked);
  // Frames refused for good were generated but never stored.
  expect(report.acked + report.abandoned + report.overflowed + report.lostAtReboot).toBe(report.generated);
  // Rejections by reason match the faults the simulator injected.
  expect(snap.rejected).toEqual(report.expectedRejects);
  // Every repeated intact copy was recognised as a duplicate (and stored nowhere).
  if (!lostAcks) expect(snap.duplicates).toBe(report.expectedDuplicates);
  else expect(snap.duplicates).toBeLessThanOrEqual(report.expectedDuplicates);
}

export function reconciliationSuite(name: string, setup: () => Promise<ReconcileEnv>): void {
  describe(`reconciliation over ${name}`, () => {
    let env: ReconcileEnv;
    beforeEach(async () => {
      env = await setup();
    });
    afterEach(async () => {
      await env.stop();
    });

    const run = (o: Omit<SimulatorOptions, "transport">) =>
      new Simulator({ transport: env.transport(), rate: 0, resendMs: 150, drainMs: 15_000, ...o }).run();

    it("behavior: a clean run stores every frame once, in order", async () => {
      const report = await run({ devices: 4, framesPerDevice: 300, seed: 11 });
      reconcile(report, env);
      expect(report.acked).toBe(1200);
      const snap = env.gateway.ingest.counters.snapshot();
      expect(snap.gaps).toBe(0);
      expect(snap.rejected).toEqual({});
    });

    it("behavior: injected link, value and frame faults reconcile exactly", async () => {
      const faults = parseFaultRates(
        "corrupt=0.02,truncate=0.02,drop=0.02,duplicate=0.02,reorder=0.02,garbage=0.02,nan=0.01,clockJump=0.01,stuck=0.005,drift=0.005,spike=0.01",
      );
      const report = await run({ devices: 5, framesPerDevice: 400, seed: 12, faults });
      for (const k of [
        "corrupt",
        "truncate",
        "drop",
        "duplicate",
        "reorder",
        "garbage",
        "nan",
        "clockJump",
        "spike",
      ])
        expect(report.faults[k], k).toBeGreaterThan(0);
      reconcile(report, env);
      const snap = env.gateway.ingest.counters.snapshot();
      expect(snap.outOfOrder).toBeGreaterThanOrEqual(report.faults.reorder!);
      // NaN/±Inf values are stored and acknowledged (revision 1.2), not rejected: every injected
      // one is in a stored frame unless its frame was refused for its clock.
      expect(snap.rejected).not.toHaveProperty("NON_FINITE");
      expect(snap.nonFiniteFrames).toBeGreaterThan(0);
      expect(snap.nonFiniteFrames).toBeLessThanOrEqual(report.faults.nan!);
      const marked = env.sink.records.filter((r) => hasNonFinite(r.raw)).length;
      expect(marked).toBe(snap.nonFiniteFrames);
    });

    it("behavior: disconnects and reconnects lose nothing", async () => {
      const report = await run({
        devices: 3,
        framesPerDevice: 300,
        seed: 13,
        rate: 400,
        faults: { disconnect: 0.05 },
      });
      expect(report.disconnects).toBeGreaterThan(0);
      reconcile(report, env, true);
    });
  });
}
