import { describe, expect, it } from "vitest";
import { alertLeafPreimage, leafFromPreimage } from "../../gateway/src/core/leaf.ts";
import type { PayloadKind } from "../../gateway/src/alerts/payloads.ts";
import { FakePublisher } from "../../gateway/src/alerts/publisher.ts";
import { AlertService } from "../../gateway/src/alerts/service.ts";
import { EncodedOutput } from "../../gateway/src/alerts/output.ts";
import { VigilJsonEncoder } from "../../gateway/src/alerts/vigil-json.ts";
import {
  alertTopics,
  dashboardSubscriptions,
  topicLevel,
  TopicLevelError,
} from "../../gateway/src/alerts/topics.ts";
import type { LeafRecord, InferenceResult } from "../../gateway/src/infer/loop.ts";
import type { LoadedModel } from "../../gateway/src/infer/registry.ts";
import type { SensorFaultTransition } from "../../gateway/src/infer/quality-events.ts";
import { FakeClock } from "../../gateway/src/core/clock.ts";
import { ManualTimers } from "../../gateway/src/core/timers.ts";
import { fd001Manifest } from "../infer/helpers.ts";
import { checkPayload, kindOf } from "./helpers.ts";

const manifest = fd001Manifest();
const model = {
  manifest,
  sha256: manifest.model.sha256,
  modelHash: Uint8Array.from(Buffer.from(manifest.model.sha256, "hex")),
  outputNames: ["rul"],
} as unknown as LoadedModel;

function result(deviceId: number, rul: number, seq: number, clock: FakeClock): InferenceResult {
  const ts = clock.nowUs() - 500;
  return {
    model,
    deviceId,
    profile: "cmapss-v2",
    window: {
      firstSeq: Math.max(0, seq - 39),
      lastSeq: seq,
      frames: Math.min(40, seq + 1),
      firstTimestampUs: ts - 1000,
      lastTimestampUs: ts,
      lastReceivedUs: ts,
      rows: seq + 1,
    },
    windowHash: new Uint8Array(32).fill(seq & 0xff),
    outputs: Float32Array.of(rul),
    allOutputs: Float32Array.of(rul),
    inferenceLeaf: new Uint8Array(32).fill(7),
    atUs: clock.nowUs(),
  };
}

function setup(healthIntervalMs = 1000): {
  svc: AlertService;
  pub: FakePublisher;
  clock: FakeClock;
  leaves: LeafRecord[];
  encoder: VigilJsonEncoder;
} {
  const pub = new FakePublisher();
  const clock = new FakeClock();
  const leaves: LeafRecord[] = [];
  const encoder = new VigilJsonEncoder("plant 7/north", "gw#1");
  const svc = new AlertService({
    output: new EncodedOutput(encoder, pub),
    models: () => [model],
    clock,
    onLeaf: (l) => leaves.push(l),
    healthIntervalMs,
  });
  return { svc, pub, clock, leaves, encoder };
}

describe("topics", () => {
  it("behavior: versioned scheme with sanitised site/gateway levels [MQTT-4.7.1-1]", () => {
    const t = alertTopics("plant 7/north", "gw+#1");
    expect(t.status).toBe("vigil/v1/plant_7_north/gw__1/status");
    expect(t.alert(0x2a)).toBe("vigil/v1/plant_7_north/gw__1/0000002a/alert");
    expect(t.health(0xdeadbeef)).toBe("vigil/v1/plant_7_north/gw__1/deadbeef/health");
    expect([t.gatewayAlert, t.access]).toEqual([
      "vigil/v1/plant_7_north/gw__1/alert",
      "vigil/v1/plant_7_north/gw__1/access",
    ]);
    expect(topicLevel("$SYS", "site")).toBe("_SYS");
    expect(topicLevel("a".repeat(100), "site")).toHaveLength(64);
    expect(dashboardSubscriptions()).toEqual([
      "vigil/v1/+/+/+/alert",
      "vigil/v1/+/+/+/health",
      "vigil/v1/+/+/+/sensor-fault",
      "vigil/v1/+/+/+/status",
      "vigil/v1/+/+/status",
      "vigil/v1/+/+/alert",
    ]);
    const dt = alertTopics("s", "g");
    expect([dt.sensorFault(42), dt.deviceStatus(42), dt.status]).toEqual([
      "vigil/v1/s/g/0000002a/sensor-fault",
      "vigil/v1/s/g/0000002a/status",
      "vigil/v1/s/g/status",
    ]);
  });

  it("error: ids without usable characters, and the reserved site `ingest`", () => {
    expect(() => topicLevel("///", "site")).toThrow(TopicLevelError);
    expect(() => topicLevel("", "gateway")).toThrow(/gateway: "" has no usable characters/);
    expect(() => alertTopics("ingest", "gw")).toThrow(/reserved/);
  });
});

describe("alert service", () => {
  it("behavior: status online at start (will = offline), offline at stop; every payload matches its schema", async () => {
    const { svc, pub } = setup();
    await svc.start();
    expect(pub.will?.topic).toBe("vigil/v1/plant_7_north/gw_1/status");
    expect(checkPayload("status", pub.will!.payload)).toMatchObject({ state: "offline", reason: "will" });
    expect(checkPayload("status", pub.retained.get(pub.will!.topic)!)).toMatchObject({
      state: "online",
      reason: "start",
      models: [{ name: manifest.name, sha256: manifest.model.sha256 }],
    });
    await svc.stop();
    expect(checkPayload("status", pub.retained.get(pub.will!.topic)!)).toMatchObject({
      state: "offline",
      reason: "stop",
    });
    expect(pub.closed).toBe(true);
    expect(pub.messages.every((m) => m.qos === 1)).toBe(true);
  });

  it("behavior: anchoring paused and resumed republish the retained status (reason anchoring) with why; the schema holds", async () => {
    const { svc, pub, clock } = setup();
    await svc.start();
    const topic = pub.will!.topic;
    expect(checkPayload("status", pub.retained.get(topic)!)).toMatchObject({ anchoringPaused: null });
    const sinceUs = clock.nowUs();
    await svc.anchoringChanged({
      reason: "spend-cap",
      message: "the day's anchoring spend would exceed chain.maxSpendPerDayEth",
      sinceUs,
      untilUs: sinceUs + 3_600_000_000,
    });
    expect(checkPayload("status", pub.retained.get(topic)!)).toMatchObject({
      state: "online",
      reason: "anchoring",
      anchoringPaused: { reason: "spend-cap", sinceUs, untilUs: sinceUs + 3_600_000_000 },
    });
    await svc.anchoringChanged(null);
    expect(checkPayload("status", pub.retained.get(topic)!)).toMatchObject({
      reason: "anchoring",
      anchoringPaused: null,
    });
    // A pause with no end of its own (fee cap) also fits the schema.
    await svc.anchoringChanged({
      reason: "fee-cap",
      message: "base fee above the cap",
      sinceUs,
      untilUs: null,
    });
    expect(checkPayload("status", pub.retained.get(topic)!)).toMatchObject({
      anchoringPaused: { reason: "fee-cap", untilUs: null },
    });
    await svc.stop();
    expect(checkPayload("status", pub.retained.get(topic)!)).toMatchObject({
      state: "offline",
      anchoringPaused: { reason: "fee-cap" },
    });
  });

  it("behavior: a gateway alert (update-check-stale) is raised once and cleared once on the gateway's alert topic; the schema holds", async () => {
    const { svc, pub, clock } = setup();
    await svc.start();
    const detail = {
      lastSuccessMs: 1_700_000_000_000,
      staleAfterMs: 3_600_000,
      lastError: "connection refused",
    };
    const raised = await svc.gatewayAlert("update-check-stale", true, {
      severity: "warning",
      message: "no update check succeeded for longer than updates.staleAfterMs",
      detail,
    });
    expect(raised?.state).toBe("raised");
    // Raising again while raised publishes nothing.
    expect(
      await svc.gatewayAlert("update-check-stale", true, { severity: "warning", message: "x", detail }),
    ).toBe(undefined);
    clock.advanceMs(5000);
    await svc.gatewayAlert("update-check-stale", false, {
      severity: "warning",
      message: "update checks succeed again",
      detail: { ...detail, lastSuccessMs: 1_700_000_005_000, lastError: null },
    });
    expect(
      await svc.gatewayAlert("update-check-stale", false, { severity: "warning", message: "x", detail }),
    ).toBe(undefined);
    const msgs = pub.messages.filter((m) => m.topic === "vigil/v1/plant_7_north/gw_1/alert");
    expect(msgs.map((m) => [m.qos, m.retain])).toEqual([
      [1, false],
      [1, false],
    ]);
    expect(kindOf(msgs[0]!.topic)).toBe("gateway-alert");
    const [r, c] = msgs.map((m) => checkPayload("gateway-alert", m.payload as string));
    expect(r).toMatchObject({ type: "gateway-alert", kind: "update-check-stale", state: "raised", detail });
    expect(c).toMatchObject({
      state: "cleared",
      id: r!.id,
      sinceUs: r!.sinceUs,
      detail: { lastError: null },
    });
    expect(c!.timeUs).toBe((r!.timeUs as number) + 5_000_000);
    expect(svc.counters).toMatchObject({ gatewayAlertsRaised: 1, gatewayAlertsCleared: 1 });
    // A payload that breaks the schema is caught by it.
    expect(() => checkPayload("gateway-alert", JSON.stringify({ ...r, detail: {} }))).toThrow(/detail/);
    await svc.stop();
  });

  it("behavior: a degrading device raises warning then critical, recovery clears them; alerts are QoS 1 not retained, carry receipt refs and ALERT leaves", async () => {
    const { svc, pub, clock, leaves } = setup();
    await svc.start();
    const ruls = [120, 80, 55, 50, 45, 52, 30, 20, 19, 25, 35, 70];
    ruls.forEach((rul, i) => {
      clock.advanceMs(100);
      svc.onResult(result(0x2a, rul, 100 + i, clock));
    });
    await svc.stop();
    const alerts = pub.on("/alert").map((m) => {
      expect(m).toMatchObject({ qos: 1, retain: false, topic: "vigil/v1/plant_7_north/gw_1/0000002a/alert" });
      return checkPayload("alert", m.payload);
    });
    expect(alerts.map((a) => `${a.rule && (a.rule as { id: string }).id}:${a.state}:${a.value}`)).toEqual([
      "rul-warning:raised:50",
      "rul-critical:raised:20",
      "rul-critical:cleared:35",
      "rul-warning:cleared:70",
    ]);
    const [w, c, cc] = alerts;
    expect(cc!.id).toBe(c!.id);
    expect(w).toMatchObject({
      severity: "warning",
      device: "0000002a",
      window: { lastSeq: 103, firstSeq: 64, frames: 40 },
      receipt: { batchSeq: null, inferenceLeaf: "0x" + "07".repeat(32) },
    });
    expect(c).toMatchObject({ severity: "critical" });
    // ALERT leaf = keccak(alert preimage) committing to model hash and window hash.
    const alertLeaves = leaves.filter((l) => l.kind === "alert");
    expect(alertLeaves).toHaveLength(4);
    const pre = alertLeafPreimage({
      modelHash: model.modelHash,
      inputWindowHash: new Uint8Array(32).fill(103),
      deviceId: 0x2a,
      timestampUs: (w!.window as { lastTimestampUs: number }).lastTimestampUs,
      severity: 2,
      rule: "rul-warning",
      score: 50,
    });
    expect((w!.receipt as { leaf: string }).leaf).toBe(
      "0x" + Buffer.from(leafFromPreimage(pre)).toString("hex"),
    );
    expect(Buffer.from(alertLeaves[0]!.preimage)).toEqual(Buffer.from(pre));
    expect(svc.counters).toMatchObject({ raised: 2, cleared: 2, alertsPublished: 4 });
  });

  it("behavior: health is retained, throttled per device, immediate on transitions, flushed at stop", async () => {
    const { svc, pub, clock } = setup(1000);
    await svc.start();
    for (let i = 0; i < 25; i++) {
      clock.advanceMs(100); // 10 results per second
      svc.onResult(result(1, 100 - i, i, clock));
    }
    // t=0.1 s first publish, then every second: at 1.1, 2.1; nothing raised (RUL ≥ 76).
    expect(pub.on("/health")).toHaveLength(3);
    svc.onResult(result(1, 40, 25, clock)); // warning raised → health at once
    expect(pub.on("/health")).toHaveLength(4);
    const h = checkPayload("health", pub.retained.get("vigil/v1/plant_7_north/gw_1/00000001/health")!);
    expect(h).toMatchObject({
      device: "00000001",
      profile: "cmapss-v2",
      outputs: { rul: 40 },
      active: [{ rule: "rul-warning", severity: "warning" }],
      windows: 26,
      lastFrame: { seq: 25 },
    });
    clock.advanceMs(100);
    svc.onResult(result(1, 41, 26, clock));
    await svc.stop();
    const last = pub.on("/health").at(-1)!;
    expect(last.retain).toBe(true);
    expect(checkPayload("health", last.payload)).toMatchObject({
      outputs: { rul: 41 },
      lastFrame: { seq: 26 },
    });
    for (const m of pub.messages) checkPayload(kindOf(m.topic)!, m.payload);
  });

  it("behavior: a model output that is not finite raises nothing; health carries it as null and matches its schema", async () => {
    const { svc, pub, clock } = setup(0);
    await svc.start();
    clock.advanceMs(100);
    svc.onResult(result(1, -Infinity, 0, clock));
    clock.advanceMs(100);
    svc.onResult(result(1, NaN, 1, clock));
    await svc.stop();
    expect(pub.on("/alert")).toHaveLength(0);
    const healths = pub.on("/health").map((m) => checkPayload("health", m.payload));
    expect(healths.length).toBeGreaterThan(0);
    for (const h of healths) expect(h).toMatchObject({ outputs: { rul: null }, active: [] });
  });

  it("behavior: a held (throttled) health is published by the flush timer when its device goes quiet", async () => {
    const pub = new FakePublisher();
    const clock = new FakeClock();
    const timers = new ManualTimers(clock);
    const svc = new AlertService({
      output: new EncodedOutput(new VigilJsonEncoder("s", "g"), pub),
      models: () => [model],
      clock,
      timers,
      healthIntervalMs: 1000,
    });
    await svc.start();
    svc.onResult(result(9, 100, 0, clock)); // published at once
    timers.advance(300);
    svc.onResult(result(9, 99, 1, clock)); // held
    timers.advance(300);
    svc.onResult(result(9, 98, 2, clock)); // held (replaces seq 1)
    await svc.settled();
    expect(pub.on("/health")).toHaveLength(1);
    timers.advance(399); // 999 ms after the first publication: not due yet
    expect(pub.on("/health")).toHaveLength(1);
    timers.advance(1); // due: the latest held result goes out although no result arrives
    await svc.settled();
    const last = checkPayload("health", pub.retained.get("vigil/v1/s/g/00000009/health")!);
    expect(last).toMatchObject({ outputs: { rul: 98 }, lastFrame: { seq: 2 } });
    expect(svc.counters).toMatchObject({ healthPublished: 2, healthThrottled: 2, healthFlushed: 1 });
    expect(timers.pending).toBe(0);
    await svc.stop();
  });

  it("error: publish failures are counted, never thrown into the loop", async () => {
    const { svc, pub, clock } = setup();
    const errors: unknown[] = [];
    await svc.start();
    pub.failWith = new Error("broker down");
    svc.onResult(result(3, 10, 1, clock));
    await svc.settled();
    expect(svc.counters.publishErrors).toBe(3); // two alerts + health
    expect(errors).toEqual([]);
  });

  it("behavior: the fake's crash() leaves the will as retained status (what dashboards see)", async () => {
    const { svc, pub, encoder } = setup();
    await svc.start();
    pub.crash();
    expect(checkPayload("status", pub.retained.get(encoder.topics.status)!)).toMatchObject({
      state: "offline",
      reason: "will",
    });
  });

  it("behavior: after a reconnect (the broker published the will) the retained status is online again (reason reconnect); not after stop", async () => {
    const { svc, pub, encoder } = setup();
    await svc.start();
    pub.crash();
    pub.onReconnect!();
    await svc.settled();
    expect(checkPayload("status", pub.retained.get(encoder.topics.status)!)).toMatchObject({
      state: "online",
      reason: "reconnect",
    });
    await svc.stop();
    const n = pub.messages.length;
    pub.onReconnect!();
    await svc.settled();
    expect(pub.messages).toHaveLength(n);
    expect(checkPayload("status", pub.retained.get(encoder.topics.status)!)).toMatchObject({
      state: "offline",
      reason: "stop",
    });
  });
});

describe("sensor faults and device status (data-quality stage)", () => {
  const transition = (
    state: "raised" | "cleared",
    value: number,
    atUs: number,
    raisedAtUs: number,
  ): SensorFaultTransition => ({
    model,
    deviceId: 0x2a,
    profile: "cmapss-fd001",
    channel: "s9",
    channelIndex: 11,
    state,
    reason: "missing",
    value,
    seq: 7,
    timestampUs: atUs - 100,
    receivedUs: atUs - 50,
    frameLeaf: new Uint8Array(32).fill(0xab),
    atUs,
    raisedAtUs,
  });

  it("error: the schemas refuse what the README says cannot be published (a batchSeq, time without milliseconds, a reserved site or gateway, a will that says online, a non-warning stale alarm, a withheld window with state ok)", async () => {
    const { svc, pub, clock } = setup();
    await svc.start();
    const t0 = clock.nowUs();
    svc.onSensorFault(transition("raised", 1, t0, t0 - 50));
    svc.onDeviceStatus({
      model,
      deviceId: 0x2a,
      profile: "cmapss-fd001",
      state: "data-quality",
      reason: "window-imputed",
      withheld: 1,
      faults: [],
      commissioning: { mode: "first-cycle", age: 1, baselineRows: 3, baselineNeeds: 10 },
      lastSeq: 7,
      lastTimestampUs: t0,
      atUs: t0,
    });
    await svc.gatewayAlert("update-check-stale", true, {
      severity: "warning",
      message: "x",
      detail: { lastSuccessMs: 1, staleAfterMs: 3_600_000, lastError: null },
    });
    await svc.settled();
    const sample = (kind: PayloadKind): Record<string, unknown> => {
      const m = pub.messages.find((x) => kindOf(x.topic) === kind);
      return checkPayload(kind, m!.payload); // what the gateway sent is valid
    };
    const refused = (kind: PayloadKind, edit: (p: Record<string, unknown>) => void): boolean => {
      const p = structuredClone(sample(kind));
      edit(p);
      try {
        checkPayload(kind, JSON.stringify(p));
        return false;
      } catch {
        return true;
      }
    };
    const edits: Array<[PayloadKind, string, (p: Record<string, unknown>) => void]> = [
      ["sensor-fault", "batchSeq 3", (p) => ((p.receipt as { batchSeq: unknown }).batchSeq = 3)],
      ["sensor-fault", "time without ms", (p) => (p.time = "2026-12-02T21:00:00Z")],
      ["sensor-fault", "site ___", (p) => (p.site = "___")],
      ["sensor-fault", "site ingest", (p) => (p.site = "ingest")],
      ["status", "gateway _", (p) => (p.gateway = "_")],
      ["status", "will online", (p) => (p.reason = "will")],
      ["status", "stop online", (p) => (p.reason = "stop")],
      ["gateway-alert", "stale critical", (p) => (p.severity = "critical")],
      ["device-status", "withheld ok", (p) => (p.state = "ok")],
      ["device-status", "ran data-quality", (p) => (p.reason = "ok")],
    ];
    for (const [kind, what, edit] of edits) expect(refused(kind, edit), what).toBe(true);
    // Valid variations stay valid: another site, a status reason that says online.
    expect(refused("status", (p) => (p.reason = "reconnect"))).toBe(false);
    expect(refused("sensor-fault", (p) => (p.site = "ingest-2"))).toBe(false);
  });

  it("behavior: one episode id for raised and cleared, a SENSOR_FAULT leaf each, NaN published as null, never an alert", async () => {
    const { svc, pub, clock, leaves } = setup();
    await svc.start();
    const t0 = clock.nowUs();
    const rx = t0 - 50; // the raising frame's arrival: the episode's identity
    svc.onSensorFault(transition("raised", NaN, t0, rx));
    clock.advanceMs(5000);
    svc.onSensorFault(transition("cleared", 47.25, clock.nowUs(), rx));
    await svc.settled();
    const msgs = pub.messages.filter((m) => m.topic.endsWith("/sensor-fault"));
    expect(msgs.map((m) => m.topic)).toEqual([
      "vigil/v1/plant_7_north/gw_1/0000002a/sensor-fault",
      "vigil/v1/plant_7_north/gw_1/0000002a/sensor-fault",
    ]);
    const [raised, cleared] = msgs.map((m) => checkPayload("sensor-fault", m.payload));
    expect(raised).toMatchObject({ state: "raised", value: null, sinceUs: rx, id: `0000002a-s9-${rx}` });
    expect(cleared).toMatchObject({ state: "cleared", value: 47.25, sinceUs: rx, id: raised!.id });
    expect(leaves.map((l) => l.kind)).toEqual(["sensor-fault", "sensor-fault"]);
    expect(pub.messages.some((m) => kindOf(m.topic) === "alert")).toBe(false);
    expect(svc.counters).toMatchObject({ sensorFaultsRaised: 1, sensorFaultsCleared: 1, raised: 0 });
    // A clear this process never saw raised (after a restart: the warm-up replayed the raising
    // frame) names the episode by that frame, so it matches the raise sent before the restart.
    const fresh = setup();
    await fresh.svc.start();
    fresh.svc.onSensorFault(transition("cleared", 1, clock.nowUs(), rx));
    await fresh.svc.settled();
    const last = checkPayload("sensor-fault", fresh.pub.messages.at(-1)!.payload);
    expect(last).toMatchObject({ state: "cleared", sinceUs: rx, id: raised!.id });
  });
});

describe("start: the online status and a broker that has not answered", () => {
  /** A publisher whose broker never acknowledges; `up` says whether it is connected. */
  function silentBroker(up: boolean) {
    const pub = new FakePublisher();
    const sent: string[] = [];
    pub.publish = (msg) => {
      sent.push(msg.topic);
      return new Promise<void>(() => undefined);
    };
    const withState = Object.assign(pub, { connected: () => up });
    const timers = new ManualTimers();
    const errors: string[] = [];
    const svc = new AlertService({
      output: new EncodedOutput(new VigilJsonEncoder("s", "g"), withState),
      models: () => [model],
      clock: new FakeClock(),
      onLeaf: () => undefined,
      onError: (e) => errors.push((e as Error).message),
      ackTimeoutMs: 5000,
      timers,
    });
    return { svc, sent, timers, errors };
  }

  it("behavior: connected but silent: start waits ackTimeoutMs for the online status, then says so", async () => {
    const b = silentBroker(true);
    let done = false;
    const started = b.svc.start().then(() => (done = true));
    await new Promise((r) => setImmediate(r));
    expect(b.sent).toEqual(["vigil/v1/s/g/status"]);
    b.timers.advance(4999);
    await new Promise((r) => setImmediate(r));
    expect(done).toBe(false);
    b.timers.advance(1);
    await started;
    expect(b.errors).toEqual([expect.stringMatching(/did not acknowledge the online status within 5000 ms/)]);
  });

  it("behavior: not connected (the start already waited for it): the status is queued, start does not wait again", async () => {
    const b = silentBroker(false);
    await b.svc.start();
    expect(b.sent).toEqual(["vigil/v1/s/g/status"]);
    expect(b.timers.pending).toBe(0);
    expect(b.errors).toEqual([]);
  });
});
