// `vigil sim` (the CLI as a child process) against a real gateway (Runtime, embedded MQTT broker,
// in-memory store) whose skew limit (ingest.maxSkewMs) the device clocks exceed (--skew-ms): every
// frame is PUBACKed and then NACKed ABSURD_TIMESTAMP (hardware/PROTOCOL.md, "Replies and silence").
// The devices drop them (NACK table): the report counts them abandoned, none acknowledged, as the
// gateway stored none, and the run failed (exit 1) with one line naming the reason and the fix.
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

describe("vigil sim: frames PUBACKed, then NACKed ABSURD_TIMESTAMP", () => {
  it("behavior: they count as abandoned, not acked; nothing acknowledged is a failed run (exit 1, the reason and the fix named), and the gateway stored none", async () => {
    rt = new Runtime({
      config: resolveConfig({
        dataDir: "/nonexistent-vigil-test",
        site: "skew-site",
        mqtt: { embedded: { host: "127.0.0.1", port: 0 } },
        http: { enabled: false },
        attest: { enabled: false, gatewayName: "gw-skew" },
        models: { enabled: false },
        ingest: { maxSkewMs: 60_000 },
        log: { statsIntervalMs: 0 },
      }),
      store: new MemoryFrameStore(),
    });
    await rt.start();
    const args = [
      "sim",
      "--mqtt",
      rt.embedded!.url,
      "--devices",
      "2",
      "--frames",
      "15",
      "--rate",
      "0",
      "--json",
    ];
    const r = await runVigil([...args, "--skew-ms", "3600000"]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr.trimEnd().split("\n").at(-1)).toMatch(
      /^vigil sim: no frame acknowledged of 30 generated \(30 abandoned; nacked: ABSURD_TIMESTAMP=30\); ABSURD_TIMESTAMP: the device clocks \(--skew-ms\) are beyond the gateway's ingest\.maxSkewMs: use a smaller --skew-ms or raise ingest\.maxSkewMs$/,
    );
    const report = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as Record<string, unknown>;
    expect(report).toMatchObject({
      generated: 30,
      acked: 0,
      abandoned: 30,
      pending: 0,
      dupAcks: 0,
      nacked: { ABSURD_TIMESTAMP: 30 },
    });
    expect(rt.ingest.counters.accepted).toBe(0);
    expect(rt.ingest.counters.snapshot().rejected.ABSURD_TIMESTAMP).toBe(30);
    // Within the limit, the same run is stored and acknowledged.
    const ok = await runVigil([...args, "--skew-ms", "1000", "--first-id", "3"]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout.trim().split("\n").at(-1)!)).toMatchObject({ acked: 30, abandoned: 0 });
    expect(rt.ingest.counters.accepted).toBe(30);
  }, 60_000);
});
