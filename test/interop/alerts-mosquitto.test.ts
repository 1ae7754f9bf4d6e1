// The alert publisher against an external Mosquitto: payloads validated by a plain mqtt.js
// subscriber, retained status/health, and the real MQTT last will on an abrupt disconnect.
import mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { MqttClientPublisher } from "../../gateway/src/alerts/mqtt-publisher.ts";
import { AlertService } from "../../gateway/src/alerts/service.ts";
import { EncodedOutput } from "../../gateway/src/alerts/output.ts";
import { VigilJsonEncoder } from "../../gateway/src/alerts/vigil-json.ts";
import { dashboardSubscriptions } from "../../gateway/src/alerts/topics.ts";
import type { InferenceResult } from "../../gateway/src/infer/loop.ts";
import { loadModel, releaseModel, type LoadedModel } from "../../gateway/src/infer/registry.ts";
import { systemClock } from "../../gateway/src/core/clock.ts";
import { checkPayload, kindOf } from "../alerts/helpers.ts";
import { FD001_MANIFEST } from "../infer/helpers.ts";
import { mosquitto, type Mosquitto } from "../helpers/procs.ts";

let broker: Mosquitto;
let model: LoadedModel;

beforeAll(async () => {
  broker = await mosquitto();
  model = await loadModel(FD001_MANIFEST);
});
afterAll(async () => {
  if (model) await releaseModel(model);
  await broker?.stop();
});

function result(deviceId: number, rul: number, seq: number): InferenceResult {
  const now = systemClock.nowUs();
  return {
    model,
    deviceId,
    profile: "cmapss-v2",
    window: {
      firstSeq: Math.max(0, seq - 39),
      lastSeq: seq,
      frames: Math.min(40, seq + 1),
      firstTimestampUs: now - 40_000,
      lastTimestampUs: now,
      lastReceivedUs: now,
      rows: seq + 1,
    },
    windowHash: new Uint8Array(32).fill(1),
    outputs: Float32Array.of(rul),
    allOutputs: Float32Array.of(rul),
    inferenceLeaf: new Uint8Array(32).fill(2),
    atUs: now,
  };
}

async function dashboard(id: string): Promise<{
  c: mqtt.MqttClient;
  got: Array<{ topic: string; p: Record<string, unknown>; retain: boolean }>;
}> {
  const c = await mqtt.connectAsync(broker.url, { clientId: id, protocolVersion: 4 });
  const got: Array<{ topic: string; p: Record<string, unknown>; retain: boolean }> = [];
  c.on("message", (topic, payload, packet) =>
    got.push({ topic, p: checkPayload(kindOf(topic)!, payload), retain: packet.retain }),
  );
  await c.subscribeAsync(dashboardSubscriptions("site-a", "gw-9"), { qos: 1 });
  return { c, got };
}

const until = (cond: () => boolean, timeout = 5000): Promise<void> =>
  vi.waitFor(() => expect(cond()).toBe(true), { timeout, interval: 20 });

const service = (pub: MqttClientPublisher, healthIntervalMs?: number): AlertService =>
  new AlertService({
    output: new EncodedOutput(new VigilJsonEncoder("site-a", "gw-9"), pub),
    models: () => [model],
    ...(healthIntervalMs !== undefined ? { healthIntervalMs } : {}),
  });

describe("alerts over an external Mosquitto", () => {
  it("behavior: alert, health and status payloads arrive schema-valid; clean stop leaves retained offline", async () => {
    const { c, got } = await dashboard("dash-1");
    const pub = new MqttClientPublisher({ url: broker.url, clientId: "gw-9-alerts" });
    const svc = service(pub, 0);
    await svc.start();
    [90, 60, 45, 30, 15, 40, 70].forEach((rul, i) => svc.onResult(result(0x10, rul, 50 + i)));
    await svc.stop();
    await until(() => got.filter((m) => m.topic.endsWith("/status")).length >= 2);
    await until(() => got.filter((m) => m.topic.endsWith("/alert")).length >= 4);
    expect(
      got
        .filter((m) => m.topic.endsWith("/alert"))
        .map((m) => `${(m.p.rule as { id: string }).id}:${m.p.state}`),
    ).toEqual(["rul-warning:raised", "rul-critical:raised", "rul-critical:cleared", "rul-warning:cleared"]);
    expect(got.filter((m) => m.topic.endsWith("/health"))).toHaveLength(7);
    expect(got.filter((m) => m.topic.endsWith("/status")).map((m) => m.p.state)).toEqual([
      "online",
      "offline",
    ]);
    await c.endAsync();

    // A dashboard arriving later sees the retained offline status and the last health.
    const late = await dashboard("dash-late");
    await until(() => late.got.length >= 2);
    expect(late.got.every((m) => m.retain)).toBe(true);
    expect(late.got.find((m) => m.topic.endsWith("/status"))?.p).toMatchObject({
      state: "offline",
      reason: "stop",
    });
    expect(late.got.find((m) => m.topic.endsWith("/health"))?.p).toMatchObject({ outputs: { rul: 70 } });
    await late.c.endAsync();
  });

  it("behavior: an abrupt disconnect makes Mosquitto publish the last will: retained status offline (reason will)", async () => {
    const { c, got } = await dashboard("dash-2");
    const pub = new MqttClientPublisher({ url: broker.url, clientId: "gw-9-crash" });
    const svc = service(pub);
    await svc.start();
    await until(() => got.some((m) => m.topic.endsWith("/status") && m.p.state === "online" && !m.retain));
    // No DISCONNECT packet: the socket just dies, as when the gateway loses power.
    const before = got.length; // the retained offline of the previous test came first
    pub.client!.options.reconnectPeriod = 0;
    pub.client!.stream.destroy();
    await until(() => got.slice(before).some((m) => m.topic.endsWith("/status") && m.p.state === "offline"));
    const will = got
      .slice(before)
      .filter((m) => m.topic.endsWith("/status"))
      .at(-1)!;
    expect(will.p).toMatchObject({ state: "offline", reason: "will", site: "site-a", gateway: "gw-9" });
    await c.endAsync();
    const late = await dashboard("dash-3");
    await until(() => late.got.some((m) => m.topic.endsWith("/status")));
    expect(late.got.find((m) => m.topic.endsWith("/status"))).toMatchObject({
      retain: true,
      p: { state: "offline", reason: "will" },
    });
    await late.c.endAsync();
    await pub.close().catch(() => undefined);
  });

  it("behavior: a lost connection (will published) that comes back leaves the retained status online (reason reconnect)", async () => {
    const pub = new MqttClientPublisher({ url: broker.url, clientId: "gw-9-flaky" });
    const svc = service(pub);
    await svc.start();
    const { c, got } = await dashboard("dash-4");
    await until(() => got.some((m) => m.topic.endsWith("/status") && m.p.reason === "start"));
    // The socket dies (no DISCONNECT); mqtt.js reconnects after its reconnectPeriod (1 s).
    pub.client!.stream.destroy();
    await until(() => got.some((m) => m.topic.endsWith("/status") && m.p.reason === "will"));
    await until(() => got.some((m) => m.topic.endsWith("/status") && m.p.reason === "reconnect"), 10_000);
    const statuses = got.filter((m) => m.topic.endsWith("/status")).map((m) => `${m.p.state}:${m.p.reason}`);
    expect(statuses).toEqual(["online:start", "offline:will", "online:reconnect"]);
    await c.endAsync();
    const late = await dashboard("dash-5");
    await until(() => late.got.some((m) => m.topic.endsWith("/status")));
    expect(late.got.find((m) => m.topic.endsWith("/status"))).toMatchObject({
      retain: true,
      p: { state: "online", reason: "reconnect" },
    });
    await late.c.endAsync();
    await svc.stop();
  });
});
