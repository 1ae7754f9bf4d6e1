// `vigil sim` (the CLI as a child process) against a real gateway (Runtime, embedded MQTT broker,
// in-memory store): a device whose one-frame window overflows while it runs (frames generated
// faster than PUBACKs come) reports it with ERROR code 2 (hardware/PROTOCOL.md, "Serial framing:
// COBS"), batched, and the gateway counts each report under the device and code 2.
import { afterEach, describe, expect, it } from "vitest";
import { resolveConfig } from "../../gateway/src/config/config.ts";
import { Runtime } from "../../gateway/src/runtime.ts";
import { MemoryFrameStore } from "../../gateway/src/store/memory.ts";
import { runVigil } from "../helpers/procs.ts";

let rt: Runtime | undefined;
afterEach(async () => {
  await rt?.stop();
  rt = undefined;
});

describe("vigil sim: a running device's ring overflows", () => {
  it("behavior: ERROR code 2 reaches the gateway, counted per device; the run still drains to exit 0", async () => {
    rt = new Runtime({
      config: resolveConfig({
        dataDir: "/nonexistent-vigil-test",
        site: "overflow-site",
        mqtt: { embedded: { host: "127.0.0.1", port: 0 } },
        http: { enabled: false },
        attest: { enabled: false, gatewayName: "gw-overflow" },
        models: { enabled: false },
        log: { statsIntervalMs: 0 },
      }),
      store: new MemoryFrameStore(),
    });
    await rt.start();
    const t0 = Date.now();
    const r = await runVigil([
      "sim",
      "--mqtt",
      rt.embedded!.url,
      "--devices",
      "1",
      "--rate",
      "2000",
      "--frames",
      "400",
      "--window",
      "1",
      "--json",
    ]);
    const elapsedS = (Date.now() - t0) / 1000;
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as {
      overflowed: number;
      overflowReports: number;
      pending: number;
    };
    expect(report.overflowed).toBeGreaterThan(0);
    expect(report.overflowReports).toBeGreaterThanOrEqual(1);
    // Batched: at most one a second (plus the drain's last one), not one per dropped frame.
    expect(report.overflowReports).toBeLessThanOrEqual(Math.ceil(elapsedS) + 1);
    expect(report.overflowReports).toBeLessThan(report.overflowed);
    expect(rt.ingest.counters.devices.get(1)?.errors.get(2)).toBe(report.overflowReports);
  }, 60_000);
});
