// End to end on loopback: simulator (C-MAPSS FD001 train units, run to failure) → MQTT →
// embedded aedes → Ingest → MemorySink → inference loop → alerts on the same broker, read by
// a plain mqtt.js subscriber that validates every payload against the schemas.
import mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MqttTransport } from "../../device-sim/src/transports/mqtt.ts";
import { Simulator, type SimReport } from "../../device-sim/src/simulator.ts";
import { EmbeddedPublisher } from "../../gateway/src/alerts/embedded-publisher.ts";
import { dashboardSubscriptions } from "../../gateway/src/alerts/topics.ts";
import { createInference, type AttestLeaf, type Inference } from "../../gateway/src/infer/index.ts";
import { Ingest } from "../../gateway/src/ingest/ingest.ts";
import { MemorySink } from "../../gateway/src/ingest/memory-sink.ts";
import { EmbeddedBroker } from "../../gateway/src/ingest/mqtt/embedded-broker.ts";
import { CMAPSS_DIR } from "../infer/helpers.ts";
import { checkPayload, kindOf } from "./helpers.ts";

const UNITS = 3;
let sink: MemorySink;
let broker: EmbeddedBroker;
let inference: Inference;
let sub: mqtt.MqttClient;
const got: Array<{ topic: string; payload: Record<string, unknown>; retain: boolean }> = [];
const leaves: AttestLeaf[] = [];
let report: SimReport;

beforeAll(async () => {
  sink = new MemorySink();
  const ingest = new Ingest({ sink });
  broker = new EmbeddedBroker(ingest, { port: 0 });
  await broker.start();
  inference = await createInference({
    modelsDir: CMAPSS_DIR,
    ingest,
    publisher: new EmbeddedPublisher(broker),
    site: "test-site",
    gatewayId: "gw-1",
    onLeaf: (l) => leaves.push(l),
    healthIntervalMs: 200,
  });
  sub = await mqtt.connectAsync(broker.url, { clientId: "dashboard", protocolVersion: 4 });
  sub.on("message", (topic, payload, packet) => {
    const kind = kindOf(topic);
    if (kind) got.push({ topic, payload: checkPayload(kind, payload), retain: packet.retain });
  });
  await sub.subscribeAsync(dashboardSubscriptions(), { qos: 1 });
  await inference.start();
  // rate 0 replays as fast as the link allows; window 1 (one unacknowledged frame per device)
  // keeps each engine's frames in cycle order through the ACK round trip. Without it a whole
  // unit arrives in one burst and the stale-window policy runs only its newest window (see
  // gateway/src/infer/README.md), so the first alert would come with the failure itself.
  const sim = new Simulator({
    transport: new MqttTransport({ url: broker.url, clientId: "sim" }),
    profile: "cmapss",
    cmapss: { subset: "FD001", split: "train" },
    devices: UNITS,
    rate: 0,
    window: 1,
    seed: 5,
  });
  report = await sim.run();
  await new Promise((r) => setTimeout(r, 300));
  await inference.stop();
  await new Promise((r) => setTimeout(r, 100));
}, 60_000);

afterAll(async () => {
  await sub?.endAsync();
  await broker?.stop();
});

describe("embedded broker end to end", () => {
  it("behavior: every frame stored; replayed units raise warning and critical alerts before their failure step", () => {
    expect(sink.records).toHaveLength(report.generated);
    const c = inference.counters.loop;
    expect(c.framesSeen).toBe(report.generated);
    expect(c.windowsRun + c.skippedWindows).toBe(c.windowsReady);
    expect(c.batches).toBeLessThan(c.windowsRun); // devices share runs
    for (const g of report.groundTruth) {
      const dev = g.deviceId.toString(16).padStart(8, "0");
      const raised = got.filter((m) => m.topic.endsWith(`/${dev}/alert`) && m.payload.state === "raised");
      const bySeverity = (s: string) =>
        raised.find((m) => m.payload.severity === s)?.payload.window as { lastSeq: number } | undefined;
      expect(bySeverity("warning"), `device ${dev} warning`).toBeDefined();
      expect(bySeverity("critical"), `device ${dev} critical`).toBeDefined();
      expect(bySeverity("warning")!.lastSeq).toBeLessThan(g.failureStep!);
      expect(bySeverity("critical")!.lastSeq).toBeLessThanOrEqual(g.failureStep!);
      // Lead time: the warning comes well before the failure.
      expect(g.failureStep! - bySeverity("warning")!.lastSeq).toBeGreaterThan(10);
    }
  });

  it("behavior: status online then offline (retained), health retained per device, alert receipts match emitted leaves", () => {
    const status = got
      .filter((m) => m.topic === "vigil/v1/test-site/gw-1/status")
      .map((m) => m.payload.state);
    expect(status).toEqual(["online", "offline"]);
    const health = got.filter((m) => m.topic.endsWith("/health"));
    expect(new Set(health.map((m) => m.topic)).size).toBe(UNITS);
    const alertLeaves = new Set(
      leaves.filter((l) => l.kind === "alert").map((l) => "0x" + Buffer.from(l.hash).toString("hex")),
    );
    const inferenceLeaves = new Set(
      leaves.filter((l) => l.kind === "inference").map((l) => "0x" + Buffer.from(l.hash).toString("hex")),
    );
    const alerts = got.filter((m) => m.topic.endsWith("/alert"));
    expect(alerts.length).toBeGreaterThanOrEqual(2 * UNITS);
    for (const a of alerts) {
      const r = a.payload.receipt as { leaf: string; inferenceLeaf: string };
      expect(alertLeaves.has(r.leaf)).toBe(true);
      expect(inferenceLeaves.has(r.inferenceLeaf)).toBe(true);
      expect(a.retain).toBe(false);
    }
    expect(inferenceLeaves.size).toBe(inference.counters.loop.windowsRun);
  });

  it("behavior: a dashboard connecting later gets the retained status and health", async () => {
    const late = await mqtt.connectAsync(broker.url, { clientId: "late", protocolVersion: 4 });
    const seen: string[] = [];
    late.on("message", (topic, payload, packet) => {
      expect(packet.retain).toBe(true);
      checkPayload(kindOf(topic)!, payload);
      seen.push(topic);
    });
    await late.subscribeAsync(dashboardSubscriptions("test-site", "gw-1"), { qos: 1 });
    await new Promise((r) => setTimeout(r, 200));
    await late.endAsync();
    expect(seen.filter((t) => t.endsWith("/status"))).toHaveLength(1);
    expect(seen.filter((t) => t.endsWith("/health"))).toHaveLength(UNITS);
  });
});
