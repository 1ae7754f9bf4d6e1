// The full path of a broken sensor, on loopback: simulator (C-MAPSS FD001 train unit, one channel
// scripted stuck, a burst of missing values, NaN in an unused channel) → MQTT → embedded aedes →
// Ingest → store → inference loop (data-quality stage) → alert service → the same broker, read by a
// plain mqtt.js subscriber that validates every payload against the schemas. A stuck sensor must
// show up as a sensor-fault (its own topic, kind and leaf), never as a machine-health alert.
import mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { parseScriptedFaults } from "../../device-sim/src/faults.ts";
import { MqttTransport } from "../../device-sim/src/transports/mqtt.ts";
import { Simulator, type SimReport } from "../../device-sim/src/simulator.ts";
import { dashboardSubscriptions } from "../../gateway/src/alerts/topics.ts";
import { resolveConfig } from "../../gateway/src/config/config.ts";
import { decodeModelLeaf, frameLeaf } from "../../gateway/src/core/leaf.ts";
import type { LeafRecord } from "../../gateway/src/core/records.ts";
import { Runtime } from "../../gateway/src/runtime.ts";
import { MemoryFrameStore } from "../../gateway/src/store/memory.ts";
import { isStoredLeaf, type StoredFrame } from "../../gateway/src/store/types.ts";
import { CMAPSS_DIR } from "../infer/helpers.ts";
import { checkPayload, kindOf } from "./helpers.ts";

const hex = (b: Uint8Array): string => "0x" + Buffer.from(b).toString("hex");
const DEV = "00000001";
// s9 (a feature of every C-MAPSS model; stuck after 6 equal values) holds its frame-60 value for
// 80 frames; 8 of the 15 features read nothing for 2 frames from 150 (more than half a row
// imputed: those windows are withheld; too short for a sensor fault, which takes 3 flagged frames);
// s1 (not a feature) is NaN for the whole run.
const SCRIPT =
  "stuck:s9@60+80," +
  ["s2", "s3", "s4", "s7", "s8", "s11", "s12", "s13"].map((c) => `nan:${c}@150+2`).join(",") +
  ",nan:s1@0";

let rt: Runtime;
let store: MemoryFrameStore;
let sub: mqtt.MqttClient;
let report: SimReport;
const got: Array<{ topic: string; payload: Record<string, unknown>; retain: boolean }> = [];
const leaves: LeafRecord[] = [];
const frames = new Map<number, StoredFrame>();

beforeAll(async () => {
  store = new MemoryFrameStore();
  rt = new Runtime({
    config: resolveConfig({
      http: { port: 0 }, // never the default 9479: another gateway may hold it
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
  const sim = new Simulator({
    transport: new MqttTransport({ url, clientId: "sim" }),
    profile: "cmapss",
    cmapss: { subset: "FD001", split: "train" },
    devices: 1,
    rate: 0,
    window: 1, // frames in cycle order (see embedded.test.ts)
    seed: 5,
    sensorFaults: parseScriptedFaults(SCRIPT),
  });
  report = await sim.run();
  await vi.waitFor(
    () => {
      expect(rt.loop!.counters.framesSeen).toBe(report.generated);
      expect(rt.loop!.pending).toBe(0);
    },
    { timeout: 10_000, interval: 20 },
  );
  await rt.alerts.settled();
  await vi.waitFor(() => expect(got.filter((m) => m.topic.endsWith("/sensor-fault")).length).toBe(2), {
    timeout: 5000,
    interval: 10,
  });
  for await (const chunk of store.entryChunks(1, store.stats().lastIndex))
    for (const e of chunk) {
      if (isStoredLeaf(e)) leaves.push(e);
      else frames.set(e.seq, e);
    }
}, 60_000);

afterAll(async () => {
  await sub?.endAsync();
  await rt?.stop();
});

describe("a stuck sensor, simulator to dashboard", () => {
  it("behavior: every frame is stored and acknowledged, NaN ones included", () => {
    expect(report.acked).toBe(report.generated);
    expect(rt.ingest.counters.rejected).toEqual({});
    expect(rt.ingest.counters.nonFiniteFrames).toBe(report.generated); // s1 is NaN in all of them
    expect(frames.size).toBe(report.generated);
  });

  it("behavior: the stuck channel raises one sensor fault and clears it, on its own topic, never as an alert", () => {
    const faults = got.filter((m) => m.topic === `vigil/v1/test-site/gw-1/${DEV}/sensor-fault`);
    expect(faults.map((m) => [m.payload.state, m.payload.channel, m.payload.reason])).toEqual([
      ["raised", "s9", "stuck"],
      ["cleared", "s9", "stuck"],
    ]);
    const [raised, cleared] = faults.map((m) => m.payload) as Array<Record<string, unknown>>;
    expect(raised!.id).toBe(cleared!.id);
    expect(raised!.severity).toBe("warning");
    expect(faults.every((m) => !m.retain)).toBe(true);
    const at = (m: Record<string, unknown>): number => (m.frame as { seq: number }).seq;
    // Stuck from frame 60: flagged once s9 has been equal 6 times, a fault after 3 flagged frames.
    expect(at(raised!)).toBeGreaterThan(60);
    expect(at(raised!)).toBeLessThan(75);
    // Cleared after 10 good frames once it moves again (frame 140).
    expect(at(cleared!)).toBeGreaterThanOrEqual(140 + 9);
    expect(at(cleared!)).toBeLessThan(160);
    // No machine-health alert names the sensor; sensor faults are counted apart.
    for (const m of got.filter((x) => x.topic.endsWith("/alert")))
      expect(JSON.stringify(m.payload)).not.toContain("s9");
    expect(rt.alerts.counters).toMatchObject({ sensorFaultsRaised: 1, sensorFaultsCleared: 1 });
  });

  it("behavior: each transition is attested by a SENSOR_FAULT leaf bound to the stored frame", () => {
    const byHash = new Map(leaves.map((l) => [hex(l.hash), l]));
    for (const m of got.filter((x) => x.topic.endsWith("/sensor-fault"))) {
      const r = m.payload.receipt as { leaf: string; frameLeaf: string; batchSeq: null };
      const leaf = byHash.get(r.leaf);
      expect(leaf?.kind).toBe("sensor-fault");
      const d = decodeModelLeaf(leaf!.preimage);
      expect(d.kind).toBe("sensor-fault");
      expect(d.kind === "sensor-fault" && d.rule).toBe(
        m.payload.state === "raised" ? "s9:stuck" : "s9:stuck:clear",
      );
      const seq = (m.payload.frame as { seq: number }).seq;
      expect(hex(d.inputWindowHash)).toBe(r.frameLeaf);
      expect(r.frameLeaf).toBe(hex(frameLeaf(frames.get(seq)!)));
      expect(r.batchSeq).toBeNull();
    }
    expect(leaves.filter((l) => l.kind === "sensor-fault")).toHaveLength(2);
    expect(rt.leaves["sensor-fault"]).toBe(2);
  });

  it("behavior: withheld windows publish a data-quality device status, with the commissioning mode; predictions resume after", () => {
    const status = got
      .filter((m) => m.topic === `vigil/v1/test-site/gw-1/${DEV}/status`)
      .map(
        (m) => m.payload as Record<string, unknown> & { faults: unknown[]; commissioning: { mode: string } },
      );
    expect(status.every((s) => s.commissioning.mode === "first-cycle")).toBe(true);
    expect(status[0]).toMatchObject({ state: "ok", faults: [] });
    const dq = status.findIndex((s) => s.state === "data-quality");
    expect(dq).toBeGreaterThan(0);
    expect(status[dq]).toMatchObject({ reason: "row-imputed" });
    expect((status[dq]!.lastFrame as { seq: number }).seq).toBe(150);
    expect(status.slice(dq).some((s) => s.state === "ok")).toBe(true);
    expect(status.some((s) => JSON.stringify(s.faults) === '[{"channel":"s9","reason":"stuck"}]')).toBe(true);
    expect(status.at(-1)).toMatchObject({ state: "ok", faults: [] });
    // The same status, read from the loop (for status endpoints).
    expect(rt.loop!.deviceStatuses()).toMatchObject([
      { deviceId: 1, state: "ok", faults: [], withheld: 2, commissioning: { mode: "first-cycle" } },
    ]);
    const c = rt.loop!.counters;
    expect(c.windowsWithheld).toBe(2);
    // Counted by reason: both windows for their newest row, and every flagged value of a used
    // channel (16 missing: 8 features × 2 frames; s1 is unused and never counts).
    const snap = rt.loop!.snapshot();
    expect(snap.windowsWithheldBy).toEqual({ "window-imputed": 0, "row-imputed": 2, "features-lost": 0 });
    // s9 holds one value for 80 frames: stuck from its 6th equal value on, 75 frames
    expect(snap.valuesFlagged).toEqual({ missing: 16, "out-of-range": 0, stuck: 75, spike: 0 });
    expect(c.valuesFlagged[0]).toBe(0); // index 0 (ok) is not a flag: it stays 0
    expect(c.windowsRun + c.skippedWindows).toBe(c.windowsReady);
    expect(c.windowsReady).toBe(report.generated - 2);
  });
});
