// `vigil sim --profile cwru` (real CWRU bearing recordings) with a scripted stuck statistic, through
// the CLI, against a gateway serving models/cwru on its embedded broker: the bearing fault is an
// alert, the stuck sensor is a sensor-fault, and the device status says it needs no commissioning.
import mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { join } from "node:path";
import { simCommand } from "../../gateway/src/cli/sim.ts";
import { UsageError } from "../../gateway/src/core/errors.ts";
import { dashboardSubscriptions } from "../../gateway/src/alerts/topics.ts";
import { resolveConfig } from "../../gateway/src/config/config.ts";
import { Runtime } from "../../gateway/src/runtime.ts";
import { MemoryFrameStore } from "../../gateway/src/store/memory.ts";
import { REPO_ROOT } from "../../models/eval/cmapss.ts";
import { checkPayload, kindOf } from "./helpers.ts";

let rt: Runtime;
let sub: mqtt.MqttClient;
const got: Array<{ topic: string; payload: Record<string, unknown> }> = [];
let exit: number;
const out: string[] = [];

beforeAll(async () => {
  rt = new Runtime({
    config: resolveConfig({
      http: { port: 0 }, // never the default 9479: another gateway may hold it
      dataDir: "/nonexistent-vigil-test",
      site: "s",
      mqtt: { embedded: { port: 0 } },
      attest: { enabled: false, gatewayName: "g" },
      models: { dir: join(REPO_ROOT, "models", "cwru") },
      log: { statsIntervalMs: 0 },
    }),
    store: new MemoryFrameStore(),
  });
  await rt.start();
  sub = await mqtt.connectAsync(rt.embedded!.url, { clientId: "dashboard", protocolVersion: 4 });
  sub.on("message", (topic, payload) => {
    const kind = kindOf(topic);
    if (kind) got.push({ topic, payload: checkPayload(kind, payload) });
  });
  await sub.subscribeAsync(dashboardSubscriptions(), { qos: 1 });
  const stdout = vi.spyOn(process.stdout, "write").mockImplementation((s) => out.push(String(s)) > 0);
  const stderr = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
  try {
    exit = await simCommand(
      `--mqtt ${rt.embedded!.url} --profile cwru --devices 1 --rate 0 --window 1 --healthy 60 --frames 160 --sensor-fault stuck:kurtosis@10+30 --json`.split(
        " ",
      ),
    );
  } finally {
    stdout.mockRestore();
    stderr.mockRestore();
  }
  await vi.waitFor(() => expect(rt.loop!.counters.framesSeen).toBe(160), { timeout: 10_000, interval: 20 });
  await rt.alerts.settled();
  await vi.waitFor(() => expect(got.filter((m) => m.topic.endsWith("/sensor-fault"))).toHaveLength(2), {
    timeout: 5000,
    interval: 10,
  });
}, 60_000);

afterAll(async () => {
  await sub?.endAsync();
  await rt?.stop();
});

describe("vigil sim --profile cwru", () => {
  it("behavior: replays the bearing, every frame acknowledged; the report is the last JSON line", () => {
    expect(exit).toBe(0);
    const report = JSON.parse(out.at(-1)!) as { type: string; acked: number; generated: number };
    expect(report).toMatchObject({ type: "report", generated: 160, acked: 160 });
    expect(rt.ingest.counters.devices.get(1)?.profile).toBe("cwru-bearing-v1");
  });

  it("behavior: the stuck statistic is a sensor fault (raised, cleared); the bearing fault after frame 60 is an alert", () => {
    const faults = got.filter((m) => m.topic.endsWith("/sensor-fault")).map((m) => m.payload);
    expect(faults.map((f) => [f.state, f.channel, f.reason])).toEqual([
      ["raised", "kurtosis", "stuck"],
      ["cleared", "kurtosis", "stuck"],
    ]);
    const alerts = got.filter((m) => m.topic.endsWith("/alert")).map((m) => m.payload);
    const warning = alerts.find((a) => a.state === "raised" && a.severity === "warning");
    expect(warning).toBeDefined();
    expect((warning!.window as { lastSeq: number }).lastSeq).toBeGreaterThanOrEqual(60);
    const status = got.filter((m) => kindOf(m.topic) === "device-status").map((m) => m.payload);
    expect(status.length).toBeGreaterThan(0);
    expect(status.every((s) => (s.commissioning as { mode: string }).mode === "not-needed")).toBe(true);
  });

  it("args: an unknown profile or a channel the profile does not have is a usage error", async () => {
    await expect(simCommand(["--profile", "turbofan"])).rejects.toThrow(UsageError);
    await expect(
      simCommand(["--profile", "cwru", "--sensor-fault", "stuck:s9@10", "--mqtt", "mqtt://127.0.0.1:1"]),
    ).rejects.toThrow(/s9.*is not one of max, min/);
    await expect(simCommand(["--sensor-fault", "frozen:s9@10"])).rejects.toThrow(UsageError);
  });
});
