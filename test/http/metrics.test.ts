import { tmpdir } from "node:os";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { GatewayMetrics, LATENCY_BOUNDS_US, countAtOrBelow } from "../../gateway/src/http/metrics.ts";
import { LiveFeed } from "../../gateway/src/http/live.ts";
import { PageModel } from "../../gateway/src/http/page-model.ts";
import { LatencyHistogram } from "../../gateway/src/core/histogram.ts";
import { decodeFrame, encodeFrame, FrameType, type Frame } from "../../gateway/src/protocol/frame.ts";
import { FrameError } from "../../gateway/src/protocol/errors.ts";
import { alert, health } from "./events.ts";
import { documented, labelNames, parseExposition, sample, type Family } from "./exposition.ts";
import { fakeBatch, fakeModel, FakeSource, fakeUpdates, GATEWAY_ID, storeStats } from "./fake-source.ts";
import type { AccessStatusView } from "../../gateway/src/http/source.ts";
import { summaryProblems } from "../independent/http-client.ts";

const NOW_US = 1_764_000_100_000_000;

/** The registry watch's hook (runtime.ts `access()`), which FakeSource does not declare. */
function withAccess(src: FakeSource, view: () => AccessStatusView | undefined): FakeSource {
  return Object.assign(src, { access: view });
}

function metricsFor(src: FakeSource, feed = new LiveFeed()): GatewayMetrics {
  return new GatewayMetrics({
    source: src,
    feed,
    version: "9.9.9",
    nowUs: () => NOW_US,
    http: () => ({
      sseClients: 1,
      sseSkipped: 0,
      sseEvicted: 0,
      requests: new Map([["/metrics 200", 3]]),
      connectionsDropped: 2,
      clientErrors: new Map([["431", 1]]),
    }),
  });
}

async function scrape(m: GatewayMetrics): Promise<Map<string, Family>> {
  return parseExposition(await m.render());
}

function dec(f: Frame) {
  const raw = encodeFrame(f);
  return { frame: decodeFrame(raw), raw };
}

function hello(deviceId: number): Frame {
  return {
    type: FrameType.Hello,
    deviceId,
    bootId: 1,
    firmware: { major: 1, minor: 2, patch: 3 },
    profile: "rotating-v1",
    channels: [{ name: "vib_rms", unit: 0 }],
  };
}

function data(deviceId: number, seq: number, ts: number): Frame {
  return { type: FrameType.Data, deviceId, seq, timestampUs: ts, flags: 0, values: Float32Array.of(1) };
}

/** A source where every family has samples: devices with frames, rejections and ERROR frames,
 * inference with a live and a shadow lane, alerts, a sealer, an anchor reporting fees, a registry. */
async function busySource(): Promise<{ src: FakeSource; feed: LiveFeed }> {
  const src = new FakeSource();
  src.config.dataDir = tmpdir();
  // A serial port that is open: vigil_source_connected has a sample.
  src.sources.push({
    name: "serial:/dev/ttyV0",
    start: async () => {},
    stop: async () => {},
    stats: () => ({ opens: 1 }),
    connected: () => true,
  });
  const ing = src.ingest;
  const ts = src.clock.nowUs();
  for (const id of [1, 2]) {
    ing.handle(dec(hello(id)), "mqtt");
    for (let s = 1; s <= 5; s++) await ing.handle(dec(data(id, s, ts)), "mqtt");
  }
  await ing.handle(dec(data(1, 5, ts)), "mqtt"); // duplicate
  await ing.handle(dec(data(1, 7, ts)), "serial"); // gap of 1
  ing.rejectUndecodable(new FrameError("BAD_CRC", "crc"), "serial");
  ing.handle(dec({ type: FrameType.Error, deviceId: 1, code: 1, message: "stuck" }), "mqtt");
  ing.handle(dec({ type: FrameType.Error, deviceId: 1, code: 1, message: "stuck" }), "mqtt");
  ing.handle(dec({ type: FrameType.Error, deviceId: 2, code: 2, message: "lost 3" }), "mqtt");
  ing.handle(dec({ type: FrameType.Error, deviceId: 2, code: 9, message: "?" }), "mqtt");
  ing.counters.acksSent = 4;
  ing.counters.shed("BUSY", "serial");
  ing.counters.shed("BUSY", "serial");
  ing.counters.shed("mqttHeld", "mqtt");

  const inf = src.inference;
  Object.assign(inf, {
    framesSeen: 11,
    windowsRun: 7,
    skippedWindows: 2,
    failedWindows: 1,
    batches: 3,
    devices: 2,
    windowsWithheldBy: [0, 4, 5, 6],
    valuesFlagged: [0, 10, 11, 12, 13],
  });
  for (const us of [10, 20, 100, 1000, 5000]) inf.runLatency.record(us);
  inf.frameToResult.record(3000);
  inf.tickLatency.record(50);
  src.loop = {
    counters: inf,
    lanes: () => src.laneInfos,
    liveWindow: (id) =>
      id === 1
        ? { qualityState: { faults: 2 }, withheld: 5, commissioning: { mode: "mid-life" } }
        : undefined,
  };
  const live = fakeModel("rotating-v1-health", "1.0.0", ["rotating-v1"]);
  const cand = fakeModel("rotating-v1-health", "1.1.0", ["rotating-v1"]);
  src.laneInfos = [
    {
      model: live,
      role: "live",
      shadowOf: undefined,
      windowsRun: 7,
      usPerWindow: 150,
      runner: "inline",
      shadow: undefined,
    },
    {
      model: cand,
      role: "shadow",
      shadowOf: live,
      windowsRun: 6,
      usPerWindow: 160,
      runner: "worker",
      shadow: {
        windows: 6,
        compared: 5,
        meanAbsDiff: 0.01,
        maxAbsDiff: 0.05,
        failedWindows: 0,
        nonFinite: 0,
        outOfRange: 0,
        usPerWindow: 160,
        liveUsPerWindow: 150,
        medianUsPerWindow: 155,
        liveMedianUsPerWindow: 150,
      },
    },
  ];

  const feed = new LiveFeed();
  feed.observe(health(1, 0.2));
  feed.observe(health(2, 0.7, undefined, 1));
  feed.observe(alert(2, "raised", "warning"));
  feed.observe(alert(2, "raised", "critical"));
  feed.observe(alert(2, "cleared", "critical"));
  Object.assign(src.alertCounters, { raised: 2, cleared: 1, alertsPublished: 3, healthPublished: 2 });

  src.stats = storeStats({
    lastIndex: 20,
    liveFrames: 20,
    liveBytes: 4096,
    lastBatchSeq: 3,
    anchoredThrough: 1,
  });
  src.batches.set(2, fakeBatch(2, NOW_US - 42_000_000));
  src.anchors.set(1, {
    chainId: 31337,
    contract: "0x00",
    txHash: "0x" + "cd".repeat(32),
    blockNumber: 9,
    confirmations: 1,
    anchoredAtUs: NOW_US - 50_000_000,
  });
  src.sealer = { backlog: () => 5 };
  src.anchorStatus = {
    anchoredThrough: 1,
    backlog: 2,
    failures: 1,
    lastError: { code: "CHAIN_NETWORK", message: "down" },
    gasUsed: 52_000n,
    feeWei: 1_000_000_000n,
    l1FeeWei: 7,
  };
  src.registryStatus = { cacheAgeSeconds: 12 };
  withAccess(src, () => ({ standing: "suspended", sealing: false, registry: "stale" }));
  const counters = {
    checks: 9,
    checkErrors: 2,
    installs: 1,
    reportErrors: 1,
    rejected: { HASH_MISMATCH: 3 },
  };
  src.updates = fakeUpdates({ model: { stale: true, counters }, firmware: { counters } });
  return { src, feed };
}

describe("/metrics exposition", () => {
  it("behavior: every vigil_ family is documented in the README table with its type and labels, and vice versa", async () => {
    const { src, feed } = await busySource();
    const fams = await scrape(metricsFor(src, feed));
    const doc = documented();
    expect(doc.size).toBeGreaterThan(50);
    const exposed = [...fams.values()].filter((f) => f.name.startsWith("vigil_"));
    for (const f of exposed) {
      expect(doc.get(f.name), `${f.name} is not in the README table`).toBeDefined();
      expect(f.type, f.name).toBe(doc.get(f.name)!.type);
      expect(f.samples.length, `${f.name} has no sample in the busy source`).toBeGreaterThan(0);
      expect(labelNames(f), f.name).toEqual(doc.get(f.name)!.labels);
    }
    expect(exposed.map((f) => f.name).sort()).toEqual([...doc.keys()].sort());
  });

  it("behavior: names follow the Prometheus conventions (prefix, _total on counters only, base units)", async () => {
    const { src, feed } = await busySource();
    const fams = await scrape(metricsFor(src, feed));
    for (const f of fams.values()) {
      expect(f.help, f.name).not.toBe("");
      if (!f.name.startsWith("vigil_")) continue;
      expect(f.name).toMatch(/^vigil_[a-z0-9_]+$/);
      if (f.type === "counter") expect(f.name).toMatch(/_total$/);
      else expect(f.name).not.toMatch(/_total$/);
      // Base units only: seconds and bytes, never ms, µs, kB.
      expect(f.name).not.toMatch(/_(ms|us|micro|milli|kb|mb|kib|mib|minutes?|hours?)(_|$)/);
    }
    // Process metrics are there, without the three gauges promtool rejects.
    expect(fams.get("process_cpu_seconds_total")?.type).toBe("counter");
    expect(fams.get("process_resident_memory_bytes")?.type).toBe("gauge");
    expect(fams.has("nodejs_active_handles_total")).toBe(false);
    expect(fams.has("nodejs_active_handles")).toBe(true);
  });

  it("behavior: ingest frames by source, result and reason; ERROR frames by device and code", async () => {
    const { src, feed } = await busySource();
    const f = await scrape(metricsFor(src, feed));
    expect(sample(f, "vigil_ingest_frames_received_total", { source: "mqtt" })).toBe(2 * 6 + 1 + 4);
    expect(sample(f, "vigil_ingest_frames_received_total", { source: "serial" })).toBe(2);
    expect(sample(f, "vigil_ingest_frames_accepted_total")).toBe(11);
    expect(sample(f, "vigil_ingest_frames_duplicate_total")).toBe(1);
    expect(sample(f, "vigil_ingest_frames_rejected_total", { reason: "BAD_CRC" })).toBe(1);
    expect(sample(f, "vigil_ingest_source_frames_rejected_total", { source: "serial" })).toBe(1);
    expect(sample(f, "vigil_ingest_frames_missing")).toBe(1);
    expect(sample(f, "vigil_ingest_error_frames_total")).toBe(4);
    expect(sample(f, "vigil_device_error_frames_total", { device: "00000001", code: "sensor_fault" })).toBe(
      2,
    );
    expect(
      sample(f, "vigil_device_error_frames_total", { device: "00000002", code: "buffer_overflow" }),
    ).toBe(1);
    expect(sample(f, "vigil_device_error_frames_total", { device: "00000002", code: "code_9" })).toBe(1);
    expect(sample(f, "vigil_device_frames_accepted_total", { device: "00000001" })).toBe(6);
    expect(
      sample(f, "vigil_device_info", { device: "00000002", profile: "rotating-v1", firmware: "1.2.3" }),
    ).toBe(1);
    expect(sample(f, "vigil_ingest_replies_sent_total", { kind: "ack" })).toBe(4);
    expect(sample(f, "vigil_source_events_total", { source: "mqtt:embedded", event: "connects" })).toBe(2);
    // The connected-client count is a level: its own gauge, never a counter sample.
    expect(sample(f, "vigil_source_clients", { source: "mqtt:embedded" })).toBe(3);
    expect(sample(f, "vigil_source_stored_sessions", { source: "mqtt:embedded" })).toBe(2);
    expect(sample(f, "vigil_source_stored_messages", { source: "mqtt:embedded" })).toBe(40);
    expect(sample(f, "vigil_source_stored_inbound", { source: "mqtt:embedded" })).toBe(3);
    expect(sample(f, "vigil_source_stored_bytes", { source: "mqtt:embedded" })).toBe(3168);
    expect(f.get("vigil_source_events_total")!.samples.some((x) => x.labels.event === "clients")).toBe(false);
  });

  it("behavior: data quality per device (sensor faults, withheld windows) from the live window, back-pressure shedding by reason; the page shows the same", async () => {
    // busySource: device 1 has a live window with 2 faulted channels and 5 withheld windows,
    // device 2 none; 2 BUSY NACKs and 1 held MQTT PUBACK.
    const { src, feed } = await busySource();
    Object.assign(src.alertCounters, {
      sensorFaultsRaised: 3,
      sensorFaultsCleared: 1,
      deviceStatusPublished: 4,
    });
    const f = await scrape(metricsFor(src, feed));
    expect(sample(f, "vigil_sensor_faults_total", { state: "raised" })).toBe(3);
    expect(sample(f, "vigil_sensor_faults_total", { state: "cleared" })).toBe(1);
    expect(sample(f, "vigil_events_published_total", { kind: "device-status" })).toBe(4);
    expect(sample(f, "vigil_device_sensor_faults", { device: "00000001" })).toBe(2);
    expect(sample(f, "vigil_device_windows_withheld_total", { device: "00000001" })).toBe(5);
    // A device without a live model window has no data-quality series (absent, not 0).
    expect(f.get("vigil_device_sensor_faults")!.samples.map((x) => x.labels.device)).toEqual(["00000001"]);
    expect(sample(f, "vigil_ingest_frames_shed_total", { reason: "BUSY" })).toBe(2);
    expect(sample(f, "vigil_ingest_frames_shed_total", { reason: "mqttHeld" })).toBe(1);
    const page = await new PageModel(src, feed).stats();
    expect(page.devices.find((d) => d.d === "00000001")!.quality).toEqual({
      faults: 2,
      withheld: 5,
      mode: "mid-life",
    });
    expect(page.devices.find((d) => d.d === "00000002")!.quality).toBeNull();
  });

  it("behavior: inference, models, alerts, batches, anchor and registry read from their stages", async () => {
    const { src, feed } = await busySource();
    const f = await scrape(metricsFor(src, feed));
    expect(sample(f, "vigil_inference_windows_run_total")).toBe(7);
    expect(sample(f, "vigil_inference_windows_skipped_total", { reason: "superseded" })).toBe(2);
    expect(sample(f, "vigil_inference_windows_skipped_total", { reason: "run_failed" })).toBe(1);
    for (const [reason, n] of [
      ["window-imputed", 4],
      ["row-imputed", 5],
      ["features-lost", 6],
    ] as const)
      expect(sample(f, "vigil_inference_windows_withheld_total", { reason })).toBe(n);
    for (const [reason, n] of [
      ["missing", 10],
      ["out-of-range", 11],
      ["stuck", 12],
      ["spike", 13],
    ] as const)
      expect(sample(f, "vigil_inference_values_flagged_total", { reason })).toBe(n);
    for (const name of ["vigil_inference_windows_withheld_total", "vigil_inference_values_flagged_total"])
      expect(f.get(name)!.samples.map((x) => x.labels.reason)).not.toContain("ok");
    expect(
      sample(f, "vigil_model_info", { model: "rotating-v1-health", version: "1.1.0", role: "shadow" }),
    ).toBe(1);
    expect(fams(f, "vigil_model_info")[0]!.labels).toMatchObject({
      sha256: "5e".repeat(32),
      profiles: "rotating-v1",
    });
    expect(sample(f, "vigil_model_shadow_output_difference", { version: "1.1.0", stat: "max" })).toBe(0.05);
    expect(sample(f, "vigil_model_window_duration_seconds", { version: "1.0.0" })).toBeCloseTo(150e-6, 12);
    expect(sample(f, "vigil_alerts_total", { state: "raised", severity: "critical" })).toBe(1);
    expect(sample(f, "vigil_alerts_total", { state: "cleared", severity: "critical" })).toBe(1);
    expect(sample(f, "vigil_alerts_active", { severity: "warning" })).toBe(1);
    expect(fams(f, "vigil_alerts_active").some((s) => s.labels.severity === "critical")).toBe(false);
    expect(sample(f, "vigil_device_model_output", { device: "00000002", output: "p_fail" })).toBeCloseTo(
      0.7,
      6,
    );
    expect(sample(f, "vigil_batches_sealed_total")).toBe(3);
    expect(sample(f, "vigil_batches_anchored_total")).toBe(1);
    expect(sample(f, "vigil_anchor_backlog_batches")).toBe(2);
    expect(sample(f, "vigil_anchor_lag_seconds")).toBe(42);
    expect(sample(f, "vigil_anchor_last_success_timestamp_seconds")).toBe((NOW_US - 50_000_000) / 1e6);
    expect(sample(f, "vigil_anchor_consecutive_failures")).toBe(1);
    expect(sample(f, "vigil_anchor_gas_used_total")).toBe(52_000);
    expect(sample(f, "vigil_anchor_fee_wei_total", { layer: "l2" })).toBe(1e9);
    expect(sample(f, "vigil_anchor_fee_wei_total", { layer: "l1" })).toBe(7);
    expect(sample(f, "vigil_sealer_backlog_entries")).toBe(5);
    expect(sample(f, "vigil_registry_cache_age_seconds")).toBe(12);
    expect(sample(f, "vigil_store_state", { state: "ok" })).toBe(1);
    expect(sample(f, "vigil_store_state", { state: "corrupt" })).toBe(0);
    expect(sample(f, "vigil_disk_free_bytes")).toBeGreaterThan(0);
    expect(
      sample(f, "vigil_gateway_info", { gateway_id: GATEWAY_ID, gateway: "gw-test", site: "site-9" }),
    ).toBe(1);
    expect(sample(f, "vigil_build_info", { version: "9.9.9" })).toBe(1);
    expect(sample(f, "vigil_ready")).toBe(1);
  });

  it("behavior: figures that are not known are absent, not 0 (anchoring and sealing off, no registry, no fees)", async () => {
    const src = new FakeSource();
    src.registryStatus = undefined; // the hook reports nothing
    const f = await scrape(metricsFor(src));
    for (const name of [
      "vigil_anchor_lag_seconds",
      "vigil_anchor_consecutive_failures",
      "vigil_anchor_last_success_timestamp_seconds",
      "vigil_anchor_gas_used_total",
      "vigil_anchor_fee_wei_total",
      "vigil_sealer_backlog_entries",
      "vigil_registry_cache_age_seconds",
      "vigil_registry_state",
      "vigil_gateway_standing",
      "vigil_sealer_running",
      "vigil_disk_free_bytes", // the data dir does not exist
    ]) {
      expect(f.get(name)?.type, name).toMatch(/gauge|counter/); // declared…
      expect(f.get(name)!.samples, name).toEqual([]); // …without a value
    }
    // An anchor that reports no fees: gas and fees stay absent, lag is 0 with an empty outbox.
    src.anchorStatus = { anchoredThrough: 0, backlog: 0, failures: 0, lastError: null };
    const g = await scrape(metricsFor(src));
    expect(g.get("vigil_anchor_gas_used_total")!.samples).toEqual([]);
    expect(sample(g, "vigil_anchor_lag_seconds")).toBe(0);
    // Batches wait but the oldest cannot be read: the lag is unknown (absent), not 0.
    src.anchorStatus = { anchoredThrough: 0, backlog: 1, failures: 0, lastError: null };
    src.stats = storeStats({ lastBatchSeq: 1 });
    expect((await scrape(metricsFor(src))).get("vigil_anchor_lag_seconds")!.samples).toEqual([]);
  });

  it("behavior: a gateway suspended or revoked in the registry shows on /metrics and in the summary: its standing, sealing stopped, the registry copy's freshness", async () => {
    const { src, feed } = await busySource(); // suspended, not sealing, registry stale
    const f = await scrape(metricsFor(src, feed));
    expect(sample(f, "vigil_gateway_standing", { standing: "suspended" })).toBe(1);
    for (const standing of ["active", "unregistered", "revoked", "key_mismatch"])
      expect(sample(f, "vigil_gateway_standing", { standing })).toBe(0);
    expect(sample(f, "vigil_sealer_running")).toBe(0);
    expect(sample(f, "vigil_registry_state", { state: "stale" })).toBe(1);
    expect(sample(f, "vigil_registry_state", { state: "fresh" })).toBe(0);
    expect(sample(f, "vigil_registry_state", { state: "unsynced" })).toBe(0);
    const summary = await new PageModel(src, feed).stats();
    expect(summary.access).toEqual({ standing: "suspended", sealing: false, registry: "stale" });
    // As the README's "/api/summary" says (the independent client's reading of it).
    expect(summaryProblems(JSON.parse(JSON.stringify(summary)), "/api/summary")).toEqual([]);
    expect(
      summaryProblems({ ...summary, access: { standing: "paused", sealing: 0, registry: "old" } }, "s"),
    ).toEqual([
      "s.access.sealing: 0 is not boolean",
      "s: access.standing paused is not one the README lists",
      "s: access.registry old is not one the README lists",
    ]);

    // Revoked, read at scrape time.
    let view: AccessStatusView | undefined = { standing: "revoked", sealing: false, registry: "fresh" };
    withAccess(src, () => view);
    const g = await scrape(metricsFor(src, feed));
    expect(sample(g, "vigil_gateway_standing", { standing: "revoked" })).toBe(1);
    expect(sample(g, "vigil_gateway_standing", { standing: "suspended" })).toBe(0);
    expect(sample(g, "vigil_registry_state", { state: "fresh" })).toBe(1);

    // Active again: sealing runs.
    view = { standing: "active", sealing: true, registry: "fresh" };
    const h = await scrape(metricsFor(src, feed));
    expect(sample(h, "vigil_gateway_standing", { standing: "active" })).toBe(1);
    expect(sample(h, "vigil_sealer_running")).toBe(1);

    // Before the watch has synced: the standing is unknown (absent), sealing runs, the copy unsynced.
    view = { standing: null, sealing: true, registry: "unsynced" };
    const u = await scrape(metricsFor(src, feed));
    expect(u.get("vigil_gateway_standing")!.samples).toEqual([]);
    expect(sample(u, "vigil_registry_state", { state: "unsynced" })).toBe(1);
    expect(sample(u, "vigil_sealer_running")).toBe(1);
    expect((await new PageModel(src, feed).stats()).access).toEqual(view);

    // Without the registry watch nothing stops sealing; the standing and the state are absent.
    view = undefined;
    const n = await scrape(metricsFor(src, feed));
    expect(sample(n, "vigil_sealer_running")).toBe(1);
    expect(n.get("vigil_gateway_standing")!.samples).toEqual([]);
    expect(n.get("vigil_registry_state")!.samples).toEqual([]);
    expect((await new PageModel(src, feed).stats()).access).toBeNull();
  });

  it("behavior: values are read at scrape time; the oldest unanchored batch is read from the store once", async () => {
    const src = new FakeSource();
    src.anchorStatus = { anchoredThrough: 0, backlog: 1, failures: 0, lastError: null };
    src.stats = storeStats({ lastBatchSeq: 1 });
    src.batches.set(1, fakeBatch(1, NOW_US - 5_000_000));
    const m = metricsFor(src);
    expect(sample(await scrape(m), "vigil_ingest_frames_accepted_total")).toBe(0);
    await src.ingest.handle(dec(data(3, 1, src.clock.nowUs())), "mqtt");
    const f = await scrape(m);
    expect(sample(f, "vigil_ingest_frames_accepted_total")).toBe(1);
    expect(sample(f, "vigil_anchor_lag_seconds")).toBe(5);
    expect(src.getBatchCalls).toBe(1);
    src.currentPhase = "stopping";
    expect(sample(await scrape(m), "vigil_ready")).toBe(0);
  });
});

function fams(f: Map<string, Family>, name: string) {
  return f.get(name)!.samples;
}

describe("latency histograms", () => {
  it("behavior: bucket counts are exact at the power-of-two bounds (known values)", async () => {
    const src = new FakeSource();
    for (const us of [10, 20, 100, 1000, 5000]) src.inference.runLatency.record(us);
    const f = await scrape(metricsFor(src));
    const b = (le: string) => sample(f, "vigil_inference_run_duration_seconds_bucket", { le });
    expect(b("0.000016")).toBe(1);
    expect(b("0.000032")).toBe(2);
    expect(b("0.000128")).toBe(3);
    expect(b("0.001024")).toBe(4);
    expect(b("0.004096")).toBe(4);
    expect(b("0.008192")).toBe(5);
    expect(b("+Inf")).toBe(5);
    expect(sample(f, "vigil_inference_run_duration_seconds_count")).toBe(5);
    expect(sample(f, "vigil_inference_run_duration_seconds_sum")).toBeCloseTo(6130e-6, 12);
    src.store.commitTiming.watermark.record(100);
    expect(sample(await scrape(metricsFor(src)), "vigil_store_commit_watermark_duration_seconds_count")).toBe(
      1,
    );
    src.ingest.counters.durableLatency.record(3000);
    const g = await scrape(metricsFor(src));
    expect(sample(g, "vigil_ingest_durable_latency_seconds_bucket", { le: "0.002048" })).toBe(0);
    expect(sample(g, "vigil_ingest_durable_latency_seconds_bucket", { le: "0.004096" })).toBe(1);
    expect(sample(g, "vigil_ingest_durable_latency_seconds_sum")).toBeCloseTo(0.003, 12);
    // No histogram data (no models): buckets and count are 0.
    src.loop = undefined;
    expect(sample(await scrape(metricsFor(src)), "vigil_inference_frame_to_result_seconds_count")).toBe(0);
  });

  it("property: countAtOrBelow equals a direct count at every bound", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 40_000_000 }), { maxLength: 300 }), (values) => {
        const h = new LatencyHistogram();
        for (const v of values) h.record(v);
        for (const le of LATENCY_BOUNDS_US)
          expect(countAtOrBelow(h, le)).toBe(values.filter((v) => Math.max(v, 1) <= le).length);
      }),
      { numRuns: 200 },
    );
  });
});
