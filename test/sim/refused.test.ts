// `vigil sim` against a gateway that refuses its devices (not in ingest.allow): over MQTT every
// refused frame is still PUBACKed, but a refused device keeps its frames (PROTOCOL.md, "A stopped
// device": the PUBACK of a refused frame is no acknowledgement), and the run failed: exit 1 (real
// Runtime with the embedded broker, the CLI as a child process).
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

function gateway(allow: string[]): Runtime {
  return new Runtime({
    config: resolveConfig({
      dataDir: "/nonexistent-vigil-test",
      site: "refused-site",
      mqtt: { embedded: { port: 0 } },
      http: { enabled: false },
      attest: { enabled: false, gatewayName: "gw-refused" },
      models: { enabled: false },
      ingest: { allow },
      log: { statsIntervalMs: 0 },
    }),
    store: new MemoryFrameStore(),
  });
}

describe("vigil sim against a gateway that refuses its devices", () => {
  it("error: frames NACKed UNKNOWN_DEVICE make the run exit 1 with every frame kept (PUBACKed, not stored); allowed devices exit 0", async () => {
    rt = gateway(["ffffffff"]);
    await rt.start();
    const args = ["sim", "--mqtt", rt.embedded!.url, "--devices", "2", "--frames", "20", "--json"];
    const refused = await runVigil(args);
    const report = JSON.parse(refused.stdout.trim().split("\n").at(-1)!) as {
      pending: number;
      acked: number;
      stopped: number;
      probes: number;
      nacked: Record<string, number>;
    };
    // Kept, frame 0 included (its PUBACK came before its NACK); no probe within the default minute.
    expect(report.pending).toBe(40);
    expect(report.acked).toBe(0);
    expect(report.stopped).toBe(2);
    expect(report.probes).toBe(0);
    expect(report.nacked.UNKNOWN_DEVICE).toBeGreaterThan(0);
    expect(refused.code).toBe(1);
    // One line: why (the NACK reason), which devices, and the fix.
    expect(refused.stderr.trimEnd().split("\n").at(-1)).toMatch(
      /^vigil sim: 2 devices still stopped, refused by the gateway \(UNKNOWN_DEVICE=\d+\), ids 00000001, 00000002 \(hex, as in ingest\.allow; 40 frames kept, not stored\); register them \(vigil access sensor register\) or add their ids to ingest\.allow, then run again$/,
    );
    expect(rt.ingest.counters.accepted).toBe(0);
    await rt.stop();
    rt = gateway(["00000001", "00000002"]);
    await rt.start();
    const ok = await runVigil([
      "sim",
      "--mqtt",
      rt.embedded!.url,
      "--devices",
      "2",
      "--frames",
      "20",
      "--json",
    ]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(rt.ingest.counters.accepted).toBe(40);
  });
});
