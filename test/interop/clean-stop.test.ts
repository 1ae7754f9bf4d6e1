/**
 * A clean stop with many devices: every device's final health and the gateway's `offline` status
 * reach a connected QoS 1 subscriber before the broker closes (issue: with 1,515 devices 41–51
 * final healths and the offline status were lost in 3 of 5 runs on the embedded broker; later 70
 * final healths in 2 of about 10 CI runs, when the stop came while a tick ran with windows queued
 * behind it). Runs on the embedded broker and on a real Mosquitto (ingest and alerts both through it).
 */
import mqtt from "mqtt";
import { afterEach, describe, expect, it, vi } from "vitest";
import { MqttTransport } from "../../device-sim/src/transports/mqtt.ts";
import { Simulator } from "../../device-sim/src/simulator.ts";
import { dashboardSubscriptions } from "../../gateway/src/alerts/topics.ts";
import { resolveConfig } from "../../gateway/src/config/config.ts";
import { Runtime } from "../../gateway/src/runtime.ts";
import { MemoryFrameStore } from "../../gateway/src/store/memory.ts";
import { mosquitto, type Mosquitto } from "../helpers/procs.ts";

const DEVICES = 1500;
/** The rotating model's window is 64 frames: a few results per device. */
const FRAMES = 66;

let broker: Mosquitto | undefined;
afterEach(async () => {
  await broker?.stop();
  broker = undefined;
});

async function cleanStop(external: boolean): Promise<void> {
  broker = external ? await mosquitto() : undefined;
  const rt = new Runtime({
    config: resolveConfig({
      http: { port: 0 }, // never the default 9479: another gateway may hold it
      site: "stop-site",
      mqtt: external ? { embedded: { enabled: false }, url: broker!.url } : { embedded: { port: 0 } },
      attest: { enabled: false, gatewayName: "gw-stop" },
      log: { statsIntervalMs: 0 },
    }),
    store: new MemoryFrameStore(),
  });
  await rt.start();
  const url = external ? broker!.url : rt.embedded!.url;
  const got: Array<{ topic: string; payload: { state?: string; lastFrame?: { seq: number } } }> = [];
  const sub = await mqtt.connectAsync(url, { clientId: "dashboard", protocolVersion: 4, clean: true });
  sub.on("message", (topic, payload) => {
    if (topic.endsWith("/health") || topic.endsWith("/gw-stop/status"))
      got.push({ topic, payload: JSON.parse(payload.toString()) as (typeof got)[number]["payload"] });
  });
  await sub.subscribeAsync(dashboardSubscriptions(), { qos: 1 });
  try {
    const report = await new Simulator({
      transport: new MqttTransport({ url, clientId: "sim-stop" }),
      profile: "rotating",
      devices: DEVICES,
      framesPerDevice: FRAMES,
      rate: 0,
      window: 16,
      seed: 11,
      meanLife: 100_000,
      drainMs: 240_000,
    }).run();
    expect(report.acked).toBe(DEVICES * FRAMES);
    // Every frame through the loop; then stop at once, with healths still held by the throttle.
    await vi.waitFor(
      () => {
        expect(rt.loop!.counters.framesSeen).toBe(report.generated);
        expect(rt.loop!.pending).toBe(0);
      },
      // Through Mosquitto the devices' PUBACKs are the broker's; the gateway drains its
      // subscription at its own pace (Mosquitto's in-flight window), well after the devices are done.
      { timeout: 240_000, interval: 50 },
    );
    await rt.stop();
    // The loop's stop ran every window it had (the tick queued behind a running one too).
    const c = rt.loop!.counters;
    expect(c.windowsRun + c.skippedWindows).toBe(c.windowsReady);
    // What the subscriber holds once the stop returned: the offline status is the last status,
    // and every device's last health is its final frame's.
    await vi.waitFor(() => expect(got.at(-1)?.payload.state).toBe("offline"), { timeout: 10_000 });
    const status = got.filter((m) => m.topic.endsWith("/status")).map((m) => m.payload.state);
    expect(status.at(-1)).toBe("offline");
    const lastHealth = new Map<string, number>();
    for (const m of got) if (m.topic.endsWith("/health")) lastHealth.set(m.topic, m.payload.lastFrame!.seq);
    expect(lastHealth.size).toBe(DEVICES);
    const stale = [...lastHealth.values()].filter((seq) => seq !== FRAMES - 1).length;
    expect(stale).toBe(0);
  } finally {
    await sub.endAsync(true);
    await rt.stop();
  }
}

describe(`clean stop with ${DEVICES} devices`, () => {
  it(
    "behavior: embedded broker — final health of every device and offline reach the QoS 1 subscriber",
    () => cleanStop(false),
    600_000,
  );
  it(
    "behavior: Mosquitto — final health of every device and offline reach the QoS 1 subscriber",
    () => cleanStop(true),
    600_000,
  );
});
