/**
 * The inference loop: frames in (from `Ingest.onStored`, after they are durable), windows out,
 * micro-batched per model into one onnxruntime `run()` per tick.
 *
 * Hot path per frame (`onFrame`): a Map lookup, one normalised row written into the device's
 * ring, and, when the row completes a window, one push onto the model's ready queue. No
 * allocation. Per tick and model: the ready windows of all devices are copied into one
 * preallocated input Float32Array (sized for `maxBatch` windows, reused; the ort.Tensor views
 * over it are cached per batch size), run in one call (more only when more than `maxBatch`
 * devices are ready), then each output row becomes an INFERENCE attestation leaf and a result
 * for the alert rules.
 *
 * Back-pressure: ingest never waits for inference. While a run is in flight, frames keep being
 * stored, acknowledged and pushed into the rings; a device whose window is already queued is
 * not queued twice, and at take time only its newest ready window runs (older ones are counted
 * in `skippedWindows`). The work per tick is therefore bounded by the number of devices, not by
 * the frame rate, and the loop catches up by construction. See README.md.
 */
import { hash } from "node:crypto";
import { performance } from "node:perf_hooks";
import { inferenceLeafPreimage, leafFromPreimage } from "../core/leaf.ts";
import type { DataFrame } from "../protocol/frame.ts";
import type { FrameRecord } from "../core/records.ts";
import { systemClock, type Clock } from "../core/clock.ts";
import { LatencyHistogram } from "./histogram.ts";
import type { LoadedModel, ModelRegistry } from "./registry.ts";
import type { DeviceHistory } from "./history.ts";
import { DeviceWindow, emptyMeta, type WindowMeta } from "./window.ts";
import { createRunner, type BatchRunner, type RunnerKind } from "./worker.ts";

/** An attestation leaf produced by inference or alerting, for the batch sealer. */
export interface AttestLeaf {
  kind: "inference" | "alert";
  /** keccak256 leaf hash (gateway/src/attest/leaf.ts). */
  hash: Uint8Array;
  /** The canonical preimage (kind tag ‖ body ‖ pad) the hash commits to. */
  preimage: Uint8Array;
  deviceId: number;
  timestampUs: number;
}

/** Receives every leaf; must not throw (errors are counted and dropped). */
export type LeafSink = (leaf: AttestLeaf) => void;

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
  inferenceLeaf: Uint8Array;
  /** Gateway clock when the result was produced, µs. */
  atUs: number;
}

export interface InferenceLoopOptions {
  registry: ModelRegistry;
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
   * Stored frames, to warm a device's window when the loop first sees it (history.ts): after a
   * gateway restart its ring and baseline continue from the frame log instead of starting over.
   * Live frames of the device wait (in memory, at most `maxPending`) until the read completes.
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
  onError?: (e: unknown) => void;
}

export interface InferenceCounters {
  framesSeen: number;
  /** Frames of devices without HELLO profile or without a model for their profile. */
  framesUnmodelled: number;
  /** Frames whose channel count, or HELLO channel names, differ from the model manifest's channels. */
  framesSchemaMismatch: number;
  windowsReady: number;
  windowsRun: number;
  /** Older ready windows superseded by a newer one before they ran (stale-window policy). */
  skippedWindows: number;
  /** Windows lost because a run failed. */
  failedWindows: number;
  batches: number;
  ticks: number;
  /** Timer ticks that found the previous tick still running (coalesced into it). */
  overrunTicks: number;
  runErrors: number;
  callbackErrors: number;
  devices: number;
  /** Devices whose window was warmed from stored history, and the history rows used. */
  warmups: number;
  warmupRows: number;
  /** History reads that failed (the device then starts from its live frames). */
  warmupErrors: number;
  /** Live frames dropped because a warm-up held more than `maxPending`. */
  warmupDropped: number;
  /** Wall time of one tick (all models), µs. */
  tickLatency: LatencyHistogram;
  /** onnxruntime run() time per batch, µs. */
  runLatency: LatencyHistogram;
  /** Last frame's gateway arrival to result, µs (gateway clock). */
  frameToResult: LatencyHistogram;
}

interface Lane {
  model: LoadedModel;
  runner: BatchRunner;
  input: Float32Array;
  queue: DeviceWindow[];
  spare: DeviceWindow[];
  batch: DeviceWindow[];
  metas: WindowMeta[];
  outputs: number;
}

export class InferenceLoop {
  readonly counters: InferenceCounters = {
    framesSeen: 0,
    framesUnmodelled: 0,
    framesSchemaMismatch: 0,
    windowsReady: 0,
    windowsRun: 0,
    skippedWindows: 0,
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
    tickLatency: new LatencyHistogram(),
    runLatency: new LatencyHistogram(),
    frameToResult: new LatencyHistogram(),
  };
  readonly devices = new Map<number, DeviceWindow>();
  readonly #o: InferenceLoopOptions;
  readonly #clock: Clock;
  readonly #maxBatch: number;
  readonly #tickMs: number;
  readonly #maxPending: number;
  readonly #warming = new Set<Promise<void>>();
  readonly #lanes = new Map<LoadedModel, Lane>();
  #running: Promise<void> | undefined;
  #again = false;
  #started = false;
  #scheduled = false;
  #timer: NodeJS.Timeout | undefined;

  constructor(opts: InferenceLoopOptions) {
    this.#o = opts;
    this.#clock = opts.clock ?? systemClock;
    this.#maxBatch = opts.maxBatch ?? 128;
    this.#tickMs = opts.tickMs ?? 0;
    this.#maxPending = opts.maxPending ?? 4096;
    if (!Number.isInteger(this.#maxBatch) || this.#maxBatch < 1)
      throw new RangeError(`maxBatch must be a positive integer, got ${this.#maxBatch}`);
    if (!(this.#tickMs >= 0)) throw new RangeError(`tickMs must be ≥ 0, got ${this.#tickMs}`);
    for (const model of opts.registry.models) {
      const metas: WindowMeta[] = [];
      for (let i = 0; i < this.#maxBatch; i++) metas.push(emptyMeta());
      const runner = createRunner(opts.runner ?? "inline", model, this.#maxBatch);
      this.#lanes.set(model, {
        model,
        runner,
        input: runner.input,
        queue: [],
        spare: [],
        batch: new Array<DeviceWindow>(this.#maxBatch),
        metas,
        outputs: model.outputNames.length,
      });
    }
  }

  /** Ingest observer: call with every newly stored DATA frame (`ingest.onStored(loop.onFrame)`). */
  readonly onFrame = (record: FrameRecord, frame: DataFrame): void => {
    const c = this.counters;
    c.framesSeen++;
    const id = record.deviceId;
    let dev = this.devices.get(id);
    const profile = this.#o.profileOf(id);
    if (dev === undefined || dev.profile !== profile) {
      // First frame of the device, or it re-announced itself with another profile.
      const model = this.#o.registry.forProfile(profile);
      if (model === undefined || profile === undefined) {
        if (dev) this.devices.delete(id);
        c.framesUnmodelled++;
        return;
      }
      dev = new DeviceWindow(id, model, profile);
      this.devices.set(id, dev);
      c.devices = this.devices.size;
      if (this.#o.history) {
        dev.pending = [];
        const w = this.#warm(dev, record.seq).finally(() => this.#warming.delete(w));
        this.#warming.add(w);
      }
    }
    const names = this.#o.channelsOf?.(id);
    if (names !== dev.announced) {
      dev.announced = names;
      dev.namesMatch = names === undefined || sameNames(names, dev.model.manifest.inputs.channels);
    }
    if (!dev.namesMatch || frame.values.length !== dev.model.normalizer.channels) {
      c.framesSchemaMismatch++;
      return;
    }
    if (dev.pending) {
      if (dev.pending.length >= this.#maxPending) {
        dev.pending.shift();
        c.warmupDropped++;
      }
      const { seq, timestampUs, receivedUs } = record;
      dev.pending.push({ seq, timestampUs, receivedUs, values: Float32Array.from(frame.values) });
      return;
    }
    this.#accept(dev, frame.values, record.seq, record.timestampUs, record.receivedUs);
  };

  #accept(dev: DeviceWindow, values: ArrayLike<number>, seq: number, tsUs: number, rxUs: number): void {
    if (dev.push(values, seq, tsUs, rxUs)) {
      this.counters.windowsReady++;
      if (!dev.queued) {
        dev.queued = true;
        this.#lanes.get(dev.model)!.queue.push(dev);
      }
      if (this.#started && this.#tickMs === 0) this.#schedule();
    }
  }

  async #warm(dev: DeviceWindow, beforeSeq: number): Promise<void> {
    const c = this.counters;
    const { window, stride } = dev.model.manifest.inputs;
    let rows = 0;
    try {
      const h = await this.#o.history!.read(
        dev.deviceId,
        beforeSeq,
        dev.model.normalizer.baselineRows,
        window + stride - 2,
      );
      if (this.devices.get(dev.deviceId) !== dev) return; // replaced (new profile) meanwhile
      rows = dev.warm(h.first, h.last);
    } catch (e) {
      c.warmupErrors++;
      this.#o.onError?.(e);
    }
    if (this.devices.get(dev.deviceId) !== dev) return;
    if (rows > 0) {
      c.warmups++;
      c.warmupRows += rows;
    }
    const pending = dev.pending ?? [];
    dev.pending = undefined;
    for (const p of pending) this.#accept(dev, p.values, p.seq, p.timestampUs, p.receivedUs);
  }

  start(): void {
    if (this.#started) return;
    this.#started = true;
    if (this.#tickMs > 0) {
      this.#timer = setInterval(() => void this.tick(), this.#tickMs);
      this.#timer.unref?.();
    } else this.#schedule();
  }

  /** Stops scheduling and waits for the warm-ups and the tick in progress. */
  async stop(): Promise<void> {
    this.#started = false;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.warmed();
    await this.#running;
  }

  /** Resolves when no device is being warmed from history (its held frames are in its ring). */
  async warmed(): Promise<void> {
    while (this.#warming.size > 0) await Promise.all(this.#warming);
  }

  /** Resolves when every model's runner is ready (worker: session created and warmed up). */
  async ready(): Promise<void> {
    await Promise.all([...this.#lanes.values()].map((l) => l.runner.ready));
  }

  /** Stops, then ends the runners (worker threads). Final. */
  async close(): Promise<void> {
    await this.stop();
    await Promise.all([...this.#lanes.values()].map((l) => l.runner.close()));
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      if (this.#started) void this.tick();
    });
  }

  /** Windows waiting for the next tick, all models. */
  get pending(): number {
    let n = 0;
    for (const l of this.#lanes.values()) n += l.queue.length;
    return n;
  }

  /**
   * Runs every ready window once (one onnxruntime call per model and `maxBatch` windows). If a
   * tick is already running, the call is coalesced: another tick follows right after it.
   */
  tick(): Promise<void> {
    if (this.#running) {
      this.counters.overrunTicks++;
      this.#again = true;
      return this.#running;
    }
    const p = this.#tick().finally(() => {
      this.#running = undefined;
      if (this.#again) {
        this.#again = false;
        if (this.pending > 0 && (this.#started || this.#tickMs === 0)) void this.tick();
      }
    });
    this.#running = p;
    return p;
  }

  async #tick(): Promise<void> {
    const t0 = performance.now();
    this.counters.ticks++;
    for (const lane of this.#lanes.values()) {
      if (lane.queue.length === 0) continue;
      // Double buffer: windows that become ready while this tick runs go to the next tick.
      const work = lane.queue;
      lane.queue = lane.spare;
      lane.spare = work;
      for (let at = 0; at < work.length; at += this.#maxBatch) {
        const n = Math.min(this.#maxBatch, work.length - at);
        await this.#runBatch(lane, work, at, n);
      }
      work.length = 0;
    }
    this.counters.tickLatency.record((performance.now() - t0) * 1000);
  }

  async #runBatch(lane: Lane, work: DeviceWindow[], at: number, n: number): Promise<void> {
    const c = this.counters;
    const per = lane.model.windowValues;
    for (let i = 0; i < n; i++) {
      const dev = work[at + i]!;
      dev.queued = false;
      lane.batch[i] = dev;
      c.skippedWindows += dev.take(lane.input, i * per, lane.metas[i]!);
    }
    const { model } = lane;
    let data: Float32Array[];
    const r0 = performance.now();
    try {
      data = await lane.runner.run(n);
    } catch (e) {
      c.runErrors++;
      c.failedWindows += n;
      this.#o.onError?.(e);
      return;
    }
    c.runLatency.record((performance.now() - r0) * 1000);
    c.batches++;
    c.windowsRun += n;
    const names = model.outputNames;
    let width = 0;
    for (const d of data) width += d.length / n;
    const nowUs = this.#clock.nowUs();
    for (let i = 0; i < n; i++) {
      const dev = lane.batch[i]!;
      const meta = lane.metas[i]!;
      // One-shot hash: no Hash object per window; the returned Buffer is fresh (not pooled).
      const windowHash = hash(
        "sha256",
        new Uint8Array(lane.input.buffer, lane.input.byteOffset + i * per * 4, per * 4),
        "buffer",
      );
      const outputs = new Float32Array(names.length);
      const all = new Float32Array(width);
      let o = 0;
      for (let k = 0; k < data.length; k++) {
        const d = data[k]!;
        const w = d.length / n;
        outputs[k] = d[i * w]!;
        for (let j = 0; j < w; j++) all[o++] = d[i * w + j]!;
      }
      const preimage = inferenceLeafPreimage({
        modelHash: model.modelHash,
        inputWindowHash: windowHash,
        deviceId: dev.deviceId,
        timestampUs: meta.lastTimestampUs,
        outputs: all,
      });
      const leaf = leafFromPreimage(preimage);
      c.frameToResult.record(nowUs - meta.lastReceivedUs);
      const result: InferenceResult = {
        model,
        deviceId: dev.deviceId,
        profile: dev.profile,
        window: { ...meta },
        windowHash,
        outputs,
        allOutputs: all,
        inferenceLeaf: leaf,
        atUs: nowUs,
      };
      try {
        this.#o.onLeaf?.({
          kind: "inference",
          hash: leaf,
          preimage,
          deviceId: dev.deviceId,
          timestampUs: meta.lastTimestampUs,
        });
        this.#o.onResult?.(result);
      } catch (e) {
        c.callbackErrors++;
        this.#o.onError?.(e);
      }
    }
    for (let i = 0; i < n; i++) lane.batch[i] = undefined as unknown as DeviceWindow;
  }

  /** Plain snapshot for logs and metrics. */
  snapshot(): Record<string, unknown> {
    const c = this.counters;
    return {
      framesSeen: c.framesSeen,
      framesUnmodelled: c.framesUnmodelled,
      framesSchemaMismatch: c.framesSchemaMismatch,
      windowsReady: c.windowsReady,
      windowsRun: c.windowsRun,
      skippedWindows: c.skippedWindows,
      failedWindows: c.failedWindows,
      batches: c.batches,
      ticks: c.ticks,
      overrunTicks: c.overrunTicks,
      runErrors: c.runErrors,
      callbackErrors: c.callbackErrors,
      devices: c.devices,
      warmups: c.warmups,
      warmupRows: c.warmupRows,
      warmupErrors: c.warmupErrors,
      warmupDropped: c.warmupDropped,
      tickLatency: c.tickLatency.snapshot(),
      runLatency: c.runLatency.snapshot(),
      frameToResult: c.frameToResult.snapshot(),
    };
  }
}

function sameNames(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
