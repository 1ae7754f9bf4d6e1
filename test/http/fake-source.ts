/**
 * A MetricsSource for unit tests: the real ingest counters (fed through a real Ingest), the real
 * inference counters and latency histograms, and hand-set store, anchor, lane and registry
 * figures. Integration tests use the real Runtime (test/http/runtime.test.ts).
 */
import type { AnchorRecord, SealedBatch, StoreStats } from "../../gateway/src/store/types.ts";
import type { AlertCounters } from "../../gateway/src/alerts/service.ts";
import { FakeClock } from "../../gateway/src/core/clock.ts";
import { LatencyHistogram } from "../../gateway/src/core/histogram.ts";
import type { InferenceCounters, LaneInfo } from "../../gateway/src/infer/loop.ts";
import type { LoadedModel } from "../../gateway/src/infer/registry.ts";
import { Ingest } from "../../gateway/src/ingest/ingest.ts";
import { MemorySink } from "../../gateway/src/ingest/memory-sink.ts";
import type { IngestSource } from "../../gateway/src/ingest/source.ts";
import type { HttpStats } from "../../gateway/src/http/metrics.ts";
import type {
  AnchorStatusView,
  GatewayPhase,
  MetricsSource,
  RegistryStatusView,
  UpdatesStatusView,
} from "../../gateway/src/http/source.ts";

export const GATEWAY_ID = "0x" + "ab".repeat(32);

export function storeStats(over: Partial<StoreStats> = {}): StoreStats {
  return {
    state: "ok",
    lastIndex: 0,
    liveFrames: 0,
    liveBytes: 0,
    sealedThrough: 0,
    lastBatchSeq: 0,
    anchoredThrough: 0,
    prunedThrough: 0,
    pending: 0,
    commits: 0,
    leavesStored: 0,
    leafFailures: 0,
    guardErrors: 0,
    retentionClockUs: 0,
    lastError: null,
    ...over,
  };
}

export function inferenceCounters(): InferenceCounters {
  return {
    framesSeen: 0,
    framesUnmodelled: 0,
    framesSchemaMismatch: 0,
    windowsReady: 0,
    windowsRun: 0,
    skippedWindows: 0,
    windowsWithheld: 0,
    windowsWithheldBy: [0, 0, 0, 0],
    valuesFlagged: [0, 0, 0, 0, 0],
    sensorFaultsRaised: 0,
    sensorFaultsCleared: 0,
    failedWindows: 0,
    batches: 0,
    ticks: 0,
    overrunTicks: 0,
    runErrors: 0,
    callbackErrors: 0,
    devices: 0,
    warmups: 0,
    warmupRows: 0,
    warmupErrors: 0,
    warmupDropped: 0,
    warmupDamaged: 0,
    promotions: 0,
    tickLatency: new LatencyHistogram(),
    runLatency: new LatencyHistogram(),
    frameToResult: new LatencyHistogram(),
  };
}

/** A LoadedModel with just what the endpoint reads (manifest name, version, profiles, outputs; sha256). */
export function fakeModel(name: string, version: string, profiles: string[]): LoadedModel {
  return {
    manifest: {
      name,
      version,
      devices: { profiles },
      outputs: [{ name: "p_fail", shape: ["batch"], unit: "probability", meaning: "", min: 0, max: 1 }],
    },
    sha256: "5e".repeat(32),
  } as unknown as LoadedModel;
}

export class FakeSource implements MetricsSource {
  readonly clock = new FakeClock();
  readonly config = {
    dataDir: "/nonexistent-vigil-test",
    site: "site-9",
    attest: { gatewayName: "gw-test" },
  };
  readonly gatewayId = GATEWAY_ID;
  readonly ingest = new Ingest({ sink: new MemorySink(), clock: this.clock });
  stats = storeStats();
  readonly batches = new Map<number, SealedBatch>();
  readonly anchors = new Map<number, AnchorRecord>();
  getBatchCalls = 0;
  readonly store = {
    stats: () => this.stats,
    commitTiming: { write: new LatencyHistogram(), watermark: new LatencyHistogram() },
    getBatch: (seq: number) => {
      this.getBatchCalls++;
      return Promise.resolve(this.batches.get(seq));
    },
    getAnchor: (seq: number) => Promise.resolve(this.anchors.get(seq)),
  };
  sources: IngestSource[] = [
    {
      name: "mqtt:embedded",
      start: async () => {},
      stop: async () => {},
      stats: () => ({ connects: 2, retries: 0 }),
      clients: () => 3,
      storedSessions: () => ({ sessions: 2, messages: 40, inbound: 3, bytes: 3168 }),
    },
  ];
  readonly inference = inferenceCounters();
  laneInfos: LaneInfo[] = [];
  loop: MetricsSource["loop"] = { counters: this.inference, lanes: () => this.laneInfos };
  readonly alertCounters: AlertCounters = {
    raised: 0,
    cleared: 0,
    alertsPublished: 0,
    healthPublished: 0,
    healthThrottled: 0,
    healthFlushed: 0,
    publishErrors: 0,
    sensorFaultsRaised: 0,
    sensorFaultsCleared: 0,
    deviceStatusPublished: 0,
    gatewayAlertsRaised: 0,
    gatewayAlertsCleared: 0,
    readingsPublished: 0,
    readingsThrottled: 0,
  };
  readonly alerts = { counters: this.alertCounters };
  sealer: MetricsSource["sealer"] = undefined;
  anchorStatus: AnchorStatusView | undefined;
  get anchor(): MetricsSource["anchor"] {
    const s = this.anchorStatus;
    return s ? { status: () => s } : undefined;
  }
  currentPhase: GatewayPhase = "running";
  phase(): GatewayPhase {
    return this.currentPhase;
  }
  registryStatus: RegistryStatusView | undefined;
  registry(): RegistryStatusView | undefined {
    return this.registryStatus;
  }
  /** The update agents (status and operator actions); undefined: updates are off. */
  updates: MetricsSource["updates"] = undefined;
}

/** A sealed batch record with what the endpoint reads (seq, leaf count, seal time). */
export function fakeBatch(seq: number, sealedAtUs: number, leafCount = 10): SealedBatch {
  return { header: { seq, leafCount }, sealedAtUs } as unknown as SealedBatch;
}

/** Update agents that only report `status` (the operator actions do nothing). */
export function fakeUpdates(status: UpdatesStatusView): NonNullable<MetricsSource["updates"]> {
  return {
    status: () => status,
    check: () => Promise.resolve(),
    retry: () => Promise.resolve({ model: false, firmwareDevices: [] }),
  };
}

/** An HTTP endpoint that has served nothing yet (GatewayMetrics' `http`, for tests without a server). */
export const idleHttp = (): HttpStats => ({
  sseClients: 0,
  sseSkipped: 0,
  sseEvicted: 0,
  requests: new Map(),
  connectionsDropped: 0,
  clientErrors: new Map(),
});
