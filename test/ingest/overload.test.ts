// Overload: simulated devices push as fast as the link allows into a gateway whose back-pressure
// bounds are small, so pausing and resuming is exercised constantly. For every frame, what the
// device saw acknowledged (PUBACK) must be what the store holds, read back from disk by an
// independent reader — exactly once each.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Simulator } from "../../device-sim/src/simulator.ts";
import { MqttTransport } from "../../device-sim/src/transports/mqtt.ts";
import { resolveConfig } from "../../gateway/src/config/config.ts";
import { Runtime } from "../../gateway/src/runtime.ts";
import type { KvFrameStore } from "../../gateway/src/store/core.ts";
import { readStoreFromDisk } from "../helpers/store-reader.ts";

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe("overload", () => {
  it("behavior: under back-pressure every frame a device saw acknowledged is on disk exactly once", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "vigil-overload-"));
    dirs.push(dataDir);
    const rt = new Runtime({
      config: resolveConfig({
        http: { port: 0 }, // never the default 9479: another gateway may hold it
        dataDir,
        mqtt: { embedded: { port: 0 } },
        ingest: { maxPending: 200 },
        store: { minFreeBytes: 0, reserveBytes: 0 },
        attest: { enabled: false },
        models: { enabled: false },
        log: { statsIntervalMs: 0 },
      }),
    });
    await rt.start();
    const acked: Buffer[] = [];
    const sims = [0, 1].map(
      (k) =>
        new Simulator({
          transport: new MqttTransport({ url: rt.embedded!.url, clientId: `flood-${k}` }),
          devices: 40,
          firstDeviceId: 1 + k * 100,
          rate: 0,
          framesPerDevice: 400,
          meanLife: 1e6, // no machine fails (its source would end) within the run
          resendMs: 100, // impatient devices: resends race the PUBACKs
          seed: 21 + k,
          drainMs: 30_000,
          onAcked: (_id, raw) => acked.push(raw),
        }),
    );
    const reports = await Promise.all(sims.map((s) => s.run()));
    const shed = rt.ingest.counters.snapshot().shedding;
    // Nothing seals here (attest disabled): the store keeps no unsealed tail in memory.
    expect((rt.store as KvFrameStore).internals.ctx.tail.size).toBe(0);
    await rt.stop();

    const generated = reports.reduce((a, r) => a + r.generated, 0);
    expect(generated).toBe(2 * 40 * 400);
    expect(reports.reduce((a, r) => a + r.pending, 0)).toBe(0);
    // Back-pressure really happened.
    expect(shed.mqttHeld ?? 0).toBeGreaterThan(0);

    const { frames } = await readStoreFromDisk(join(dataDir, "store"));
    const onDisk = new Map<string, number>();
    for (const f of frames) {
      const k = f.raw.toString("hex");
      onDisk.set(k, (onDisk.get(k) ?? 0) + 1);
    }
    const dupes = [...onDisk.values()].filter((n) => n > 1).length;
    expect(dupes).toBe(0);
    const missing = acked.filter((raw) => !onDisk.has(raw.toString("hex"))).length;
    expect(missing).toBe(0); // acknowledged and not stored: the promise broken
    expect(acked).toHaveLength(generated);
    expect(frames).toHaveLength(generated);
  }, 120_000);
});
