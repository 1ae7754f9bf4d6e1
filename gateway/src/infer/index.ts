/**
 * Composition entry point of the inference stage: models → per-device windows → micro-batched
 * onnxruntime → alert rules → MQTT, plus attestation leaves for every result and alert.
 *
 *   const inference = await createInference({ modelsDir, ingest, publisher, site, gatewayId, onLeaf });
 *   await inference.start();   // publishes status online (retained)
 *   …
 *   await inference.stop();    // waits for the running tick, flushes health, publishes offline
 *
 * Stop it before the broker it publishes through (the offline status needs the broker).
 */
import type { DeviceHistory } from "./history.ts";
import type { Ingest } from "../ingest/ingest.ts";
import { systemClock, type Clock } from "../core/clock.ts";
import { AlertService, type AlertCounters } from "../alerts/service.ts";
import type { AlertPayload } from "../alerts/payloads.ts";
import type { AlertPublisher } from "../alerts/publisher.ts";
import { InferenceLoop, type LeafSink } from "./loop.ts";
import { ModelRegistry, type RegistryOptions } from "./registry.ts";
import type { RunnerKind } from "./worker.ts";
import type { FrameRecord } from "../core/records.ts";
import type { DataFrame } from "../protocol/frame.ts";

export type { AttestLeaf, InferenceResult, LeafSink, InferenceCounters } from "./loop.ts";
export { InferenceLoop } from "./loop.ts";
export { ModelRegistry, type LoadedModel } from "./registry.ts";
export type { RunnerKind } from "./worker.ts";

export interface CreateInferenceOptions {
  /** Folder searched recursively for `*.manifest.json` (e.g. `models/`). */
  modelsDir: string;
  ingest: Ingest;
  publisher: AlertPublisher;
  /** MQTT topic level for the site (sanitised, see alerts/topics.ts). */
  site: string;
  /** MQTT topic level for this gateway (sanitised). */
  gatewayId: string;
  clock?: Clock;
  /** Receives every INFERENCE and ALERT leaf (connect it to the batch sealer). */
  onLeaf?: LeafSink;
  /** onnxruntime intra-op threads per model. Default 1. */
  threads?: number;
  /** onnxruntime CPU memory arena / memory pattern (registry.ts). Default false / false. */
  memArena?: boolean;
  memPattern?: boolean;
  /** "inline" (default): run() on the main thread; "worker": in a worker_thread (worker.ts). */
  runner?: RunnerKind;
  /** Largest batch per onnxruntime call. Default 128 (loop.ts). */
  maxBatch?: number;
  /** 0 (default): event-driven ticks; > 0: fixed tick period in ms. */
  tickMs?: number;
  /**
   * Stored frames to warm each device's window when first seen (e.g. `storeHistory(store)`):
   * after a restart, windows and baselines continue from the frame log. Default: none.
   */
  history?: DeviceHistory;
  /** Per-device health publication interval. Default 1000 ms. */
  healthIntervalMs?: number;
  onAlert?: (a: AlertPayload) => void;
  onError?: (e: unknown) => void;
}

export interface Inference {
  readonly registry: ModelRegistry;
  readonly loop: InferenceLoop;
  readonly alerts: AlertService;
  /** Live counters of the loop and the alert service. */
  readonly counters: { loop: InferenceLoop["counters"]; alerts: AlertCounters };
  /** Connects the publisher, publishes status online, starts ticking. */
  start(): Promise<void>;
  /** Waits for the running tick, flushes health, publishes offline, releases sessions (final). */
  stop(): Promise<void>;
  /** Plain snapshot for logs / metrics. */
  snapshot(): Record<string, unknown>;
}

/**
 * Loads and verifies every model (typed errors: ModelManifestError, ModelHashMismatchError,
 * ModelProfileConflictError, ModelLoadError), then wires ingest → loop → alerts. Frames stored
 * before `start()` are ignored.
 */
export async function createInference(opts: CreateInferenceOptions): Promise<Inference> {
  const clock = opts.clock ?? systemClock;
  const tuning: RegistryOptions = {};
  if (opts.threads !== undefined) tuning.threads = opts.threads;
  if (opts.memArena !== undefined) tuning.memArena = opts.memArena;
  if (opts.memPattern !== undefined) tuning.memPattern = opts.memPattern;
  const registry = await ModelRegistry.load(opts.modelsDir, tuning);
  const alerts = new AlertService({
    publisher: opts.publisher,
    site: opts.site,
    gatewayId: opts.gatewayId,
    models: registry.models,
    clock,
    ...(opts.onLeaf ? { onLeaf: opts.onLeaf } : {}),
    ...(opts.healthIntervalMs !== undefined ? { healthIntervalMs: opts.healthIntervalMs } : {}),
    ...(opts.onAlert ? { onAlert: opts.onAlert } : {}),
    ...(opts.onError ? { onError: opts.onError } : {}),
  });
  const loop = new InferenceLoop({
    registry,
    profileOf: (id) => opts.ingest.counters.devices.get(id)?.profile,
    channelsOf: (id) => opts.ingest.counters.devices.get(id)?.channelNames,
    clock,
    onResult: alerts.onResult,
    ...(opts.onLeaf ? { onLeaf: opts.onLeaf } : {}),
    ...(opts.maxBatch !== undefined ? { maxBatch: opts.maxBatch } : {}),
    ...(opts.tickMs !== undefined ? { tickMs: opts.tickMs } : {}),
    ...(opts.runner !== undefined ? { runner: opts.runner } : {}),
    ...(opts.history ? { history: opts.history } : {}),
    ...(opts.onError ? { onError: opts.onError } : {}),
  });
  let started = false;
  let stopped = false;
  // Windows must be in time order: feed each device's frames only in increasing sequence, so
  // late (out-of-order) frames and resends of frames already seen are left to the store. Frames
  // the store refused (disk full) are fed too, so alerts keep flowing while it is down.
  const lastFed = new Map<number, number>();
  const feed = (record: FrameRecord, frame: DataFrame): void => {
    if (!started) return;
    const last = lastFed.get(record.deviceId);
    if (last !== undefined && record.seq <= last) return;
    lastFed.set(record.deviceId, record.seq);
    loop.onFrame(record, frame);
  };
  opts.ingest.onStored(feed);
  opts.ingest.onUnstored(feed);
  return {
    registry,
    loop,
    alerts,
    counters: { loop: loop.counters, alerts: alerts.counters },
    async start() {
      if (started) return;
      if (stopped) throw new RangeError("createInference: stop() released the models; create a new instance");
      await loop.ready();
      await alerts.start();
      started = true;
      loop.start();
    },
    async stop() {
      if (!started) return;
      started = false;
      stopped = true;
      await loop.close();
      await alerts.stop();
      await registry.release();
    },
    snapshot: () => ({ models: registry.describe(), loop: loop.snapshot(), alerts: { ...alerts.counters } }),
  };
}
