/**
 * The inference loop: frames in (from `Ingest.onStored`, after they are durable), windows out,
 * micro-batched per model into one onnxruntime `run()` per tick and lane.
 *
 * Hot path per frame (`onFrame`): a Map lookup, one normalised row written into the device's
 * ring per lane, and, when the row completes a window, one push onto the lane's ready queue.
 * No allocation. Per tick and lane: the ready windows of all devices are copied into one
 * preallocated input Float32Array (sized for `maxBatch` windows, reused; the ort.Tensor views
 * over it are cached per batch size), run in one call (more only when more than `maxBatch`
 * devices are ready), then each output row of a live lane becomes an INFERENCE attestation leaf
 * and a result for the alert rules.
 *
 * Lanes (lane.ts): each loaded model is a lane. A device is routed to the live lane of its HELLO
 * profile; `addShadow` runs a candidate model beside a live one on the same frames (its outputs
 * are compared, never published or attested), `promote` makes it live atomically between ticks,
 * `unload` releases a lane. The live result stream of a device never repeats or goes back: a live
 * window is published only when its last frame is newer than the last one published for that
 * device, so a promotion neither loses nor double-counts a window (the candidate's newest shadow
 * result is published at promotion when it is newer than the last live one).
 *
 * Back-pressure: ingest never waits for inference. While a run is in flight, frames keep being
 * stored, acknowledged and pushed into the rings; a device whose window is already queued is
 * not queued twice. A batch takes one window per queued device, its oldest waiting one; a device
 * with more waiting is queued again for the next tick, which follows at once. Each device keeps
 * at most `windowBacklog` waiting windows (older ones are counted in `skippedWindows`), so the work
 * per tick is bounded by the number of devices, not by the frame rate, and the memory by the
 * backlog. See README.md.
 */
import { hash } from "node:crypto";
import { performance } from "node:perf_hooks";
import { inferenceLeafPreimage, leafFromPreimage } from "../core/leaf.ts";
import type { FrameRecord } from "../core/records.ts";
import type { DataFrame } from "../protocol/frame.ts";
import { systemClock, type Clock } from "../core/clock.ts";
import { InferError, ModelProfileConflictError, LaneError } from "./errors.ts";
import { LatencyHistogram } from "../core/histogram.ts";
import { untilAborted } from "../core/abort.ts";
import { releaseModel, type LoadedModel } from "./registry.ts";
import { Lane } from "./lane.ts";
import { DeviceWindow } from "./window.ts";
import { deviceQualityStatus, sensorFaultTransitions, type DeviceQualityStatus } from "./quality-events.ts";
import { QUALITY_REASONS, WINDOW_VERDICTS } from "./features/quality.ts";
import type { RunnerKind } from "./worker.ts";

export type { LeafRecord, LeafSink } from "../core/records.ts";
export type { InferenceCounters, InferenceLoopOptions, InferenceResult, LaneInfo } from "./loop-types.ts";
import type { InferenceCounters, InferenceLoopOptions, InferenceResult, LaneInfo } from "./loop-types.ts";

/** A device's routing and per-lane windows. */
interface DeviceSlot {
  id: number;
  profile: string;
  live: Lane;
  windows: Map<Lane, DeviceWindow>;
  /** lastSeq of the last window published live; -1 before the first. */
  lastLive: number;
  /** The last live result's first output, keyed by its window's last seq (shadow comparison). */
  liveSeq: number;
  liveValue: number;
  /** The newest result of each shadow lane (compared with live; published at promotion). */
  shadowLast: Map<Lane, InferenceResult>;
}

const EMPTY = new Uint8Array(0);

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
    warmupDamaged: 0,
    promotions: 0,
    windowsWithheld: 0,
    windowsWithheldBy: WINDOW_VERDICTS.map(() => 0),
    valuesFlagged: QUALITY_REASONS.map(() => 0),
    sensorFaultsRaised: 0,
    sensorFaultsCleared: 0,
    tickLatency: new LatencyHistogram(),
    runLatency: new LatencyHistogram(),
    frameToResult: new LatencyHistogram(),
  };
  readonly #o: InferenceLoopOptions;
  readonly #clock: Clock;
  readonly #maxBatch: number;
  readonly #backlog: number;
  readonly #tickMs: number;
  readonly #maxPending: number;
  readonly #runner: RunnerKind;
  readonly #slots = new Map<number, DeviceSlot>();
  /** The last profile each device announced with a model frame (a switch starts a fresh window). */
  readonly #announced = new Map<number, string>();
  /** Last seq fed per device: frames are fed in increasing sequence only (windows in time order). */
  readonly #fed = new Map<number, number>();
  readonly #warming = new Set<Promise<void>>();
  /** Every lane, live ones first (tick order). */
  #lanes: Lane[] = [];
  readonly #byProfile = new Map<string, Lane>();
  #running: Promise<void> | undefined;
  #again = false;
  #started = false;
  /** Set by stop(): frames are no longer fed (start() clears it). */
  #stopped = false;
  #scheduled = false;
  #timer: NodeJS.Timeout | undefined;

  constructor(opts: InferenceLoopOptions) {
    this.#o = opts;
    this.#clock = opts.clock ?? systemClock;
    this.#maxBatch = opts.maxBatch ?? 128;
    this.#backlog = opts.windowBacklog ?? 1;
    if (!Number.isInteger(this.#backlog) || this.#backlog < 1)
      throw new RangeError(`windowBacklog must be a positive integer, got ${this.#backlog}`);
    this.#tickMs = opts.tickMs ?? 0;
    this.#maxPending = opts.maxPending ?? 4096;
    this.#runner = opts.runner ?? "inline";
    if (!Number.isInteger(this.#maxBatch) || this.#maxBatch < 1)
      throw new RangeError(`maxBatch must be a positive integer, got ${this.#maxBatch}`);
    if (!(this.#tickMs >= 0)) throw new RangeError(`tickMs must be ≥ 0, got ${this.#tickMs}`);
    for (const model of opts.registry?.models ?? []) this.#addLiveLane(model);
  }

  // ------------------------------------------------------------------ lanes

  #addLiveLane(model: LoadedModel): Lane {
    for (const p of model.manifest.devices.profiles) {
      const other = this.#byProfile.get(p);
      if (other) throw new ModelProfileConflictError(p, other.model.manifestPath, model.manifestPath);
    }
    const lane = new Lane(model, "live", this.#runner, this.#maxBatch);
    for (const p of model.manifest.devices.profiles) this.#byProfile.set(p, lane);
    this.#lanes = [
      ...this.#lanes.filter((l) => l.role === "live"),
      lane,
      ...this.#lanes.filter((l) => l.role !== "live"),
    ];
    return lane;
  }

  #lane(model: LoadedModel): Lane {
    const lane = this.#lanes.find((l) => l.model === model);
    if (!lane) throw new LaneError(model.manifest.name, "is not loaded in the inference loop");
    return lane;
  }

  /** The live model serving devices that announced `profile`; undefined when none does. */
  forProfile(profile: string | undefined): LoadedModel | undefined {
    return profile === undefined ? undefined : this.#byProfile.get(profile)?.model;
  }

  /** The models currently live (one per profile set). */
  get models(): LoadedModel[] {
    return this.#lanes.filter((l) => l.role === "live").map((l) => l.model);
  }

  /** The live lane's window of a device (undefined before its first modelled frame). */
  liveWindow(deviceId: number): DeviceWindow | undefined {
    const slot = this.#slots.get(deviceId);
    return slot?.windows.get(slot.live);
  }

  /**
   * The data-quality and commissioning status of every modelled device (its live lane), as the
   * retained `device-status` message carries it (for status endpoints and `vigil` tools; allocates).
   */
  deviceStatuses(): DeviceQualityStatus[] {
    const now = this.#clock.nowUs();
    const out: DeviceQualityStatus[] = [];
    for (const slot of this.#slots.values()) {
      const dev = slot.windows.get(slot.live);
      if (dev && dev.lastSeq >= 0) out.push(deviceQualityStatus(dev, now));
    }
    return out;
  }

  /** Every lane with its role and figures. */
  lanes(): LaneInfo[] {
    return this.#lanes.map((l) => ({
      model: l.model,
      role: l.role,
      shadowOf: l.shadowOf?.model,
      windowsRun: l.counters.windowsRun,
      usPerWindow: l.usPerWindow(),
      runner: l.runner.kind,
      shadow: l.role === "shadow" ? l.shadowStats() : undefined,
    }));
  }

  /** Adds a live lane for a model whose profiles no other live model serves. */
  async addLive(model: LoadedModel): Promise<void> {
    const lane = this.#addLiveLane(model);
    await lane.runner.ready;
  }

  /**
   * Runs `candidate` in shadow beside the live `of`: same frames, its own windows (warmed from
   * the frame log like a restart), outputs compared but not published or attested. The
   * candidate must serve exactly the same device profiles.
   * @param runner Where its runs execute (worker.ts); default the loop's `runner`. It keeps that
   *   runner when it is promoted. "worker" needs no main-thread session (`deferSession`) and
   *   creates and warms the session in the worker, off the thread ingest shares.
   * @param signal Aborts the wait for the runner (a stop): rejects with its reason, the runner closed.
   */
  async addShadow(
    candidate: LoadedModel,
    of: LoadedModel,
    runner: RunnerKind = this.#runner,
    signal?: AbortSignal,
  ): Promise<void> {
    const live = this.#lane(of);
    if (live.role !== "live") throw new LaneError(of.manifest.name, "is not live");
    if (this.#lanes.some((l) => l.model === candidate))
      throw new LaneError(candidate.manifest.name, "is already loaded");
    const a = [...candidate.manifest.devices.profiles].sort().join(",");
    const b = [...of.manifest.devices.profiles].sort().join(",");
    if (a !== b)
      throw new LaneError(
        candidate.manifest.name,
        `serves profiles [${a}], the live ${of.manifest.name} serves [${b}]; a shadow must serve the same`,
      );
    const lane = new Lane(candidate, "shadow", runner, this.#maxBatch);
    lane.shadowOf = live;
    try {
      await (signal ? untilAborted(lane.runner.ready, signal) : lane.runner.ready);
    } catch (e) {
      // A worker that could not load it, or a stop while it loads: not left behind (not awaited:
      // a worker inside onnxruntime's native code ends only when that returns).
      void lane.runner.close().catch(() => undefined);
      throw e;
    }
    this.#lanes = [...this.#lanes, lane];
    for (const slot of this.#slots.values())
      if (slot.live === live) this.#attach(slot, lane, (this.#fed.get(slot.id) ?? -1) + 1);
  }

  /**
   * Makes the shadow `candidate` live, atomically between ticks: devices switch to its windows
   * (already warm), its newest shadow result is published when it is newer than the last live
   * one, and the old live lane is retired (call `unload` to release it). Returns the old model.
   */
  async promote(candidate: LoadedModel): Promise<LoadedModel> {
    await this.#idle();
    const lane = this.#lane(candidate);
    const old = lane.shadowOf;
    if (lane.role !== "shadow" || !old) throw new LaneError(candidate.manifest.name, "is not a shadow");
    const c = this.counters;
    // Everything below is synchronous: no tick can interleave.
    lane.role = "live";
    lane.shadowOf = undefined;
    old.role = "retired";
    for (const l of this.#lanes) if (l.shadowOf === old) l.shadowOf = lane;
    for (const p of candidate.manifest.devices.profiles) this.#byProfile.set(p, lane);
    this.#lanes = [
      ...this.#lanes.filter((l) => l.role === "live"),
      ...this.#lanes.filter((l) => l.role !== "live"),
    ];
    // Old live windows still queued are superseded; the candidate's queued ones become live work.
    for (const w of old.queue) {
      c.skippedWindows += w.readyWindows;
      w.queued = false;
    }
    old.queue = [];
    for (const w of lane.queue) c.windowsReady += w.readyWindows;
    const nowUs = this.#clock.nowUs();
    for (const slot of this.#slots.values()) {
      if (slot.live !== old) continue;
      slot.live = lane;
      slot.windows.delete(old);
      const last = slot.shadowLast.get(lane);
      slot.shadowLast.delete(lane);
      if (last && last.window.lastSeq > slot.lastLive) {
        c.windowsReady++;
        this.#publish(slot, lane, last, nowUs);
      }
    }
    c.promotions++;
    return old.model;
  }

  /**
   * Removes a lane and releases its model (session and worker). A live lane's devices become
   * unmodelled, and its shadows go with it.
   */
  async unload(model: LoadedModel): Promise<void> {
    await this.#idle();
    const lane = this.#lane(model);
    const gone = new Set<Lane>([lane]);
    if (lane.role === "live") {
      for (const l of this.#lanes) if (l.shadowOf === lane) gone.add(l);
      for (const p of model.manifest.devices.profiles)
        if (this.#byProfile.get(p) === lane) this.#byProfile.delete(p);
      for (const [id, slot] of this.#slots) if (slot.live === lane) this.#slots.delete(id);
      this.counters.devices = this.#slots.size;
    } else
      for (const slot of this.#slots.values()) {
        slot.windows.delete(lane);
        slot.shadowLast.delete(lane);
      }
    this.#lanes = this.#lanes.filter((l) => !gone.has(l));
    for (const l of gone) {
      for (const w of l.queue) w.queued = false;
      l.queue = [];
      await l.runner.close();
      await releaseModel(l.model);
    }
  }

  // ------------------------------------------------------------------ frames

  /** Ingest observer: call with every newly stored DATA frame (`ingest.onStored(loop.onFrame)`). */
  readonly onFrame = (record: FrameRecord, frame: DataFrame): void => {
    if (this.#stopped) return;
    const id = record.deviceId;
    // Windows must be in time order: a device's frames are fed in increasing sequence only, so
    // late (out-of-order) frames and resends of frames already seen are left to the store.
    const fed = this.#fed.get(id);
    if (fed !== undefined && record.seq <= fed) return;
    this.#fed.set(id, record.seq);
    const c = this.counters;
    c.framesSeen++;
    let slot = this.#slots.get(id);
    const profile = this.#o.profileOf(id);
    if (slot === undefined || slot.profile !== profile) {
      // First frame of the device, or it re-announced itself with another profile. A first window
      // is warmed from the frame log; another profile's starts fresh: the frames stored before
      // are the previous profile's (README, "A device that re-announces another profile").
      const before = this.#announced.get(id);
      if (profile !== undefined) this.#announced.set(id, profile);
      const warm = before === undefined || before === profile;
      const lane = profile === undefined ? undefined : this.#byProfile.get(profile);
      if (lane === undefined || profile === undefined) {
        if (slot) this.#slots.delete(id);
        c.devices = this.#slots.size;
        c.framesUnmodelled++;
        return;
      }
      slot = {
        id,
        profile,
        live: lane,
        windows: new Map(),
        lastLive: -1,
        liveSeq: -1,
        liveValue: NaN,
        shadowLast: new Map(),
      };
      this.#slots.set(id, slot);
      c.devices = this.#slots.size;
      this.#attach(slot, lane, record.seq, warm);
      for (const l of this.#lanes) if (l.shadowOf === lane) this.#attach(slot, l, record.seq, warm);
    }
    const names = this.#o.channelsOf?.(id);
    for (const [lane, dev] of slot.windows) {
      if (names !== dev.announced) {
        dev.announced = names;
        dev.namesMatch = names === undefined || sameNames(names, dev.model.manifest.inputs.channels);
      }
      if (!dev.namesMatch || frame.values.length !== dev.model.normalizer.channels) {
        if (lane === slot.live) c.framesSchemaMismatch++;
        continue;
      }
      if (dev.pending) {
        if (dev.pending.length >= this.#maxPending) {
          dev.pending.shift();
          c.warmupDropped++;
        }
        const { seq, timestampUs, receivedUs, raw } = record;
        dev.pending.push({ seq, timestampUs, receivedUs, values: Float32Array.from(frame.values), raw });
        continue;
      }
      this.#accept(lane, dev, frame.values, record.seq, record.timestampUs, record.receivedUs, record.raw);
    }
  };

  /** Gives `slot` a window in `lane`, warmed from history (frames with seq < beforeSeq) when `warm`. */
  #attach(slot: DeviceSlot, lane: Lane, beforeSeq: number, warm = true): void {
    const dev = new DeviceWindow(slot.id, lane.model, slot.profile, this.#backlog);
    slot.windows.set(lane, dev);
    if (!this.#o.history || !warm) return;
    dev.pending = [];
    const w = this.#warm(slot, lane, dev, beforeSeq).finally(() => this.#warming.delete(w));
    this.#warming.add(w);
  }

  #accept(
    lane: Lane,
    dev: DeviceWindow,
    values: ArrayLike<number>,
    seq: number,
    tsUs: number,
    rxUs: number,
    raw?: Buffer,
  ): void {
    const ready = dev.push(values, seq, tsUs, rxUs);
    if (lane.role === "live") this.#quality(dev, values, seq, tsUs, rxUs, raw);
    if (ready) {
      lane.counters.windowsReady++;
      if (lane.role === "live") this.counters.windowsReady++;
      if (!dev.queued) {
        dev.queued = true;
        lane.queue.push(dev);
      }
      if (this.#started && this.#tickMs === 0) this.#schedule();
    }
  }

  /**
   * After a live push: sensor-fault transitions of this frame, and the device status when it
   * changed (quality-events.ts). Per frame without a change: a few comparisons, no allocation.
   */
  #quality(
    dev: DeviceWindow,
    values: ArrayLike<number>,
    seq: number,
    tsUs: number,
    rxUs: number,
    raw: Buffer | undefined,
  ): void {
    const c = this.counters;
    if (dev.withheldLast) {
      c.windowsWithheld++;
      c.windowsWithheldBy[dev.windowVerdict]!++;
    }
    const q = dev.frameQuality;
    if (q.flagged > 0)
      for (let u = 0; u < q.codes.length; u++) {
        const k = q.codes[u]!;
        if (k !== 0) c.valuesFlagged[k]!++; // index 0 (ok) stays 0
      }
    const changed = dev.frameQuality.changedCount > 0;
    if (changed) {
      const at = this.#clock.nowUs();
      for (const t of sensorFaultTransitions(
        dev,
        values,
        { seq, timestampUs: tsUs, receivedUs: rxUs, raw },
        at,
      )) {
        if (t.state === "raised") c.sensorFaultsRaised++;
        else c.sensorFaultsCleared++;
        this.#callback(() => this.#o.onSensorFault?.(t));
      }
    }
    const baselineDone = dev.baselineComplete;
    if (!changed && dev.windowVerdict === dev.statusVerdict && baselineDone === dev.statusBaselineDone)
      return;
    dev.statusVerdict = dev.windowVerdict;
    dev.statusBaselineDone = baselineDone;
    if (this.#o.onDeviceStatus) {
      const s = deviceQualityStatus(dev, this.#clock.nowUs());
      this.#callback(() => this.#o.onDeviceStatus?.(s));
    }
  }

  async #warm(slot: DeviceSlot, lane: Lane, dev: DeviceWindow, beforeSeq: number): Promise<void> {
    const c = this.counters;
    const { window, stride } = dev.model.manifest.inputs;
    const current = (): boolean => this.#slots.get(slot.id) === slot && slot.windows.get(lane) === dev;
    let rows = 0;
    let damaged = 0;
    try {
      const h = await this.#o.history!.read(
        dev.deviceId,
        beforeSeq,
        dev.model.normalizer.baselineRows,
        window + stride - 2,
      );
      damaged = h.damaged ?? 0;
      if (!current()) return; // replaced (new profile, unloaded lane) meanwhile
      rows = dev.warm(h.first, h.last);
    } catch (e) {
      c.warmupErrors++;
      this.#o.onError?.(e);
    } finally {
      if (damaged > 0) {
        c.warmupDamaged += damaged;
        this.#o.onError?.(
          new InferError(
            "HISTORY_DAMAGED",
            `${damaged} stored frame(s) of device ${dev.deviceId} no longer decode; the warm-up skipped them`,
          ),
        );
      }
    }
    if (!current()) return;
    if (rows > 0) {
      c.warmups++;
      c.warmupRows += rows;
    }
    const pending = dev.pending ?? [];
    dev.pending = undefined;
    for (const p of pending) this.#accept(lane, dev, p.values, p.seq, p.timestampUs, p.receivedUs, p.raw);
  }

  // ------------------------------------------------------------------ scheduling

  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#stopped = false;
    if (this.#tickMs > 0) {
      this.#timer = setInterval(() => void this.tick(), this.#tickMs);
      this.#timer.unref?.();
    } else this.#schedule();
  }

  /**
   * Stops scheduling, waits for the warm-ups in flight, then runs every window of the frames seen
   * so far (the ticks queued behind the running one too), so their results are delivered before
   * stop() resolves: the runtime stops the loop before the alert service publishes held health
   * and `offline`. Frames that arrive after the stop are left to the store (a next start warms
   * from them), which bounds the drain under a steady stream.
   */
  async stop(): Promise<void> {
    this.#started = false;
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.warmed();
    await this.drain();
  }

  /** Resolves when no device window is being warmed from history (its held frames are in its ring). */
  async warmed(): Promise<void> {
    while (this.#warming.size > 0) await Promise.all(this.#warming);
  }

  /** Resolves when every lane's runner is ready (worker: session created and warmed up). */
  async ready(): Promise<void> {
    await Promise.all(this.#lanes.map((l) => l.runner.ready));
  }

  /** Stops, then ends every lane's runner (worker threads). Final; sessions are the owner's to release. */
  async close(): Promise<void> {
    await this.stop();
    await Promise.all(this.#lanes.map((l) => l.runner.close()));
  }

  /** Runs ticks until no window is waiting and no tick is running (every result delivered). */
  async drain(): Promise<void> {
    while (this.pending > 0 || this.#running) await (this.#running ?? this.tick());
  }

  /** Waits until no tick is running. */
  async #idle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      if (this.#started) void this.tick();
    });
  }

  /** Windows waiting for the next tick, all lanes. */
  get pending(): number {
    let n = 0;
    for (const l of this.#lanes) n += l.queue.length;
    return n;
  }

  /**
   * Runs every ready window once (one onnxruntime call per lane and `maxBatch` windows). If a
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
    // Double buffer, all lanes at once: windows that become ready while this tick runs go to
    // the next tick, and a shadow runs the same set of devices as its live lane.
    const work = new Map<Lane, DeviceWindow[]>();
    for (const lane of this.#lanes) {
      if (lane.queue.length === 0) continue;
      work.set(lane, lane.queue);
      lane.queue = lane.spare;
      lane.spare = [];
    }
    for (const [lane, w] of work) {
      // A shadow's batches are sized by its cost so far (lane.ts shadowBatchSize): each run
      // defers by a setImmediate (worker.ts), so I/O is served between them.
      for (let at = 0, n = 0; at < w.length; at += n) {
        if (lane.role === "retired") break;
        n = Math.min(
          lane.role === "shadow" ? lane.shadowBatchSize(this.#maxBatch) : this.#maxBatch,
          w.length - at,
        );
        await this.#runBatch(lane, w, at, n);
      }
      w.length = 0;
      lane.spare = w;
    }
    this.counters.tickLatency.record((performance.now() - t0) * 1000);
  }

  async #runBatch(lane: Lane, work: DeviceWindow[], at: number, n0: number): Promise<void> {
    const c = this.counters;
    const lc = lane.counters;
    const live = lane.role === "live";
    const per = lane.model.windowValues;
    let n = 0;
    for (let i = 0; i < n0; i++) {
      const dev = work[at + i]!;
      if (!dev.queued) continue; // dropped meanwhile (promotion, unload)
      dev.queued = false;
      // Not ready any more: every waiting window was skipped (rows overwritten while withheld
      // ones arrived); only the skip count is taken.
      const has = dev.ready;
      const skipped = has ? dev.take(lane.runner.input, n * per, lane.metas[n]!) : dev.takeSkipped();
      lc.skippedWindows += skipped;
      if (live) c.skippedWindows += skipped;
      if (!has) continue;
      lane.batch[n++] = dev;
      if (dev.ready) {
        // more windows waiting: the next tick (right after this one) takes the next
        dev.queued = true;
        lane.queue.push(dev);
        this.#again = true;
      }
    }
    if (n === 0) return;
    const { model } = lane;
    let data: Float32Array[];
    const r0 = performance.now();
    try {
      data = await lane.runner.run(n);
    } catch (e) {
      c.runErrors++;
      lc.runErrors++;
      lc.failedWindows += n;
      if (live) c.failedWindows += n;
      this.#o.onError?.(e);
      return;
    }
    const runUs = (performance.now() - r0) * 1000;
    c.runLatency.record(runUs);
    lane.runLatency.record(runUs);
    lane.windowCost.record((lane.runner.lastRunUs ?? runUs) / n, n);
    lc.runUs += runUs;
    c.batches++;
    lc.batches++;
    lc.windowsRun += n;
    const names = model.outputNames;
    let width = 0;
    for (const d of data) width += d.length / n;
    const shadowOut = lane.role === "shadow" ? model.manifest.outputs : undefined;
    const nowUs = this.#clock.nowUs();
    const input = lane.runner.input;
    for (let i = 0; i < n; i++) {
      const dev = lane.batch[i]!;
      lane.batch[i] = undefined as unknown as DeviceWindow;
      const meta = lane.metas[i]!;
      // One-shot hash: no Hash object per window; the returned Buffer is fresh (not pooled).
      const windowHash = hash(
        "sha256",
        new Uint8Array(input.buffer, input.byteOffset + i * per * 4, per * 4),
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
        // A candidate in shadow is judged on every value of every output (a class-probability
        // vector's last element as much as its first), against the manifest's range.
        if (shadowOut) this.#judgeShadow(lane, shadowOut[k], d, i * w, w);
      }
      const result: InferenceResult = {
        model,
        deviceId: dev.deviceId,
        profile: dev.profile,
        window: { ...meta },
        windowHash,
        outputs,
        allOutputs: all,
        inferenceLeaf: EMPTY,
        atUs: nowUs,
      };
      const slot = this.#slots.get(dev.deviceId);
      if (lane.role === "live") {
        if (slot?.live !== lane || meta.lastSeq <= slot.lastLive) {
          c.skippedWindows++; // the device moved lanes, or a newer window was published already
          continue;
        }
        this.#publish(slot, lane, result, nowUs);
      } else if (lane.role === "shadow" && slot) this.#shadowResult(slot, lane, result);
    }
  }

  /** Publishes a live result: INFERENCE leaf, then the result callback. */
  #publish(slot: DeviceSlot, lane: Lane, r: InferenceResult, nowUs: number): void {
    const c = this.counters;
    c.windowsRun++;
    slot.lastLive = r.window.lastSeq;
    slot.liveSeq = r.window.lastSeq;
    slot.liveValue = r.outputs[0]!;
    const preimage = inferenceLeafPreimage({
      modelHash: lane.model.modelHash,
      inputWindowHash: r.windowHash,
      deviceId: r.deviceId,
      timestampUs: r.window.lastTimestampUs,
      outputs: r.allOutputs,
    });
    r.inferenceLeaf = leafFromPreimage(preimage);
    c.frameToResult.record(nowUs - r.window.lastReceivedUs);
    for (const [s, sr] of slot.shadowLast)
      if (sr.window.lastSeq === r.window.lastSeq) this.#compare(s, sr, r);
    try {
      this.#o.onLeaf?.({
        kind: "inference",
        hash: r.inferenceLeaf,
        preimage,
        deviceId: r.deviceId,
        timestampUs: r.window.lastTimestampUs,
      });
      this.#o.onResult?.(r);
    } catch (e) {
      c.callbackErrors++;
      this.#o.onError?.(e);
    }
  }

  #shadowResult(slot: DeviceSlot, lane: Lane, r: InferenceResult): void {
    slot.shadowLast.set(lane, r);
    if (slot.liveSeq === r.window.lastSeq) this.#compareValue(lane, r.outputs[0]!, slot.liveValue);
    try {
      this.#o.onShadowResult?.(r, lane.shadowStats());
    } catch (e) {
      this.counters.callbackErrors++;
      this.#o.onError?.(e);
    }
  }

  /** Counts a shadow output's non-finite and out-of-range values (`w` values of `d` from `at`). */
  #judgeShadow(
    lane: Lane,
    spec: { min?: number; max?: number } | undefined,
    d: Float32Array,
    at: number,
    w: number,
  ): void {
    const s = lane.shadow;
    for (let j = at; j < at + w; j++) {
      const v = d[j]!;
      if (!Number.isFinite(v)) s.nonFinite++;
      else if (spec && ((spec.min !== undefined && v < spec.min) || (spec.max !== undefined && v > spec.max)))
        s.outOfRange++;
    }
  }

  /** Runs a subscriber callback; a throw is counted and reported, never propagated into ingest. */
  #callback(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.counters.callbackErrors++;
      this.#o.onError?.(e);
    }
  }

  #compare(shadow: Lane, sr: InferenceResult, live: InferenceResult): void {
    this.#compareValue(shadow, sr.outputs[0]!, live.outputs[0]!);
  }

  #compareValue(shadow: Lane, v: number, live: number): void {
    const d = Math.abs(v - live);
    if (!Number.isFinite(d)) return;
    const s = shadow.shadow;
    s.compared++;
    s.sumAbsDiff += d;
    if (d > s.maxAbsDiff) s.maxAbsDiff = d;
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
      warmupDamaged: c.warmupDamaged,
      promotions: c.promotions,
      windowsWithheld: c.windowsWithheld,
      windowsWithheldBy: byName(WINDOW_VERDICTS, c.windowsWithheldBy),
      valuesFlagged: byName(QUALITY_REASONS, c.valuesFlagged),
      sensorFaultsRaised: c.sensorFaultsRaised,
      sensorFaultsCleared: c.sensorFaultsCleared,
      lanes: this.#lanes.map((l) => ({
        model: l.model.manifest.name,
        version: l.model.manifest.version,
        sha256: l.model.sha256,
        role: l.role,
        windowsRun: l.counters.windowsRun,
        usPerWindow: Math.round(l.usPerWindow() * 10) / 10,
        ...(l.role === "shadow" ? { shadow: l.shadowStats() } : {}),
      })),
      tickLatency: c.tickLatency.snapshot(),
      runLatency: c.runLatency.snapshot(),
      frameToResult: c.frameToResult.snapshot(),
    };
  }
}

/** `{ name: count }` for every name but the first (`ok`). */
function byName(names: readonly string[], counts: readonly number[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (let i = 1; i < names.length; i++) out[names[i]!] = counts[i] ?? 0;
  return out;
}

function sameNames(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
