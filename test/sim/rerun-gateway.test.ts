// `vigil sim` run twice against one gateway (real Runtime, embedded MQTT broker, in-memory store),
// the CLI as a child process. Every run is a new boot of each simulated device (hardware/PROTOCOL.md:
// "a device must increment boot_id … on every boot"), so the second run's frames, whose sequence
// numbers the first run already used, are stored too. A --boot-id pinned to the first run's
// continues that boot: its frames are refused (SCHEMA_MISMATCH, SEQ_REUSED) and the run fails with
// a line naming the reason and the fix. Over MQTT, a run against a plain broker (aedes, no gateway
// behind it) warns that its PUBACKs do not mean stored.
import { Aedes } from "aedes";
import { createServer, type Server } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { resolveConfig } from "../../gateway/src/config/config.ts";
import { Runtime } from "../../gateway/src/runtime.ts";
import { MemoryFrameStore } from "../../gateway/src/store/memory.ts";
import { runVigil } from "../helpers/procs.ts";

let rt: Runtime | undefined;
let broker: { server: Server; aedes: Aedes } | undefined;
afterEach(async () => {
  await rt?.stop();
  rt = undefined;
  if (broker) {
    const b = broker;
    broker = undefined;
    await new Promise<void>((res) => b.server.close(() => res()));
    await new Promise<void>((res) => b.aedes.close(() => res()));
  }
});

function gateway(): Runtime {
  return new Runtime({
    config: resolveConfig({
      dataDir: "/nonexistent-vigil-test",
      site: "rerun-site",
      mqtt: { embedded: { host: "127.0.0.1", port: 0 } },
      http: { enabled: false },
      attest: { enabled: false, gatewayName: "gw-rerun" },
      models: { enabled: false },
      log: { statsIntervalMs: 0 },
    }),
    store: new MemoryFrameStore(),
  });
}

type Report = Record<string, unknown> & { acked: number; abandoned: number; bootId: number };
const reportOf = (stdout: string): Report => JSON.parse(stdout.trim().split("\n").at(-1)!) as Report;

describe("vigil sim run again against the same gateway", () => {
  it("behavior: a second run is a new boot of every device: all its frames are acknowledged and stored", async () => {
    rt = gateway();
    await rt.start();
    const args = [
      "sim",
      "--mqtt",
      rt.embedded!.url,
      "--devices",
      "2",
      "--frames",
      "20",
      "--rate",
      "0",
      "--json",
    ];
    const first = await runVigil(args);
    expect(first.code, first.stderr).toBe(0);
    const second = await runVigil(args);
    expect(second.code, second.stderr).toBe(0);
    const [a, b] = [reportOf(first.stdout), reportOf(second.stdout)];
    expect(a).toMatchObject({ generated: 40, acked: 40, abandoned: 0, pending: 0 });
    expect(b).toMatchObject({ generated: 40, acked: 40, abandoned: 0, pending: 0, nacked: {} });
    expect(b.bootId).not.toBe(a.bootId);
    expect(rt.ingest.counters.accepted).toBe(80);
    // A gateway is behind this broker: no plain-broker warning.
    expect(second.stderr).not.toMatch(/warning/);
  }, 90_000);

  it("error: a --boot-id the gateway has seen continues that boot: refused, exit 1, one line naming the reason and the fix", async () => {
    rt = gateway();
    await rt.start();
    const args = ["sim", "--mqtt", rt.embedded!.url, "--devices", "1", "--frames", "10", "--rate", "0"];
    const first = await runVigil([...args, "--boot-id", "7"]);
    expect(first.code, first.stderr).toBe(0);
    const again = await runVigil([...args, "--boot-id", "7"]);
    expect(again.code, again.stderr).toBe(1);
    // Text output says why frames were refused, as --json's "nacked" does.
    expect(again.stderr).toMatch(/^sim: done .*acked=0 .*abandoned=10 .*nacked: SCHEMA_MISMATCH=\d+/m);
    const last = again.stderr.trimEnd().split("\n").at(-1)!;
    expect(last).toMatch(
      /^vigil sim: no frame acknowledged of 10 generated \(10 abandoned; nacked: SCHEMA_MISMATCH=\d+\)/,
    );
    expect(last).toMatch(/leave --boot-id out or give an unused one/);
    expect(rt.ingest.counters.accepted).toBe(10);
  }, 90_000);
});

describe("vigil sim against a plain MQTT broker (no gateway behind it)", () => {
  it("behavior: every frame is PUBACKed, and a warning says no gateway's status came from that broker", async () => {
    const aedes = await Aedes.createBroker();
    const server = createServer(aedes.handle);
    await new Promise<void>((res) => server.listen(0, "127.0.0.1", res));
    broker = { server, aedes };
    const port = (server.address() as { port: number }).port;
    const r = await runVigil(["sim", "--mqtt", `mqtt://127.0.0.1:${port}`, "--devices", "1", "--frames", "5", "--rate", "0"]); // prettier-ignore
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/acked=5 /);
    expect(r.stderr).toMatch(
      new RegExp(
        `^sim: warning: no gateway status \\(retained vigil/v1/\\+/\\+/status\\) came from MQTT mqtt://127\\.0\\.0\\.1:${port}: a broker with no gateway behind it PUBACKs every frame`,
        "m",
      ),
    );
  }, 60_000);
});
