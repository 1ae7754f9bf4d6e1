// End to end on loopback: simulator (C-MAPSS FD001 train units, run to failure) → MQTT →
// embedded aedes → Ingest → MemorySink → inference loop → alerts on the same broker, read by
// a plain mqtt.js subscriber that validates every payload against the schemas.
import mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { MqttTransport } from "../../device-sim/src/transports/mqtt.ts";
import { Simulator, type SimReport } from "../../device-sim/src/simulator.ts";
import { dashboardSubscriptions } from "../../gateway/src/alerts/topics.ts";
import { resolveConfig } from "../../gateway/src/config/config.ts";
import type { LeafRecord } from "../../gateway/src/core/records.ts";
import { Runtime } from "../../gateway/src/runtime.ts";
import { MemoryFrameStore } from "../../gateway/src/store/memory.ts";
import { isStoredLeaf } from "../../gateway/src/store/types.ts";
import { CMAPSS_DIR } from "../infer/helpers.ts";
import { checkPayload, kindOf } from "./helpers.ts";

const UNITS = 3;
let rt: Runtime;
let store: MemoryFrameStore;
let sub: mqtt.MqttClient;
const got: Array<{ topic: string; payload: Record<string, unknown>; retain: boolean }> = [];
let report: SimReport;

async function storedLeaves(): Promise<LeafRecord[]> {
  const out: LeafRecord[] = [];
  for await (const chunk of store.entryChunks(1, store.stats().lastIndex))
    for (const e of chunk) if (isStoredLeaf(e)) out.push(e);
  return out;
}

beforeAll(async () => {
  store = new MemoryFrameStore();
  rt = new Runtime({
    config: resolveConfig({
      dataDir: "/nonexistent-vigil-test",
      site: "test-site",
      mqtt: { embedded: { port: 0 } },
      attest: { enabled: false, gatewayName: "gw-1" },
      models: { dir: CMAPSS_DIR },
      log: { statsIntervalMs: 0 },
    }),
    store,
  });
  await rt.start();
  const url = rt.embedded!.url;
  sub = await mqtt.connectAsync(url, { clientId: "dashboard", protocolVersion: 4 });
  sub.on("message", (topic, payload, packet) => {
    const kind = kindOf(topic);
    if (kind) got.push({ topic, payload: checkPayload(kind, payload), retain: packet.retain });
  });
  await sub.subscribeAsync(dashboardSubscriptions(), { qos: 1 });
  // rate 0 replays as fast as the link allows; window 1 (one unacknowledged frame per device)
  // keeps each engine's frames in cycle order through the ACK round trip. Without it a whole
  // unit arrives in one burst and the stale-window policy runs only its newest window (see
  // gateway/src/infer/README.md), so the first alert would come with the failure itself.
  const sim = new Simulator({
    transport: new MqttTransport({ url, clientId: "sim" }),
    profile: "cmapss",
    cmapss: { subset: "FD001", split: "train" },
    devices: UNITS,
    rate: 0,
    window: 1,
    seed: 5,
  });
  report = await sim.run();
  // Every stored frame has been through the loop, and every result through the alert service.
  await vi.waitFor(
    () => {
      const c = rt.loop!.counters;
      expect(c.framesSeen).toBe(report.generated);
      expect(rt.loop!.pending).toBe(0);
      expect(c.windowsRun + c.skippedWindows).toBe(c.windowsReady);
    },
    { timeout: 10_000, interval: 20 },
  );
  await rt.alerts.settled();
}, 60_000);

afterAll(async () => {
  await sub?.endAsync();
  await rt?.stop();
});

describe("embedded broker end to end", () => {
  it("behavior: every frame stored; replayed units raise warning and critical alerts before their failure step", () => {
    expect(rt.ingest.counters.accepted).toBe(report.generated);
    expect(store.stats().lastIndex - store.stats().leavesStored).toBe(report.generated);
    const c = rt.loop!.counters;
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

  it("behavior: status online (retained), health retained per device, alert receipts match stored leaves", async () => {
    const status = got
      .filter((m) => m.topic === "vigil/v1/test-site/gw-1/status")
      .map((m) => m.payload.state);
    expect(status).toEqual(["online"]);
    const health = got.filter((m) => m.topic.endsWith("/health"));
    expect(new Set(health.map((m) => m.topic)).size).toBe(UNITS);
    const leaves = await storedLeaves();
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
    expect(inferenceLeaves.size).toBe(rt.loop!.counters.windowsRun);
  });

  it("behavior: a dashboard connecting later gets the retained status and health", async () => {
    const late = await mqtt.connectAsync(rt.embedded!.url, { clientId: "late", protocolVersion: 4 });
    const seen: string[] = [];
    late.on("message", (topic, payload, packet) => {
      expect(packet.retain).toBe(true);
      checkPayload(kindOf(topic)!, payload);
      seen.push(topic);
    });
    await late.subscribeAsync(dashboardSubscriptions("test-site", "gw-1"), { qos: 1 });
    // Retained messages are sent right after the SUBACK [MQTT-3.3.1-6].
    // The gateway status, and per device its health and its data-quality status.
    await vi.waitFor(() => expect(seen).toHaveLength(1 + 2 * UNITS), { timeout: 5000, interval: 10 });
    await late.endAsync();
    expect(seen.filter((t) => kindOf(t) === "status")).toHaveLength(1);
    expect(seen.filter((t) => kindOf(t) === "device-status")).toHaveLength(UNITS);
    expect(seen.filter((t) => t.endsWith("/health"))).toHaveLength(UNITS);
  });

  it("behavior: a clean stop delivers each device's final health and the offline status to a connected QoS 1 subscriber", async () => {
    await rt.stop();
    const status = got.filter((m) => kindOf(m.topic) === "status").map((m) => m.payload.state);
    expect(status).toEqual(["online", "offline"]);
    // The retained health of every device ends on its latest result.
    const lastHealth = new Map<string, Record<string, unknown>>();
    for (const m of got) if (m.topic.endsWith("/health")) lastHealth.set(m.topic, m.payload);
    for (const g of report.groundTruth) {
      const dev = g.deviceId.toString(16).padStart(8, "0");
      const h = lastHealth.get(`vigil/v1/test-site/gw-1/${dev}/health`);
      expect((h?.lastFrame as { seq: number }).seq, dev).toBe(g.framesGenerated - 1);
    }
  });
});
