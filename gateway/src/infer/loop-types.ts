/** The inference loop's public types: its results, options, counters and lane view (loop.ts). */
import type { Clock } from "../core/clock.ts";
import type { LeafSink } from "../core/records.ts";
import type { DeviceHistory } from "./history.ts";
import type { LatencyHistogram } from "../core/histogram.ts";
import type { ShadowStats } from "./lane.ts";
import type { LoadedModel, ModelRegistry } from "./registry.ts";
import type { DeviceQualityStatus, SensorFaultTransition } from "./quality-events.ts";
import type { WindowMeta } from "./window.ts";
import type { RunnerKind } from "./worker.ts";

/** One inference output for one device window. */
export interface InferenceResult {
  model: LoadedModel;
  deviceId: number;
  /** The device's HELLO profile that selected the model. */
  profile: string;
  window: WindowMeta;
  /** sha256 of the exact float32 (little-endian) window bytes fed to the model. */
  windowHash: Uint8Array;
  /** One value per manifest output (first element of each output row), manifest order. */
  outputs: Float32Array;
  /** Every value of every output for this row, manifest order (what the leaf commits to). */
  allOutputs: Float32Array;
  /** keccak256 INFERENCE leaf (live results; empty for a shadow's results, which are not attested). */
  inferenceLeaf: Uint8Array;
  /** Gateway clock when the result was produced, µs. */
  atUs: number;
}

export interface InferenceLoopOptions {
  /** The models that are live at start (more can be added with addLive / addShadow). */
  registry?: Pick<ModelRegistry, "models">;
  /** Device profile from HELLO (e.g. `id => ingest.counters.devices.get(id)?.profile`). */
  profileOf: (deviceId: number) => string | undefined;
  /**
   * Channel names the device announced in HELLO (frame order). When given, a device whose names
   * differ from its model's `inputs.channels` is not run: its frames count as
   * `framesSchemaMismatch` (same count, other order or meaning would be silently misread).
   * Checked again whenever the returned array changes (a new HELLO). Default: count check only.
   */
  channelsOf?: (deviceId: number) => readonly string[] | undefined;
  /**
   * Stored frames, to warm a device's window when a lane first sees it (history.ts): after a
   * gateway restart, or when a shadow lane is added, its ring and baseline continue from the
   * frame log instead of starting over. Live frames of the device wait (in memory, at most
   * `maxPending`) until the read completes.
   */
  history?: DeviceHistory;
  /** Live frames held per device during a warm-up; older ones are dropped beyond it. Default 4096. */
  maxPending?: number;
  clock?: Clock;
  /**
   * Largest batch per onnxruntime call. Default 128: onnxruntime's per-row cost is lowest around
   * batch 64–256 on the dev box (bench/infer.ts), larger batches lose the cache and grow the
   * arena's high-water mark, and an inline run of 128 windows of the heaviest model blocks the
   * event loop ≈ 6 ms at most. More ready windows run as several calls in one tick.
   */
  maxBatch?: number;
  /**
   * Ready windows kept per device until they run (window.ts). Default 1: only the newest window
   * runs, older ones are skipped. The gateway runs with `models.windowBacklog` (default 8): a
   * device whose next window became ready while a batch was in flight loses nothing, and a burst
   * waits at most 8 windows deep. Beyond the backlog the oldest waiting window is skipped and
   * counted (`skippedWindows`).
   */
  windowBacklog?: number;
  /**
   * Tick period in ms once started. 0 (default): event-driven, a tick is scheduled with
   * setImmediate as soon as a window is ready and none is running, so a batch holds whatever
   * became ready while the previous run was in flight.
   */
  tickMs?: number;
  /**
   * Where `session.run()` executes (worker.ts): "inline" (default) on the main thread, which it
   * blocks for the whole batch, or "worker": a session of the same bytes in a worker_thread, so
   * ingest and alerts keep running while the model runs. Call `close()` to end the workers.
   */
  runner?: RunnerKind;
  onLeaf?: LeafSink;
  onResult?: (r: InferenceResult) => void;
  /** Every result of a shadow lane (not published, not attested). */
  onShadowResult?: (r: InferenceResult, stats: ShadowStats) => void;
  /** A sensor fault of a live device was raised or cleared (quality-events.ts). Must not throw. */
  onSensorFault?: (t: SensorFaultTransition) => void;
  /**
   * A live device's data-quality / commissioning status changed: first frame, window withheld or
   * running again, a sensor fault raised or cleared, baseline complete (quality-events.ts).
   */
  onDeviceStatus?: (s: DeviceQualityStatus) => void;
  onError?: (e: unknown) => void;
}

export interface InferenceCounters {
  framesSeen: number;
  /** Frames of devices without HELLO profile or without a model for their profile. */
  framesUnmodelled: number;
  /** Frames whose channel count, or HELLO channel names, differ from the model manifest's channels. */
  framesSchemaMismatch: number;
  /** Live windows (shadow lanes count their own, see `lanes()`). */
  windowsReady: number;
  windowsRun: number;
  /**
   * Live windows not run: ready windows dropped past `windowBacklog` or whose rows the ring had
   * overwritten before they ran (window.ts), or superseded at a promotion.
   */
  skippedWindows: number;
  /** Windows lost because a run failed. */
  failedWindows: number;
  /** onnxruntime calls, all lanes. */
  batches: number;
  ticks: number;
  /** Ticks (timer or event-driven) that found the previous tick still running (coalesced into it). */
  overrunTicks: number;
  runErrors: number;
  callbackErrors: number;
  devices: number;
  /** Device windows warmed from stored history, and the history rows used. */
  warmups: number;
  warmupRows: number;
  /** History reads that failed (the window then starts from live frames). */
  warmupErrors: number;
  /** Live frames dropped because a warm-up held more than `maxPending`. */
  warmupDropped: number;
  /** Stored frames a warm-up found damaged (they no longer decode) and skipped. */
  warmupDamaged: number;
  /** Promotions of a shadow lane to live. */
  promotions: number;
  /** Live windows withheld for data quality (no prediction; a `data-quality` status instead). */
  windowsWithheld: number;
  /** The same, by window verdict: index into quality.ts WINDOW_VERDICTS (index 0, `ok`, stays 0). */
  windowsWithheldBy: number[];
  /**
   * Used-channel values of live frames the data-quality stage flagged (imputed, never fed raw), by
   * verdict: index into quality.ts QUALITY_REASONS (index 0, `ok`, stays 0).
   */
  valuesFlagged: number[];
  /** Sensor faults raised and cleared on live devices. */
  sensorFaultsRaised: number;
  sensorFaultsCleared: number;
  /** Wall time of one tick (all lanes), µs. */
  tickLatency: LatencyHistogram;
  /** onnxruntime run() time per batch, µs. */
  runLatency: LatencyHistogram;
  /** Last frame's gateway arrival to result, µs (gateway clock). */
  frameToResult: LatencyHistogram;
}

/** What a lane is doing, for status, logs and the update agent. */
export interface LaneInfo {
  model: LoadedModel;
  role: "live" | "shadow" | "retired";
  /** For a shadow: the live model it is compared with. */
  shadowOf: LoadedModel | undefined;
  windowsRun: number;
  usPerWindow: number;
  /** Where its runs execute (worker.ts): a shadow the update agent added runs in a worker. */
  runner: RunnerKind;
  shadow: ShadowStats | undefined;
}
