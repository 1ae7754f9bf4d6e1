/**
 * Turns inference results into alert-stage events (events.ts): alert transitions (rules.ts)
 * become `alert` events and ALERT attestation leaves, the latest outputs become the device's
 * `health`, and the gateway's `status` goes online/offline. From the data-quality stage, sensor
 * faults become `sensor-fault` events and SENSOR_FAULT leaves (never alerts), and a device's
 * data-quality / commissioning state becomes its retained `device-status`. Events go to an {@link EventOutput}
 * (an encoder plus a publisher, output.ts); encoding is not this file's business.
 *
 * Publishing never blocks the loop: emissions are fire-and-forget with failures counted.
 * Health is throttled per device (at most once per `healthIntervalMs`, at once on a transition);
 * a throttled result is held and published by a timer when its device is due again, so the
 * retained health always ends on a device's latest result, also when the device goes quiet.
 */
import { alertLeafPreimage, leafFromPreimage, sensorFaultLeafPreimage } from "../core/leaf.ts";
import { systemClock, type Clock } from "../core/clock.ts";
import { realTimers, settlesWithin, unrefTimer, type Timers } from "../core/timers.ts";
import type { FrameRecord, LeafSink } from "../core/records.ts";
import type { InferenceResult } from "../infer/loop.ts";
import type { DeviceQualityStatus, SensorFaultTransition } from "../infer/quality-events.ts";
import type { LoadedModel } from "../infer/registry.ts";
import type {
  AlertEvent,
  AnchoringPause,
  GatewayAlertEvent,
  GatewayAlertKind,
  GatewayEvent,
  HealthEvent,
  ModelRef,
  SensorFaultEvent,
  StatusEvent,
} from "./events.ts";
import { RuleEngine, SEVERITY_CODE, type AlertTransition } from "./rules.ts";
import { ReadingFeed } from "./readings.ts";
import { PublishError } from "./embedded-publisher.ts";
import type { DataFrame } from "../protocol/frame.ts";

/** Where events go: an encoder and a publisher (output.ts), or a fake in tests. */
export interface EventOutput {
  /**
   * Connects; `will` is published by the broker if the gateway vanishes or loses the connection
   * (external brokers); `onReconnect` is called each time a lost connection is re-established.
   */
  open(will: StatusEvent, onReconnect?: () => void): Promise<void>;
  /** Whether the broker connection is up now (absent: always). */
  connected?(): boolean;
  /** Resolves when the broker accepted every message of the event. */
  emit(e: GatewayEvent): Promise<void>;
  close(): Promise<void>;
}

export interface AlertServiceOptions {
  output: EventOutput;
  /** The live models and their profiles (for the status event); read at every status. */
  models: () => readonly LoadedModel[];
  clock?: Clock;
  timers?: Timers;
  onLeaf?: LeafSink;
  /** Per device, health is published at most this often, and at once on an alert transition. Default 1000 ms. */
  healthIntervalMs?: number;
  /**
   * Decoded readings of stored frames on `{device}/reading` (`onReading`), at most one per device
   * this often, ms (0: every frame). Default undefined: none are published.
   */
  readingsIntervalMs?: number | undefined;
  /** Called with each alert event right after it was handed to the output (bench, logs, demo). */
  onAlert?: (a: AlertEvent) => void;
  /** Called with each sensor-fault event right after it was handed to the output (logs, demo). */
  onSensorFault?: (e: SensorFaultEvent) => void;
  onError?: (e: unknown) => void;
  /**
   * How long start() waits for the broker to acknowledge the first `online` status, and stop()
   * in all for the publications still in flight, the `offline` status and the close (no wait
   * when the output is not connected: nothing can be acknowledged), ms. Default 10 000. A broker
   * that drops the connection instead of acknowledging (one whose access rules refuse this
   * gateway's status topic), or one that is gone at shutdown, would otherwise hold the start or
   * the stop forever: the client reconnects and resends. Past it start() returns (the failure
   * goes to `onError`, the status keeps trying) and stop() closes the output anyway.
   */
  ackTimeoutMs?: number;
  /** Aborted when a stop is asked during start-up: start() stops waiting for the online status's PUBACK. */
  startSignal?: AbortSignal;
}

export interface AlertCounters {
  /** Alert episodes raised, and cleared (each is one `alert` event). */
  raised: number;
  cleared: number;
  alertsPublished: number;
  healthPublished: number;
  /** Results held back by the per-device health interval (the latest is published later). */
  healthThrottled: number;
  /** Held health published by the flush timer (the device had gone quiet). */
  healthFlushed: number;
  /** Sensor-fault episodes raised and cleared (each one `sensor-fault` event and SENSOR_FAULT leaf). */
  sensorFaultsRaised: number;
  sensorFaultsCleared: number;
  /** Device status messages (data quality, commissioning) published. */
  deviceStatusPublished: number;
  /** Gateway alerts (conditions of the gateway itself, e.g. update-check-stale) raised and cleared. */
  gatewayAlertsRaised: number;
  gatewayAlertsCleared: number;
  /** Decoded readings published, and stored frames whose reading the per-device interval skipped. */
  readingsPublished: number;
  readingsThrottled: number;
  publishErrors: number;
}

interface HealthState {
  lastPublishUs: number;
  windows: number;
  /** The latest result not yet published (throttled). */
  held: InferenceResult | undefined;
}

const refs = new WeakMap<LoadedModel, ModelRef>();

/** The model reference carried by events: name, version, sha256 of the ONNX file. */
export function modelRef(m: LoadedModel): ModelRef {
  let r = refs.get(m);
  if (!r) refs.set(m, (r = { name: m.manifest.name, version: m.manifest.version, sha256: m.sha256 }));
  return r;
}

export class AlertService {
  readonly rules = new RuleEngine();
  readonly counters: AlertCounters = {
    raised: 0,
    cleared: 0,
    alertsPublished: 0,
    healthPublished: 0,
    healthThrottled: 0,
    healthFlushed: 0,
    sensorFaultsRaised: 0,
    sensorFaultsCleared: 0,
    deviceStatusPublished: 0,
    gatewayAlertsRaised: 0,
    gatewayAlertsCleared: 0,
    readingsPublished: 0,
    readingsThrottled: 0,
    publishErrors: 0,
  };
  /** Raised gateway alerts: when each episode began (µs). */
  readonly #gatewayAlerts = new Map<GatewayAlertKind, number>();
  readonly #o: AlertServiceOptions;
  readonly #clock: Clock;
  readonly #timers: Timers;
  readonly #healthUs: number;
  readonly #health = new Map<number, HealthState>();
  /** Devices with a held result; the flush timer publishes them when due. */
  readonly #held = new Set<number>();
  readonly #inflight = new Set<Promise<void>>();
  #flushTimer: unknown;
  #open = false;
  #anchoringPaused: AnchoringPause | null = null;
  readonly #readings: ReadingFeed | undefined;

  constructor(opts: AlertServiceOptions) {
    this.#o = opts;
    this.#clock = opts.clock ?? systemClock;
    this.#timers = opts.timers ?? realTimers;
    this.#healthUs = (opts.healthIntervalMs ?? 1000) * 1000;
    if (!(this.#healthUs >= 0)) throw new RangeError(`healthIntervalMs must be ≥ 0`);
    const r = opts.readingsIntervalMs;
    if (r !== undefined && !(r >= 0)) throw new RangeError(`readingsIntervalMs must be ≥ 0`);
    this.#readings =
      r === undefined
        ? undefined
        : new ReadingFeed({
            intervalMs: r,
            clock: this.#clock,
            timers: this.#timers,
            emit: (e) => {
              this.counters.readingsPublished++;
              void this.#emit(e, "reading");
            },
          });
  }

  /**
   * A stored DATA frame (Ingest.onStored): its decoded values go out on `{device}/reading`,
   * throttled per device (`readingsIntervalMs`); nothing when readings are off or before start.
   */
  readonly onReading = (record: FrameRecord, frame: DataFrame, channels?: readonly string[]): void => {
    const feed = this.#readings;
    if (!feed || !this.#open) return;
    const before = feed.counters.throttled;
    feed.offer({
      kind: "reading",
      deviceId: frame.deviceId,
      seq: frame.seq,
      timestampUs: record.timestampUs,
      receivedUs: record.receivedUs,
      channels,
      values: frame.values,
      clockUnverified: record.clockUnverified === true,
    });
    this.counters.readingsThrottled += feed.counters.throttled - before;
  };

  /** A status event for the current live models. */
  status(state: "online" | "offline", reason: StatusEvent["reason"]): StatusEvent {
    return {
      kind: "status",
      state,
      reason,
      atUs: this.#clock.nowUs(),
      models: this.#o.models().map((m) => ({ ...modelRef(m), profiles: [...m.manifest.devices.profiles] })),
      anchoringPaused: this.#anchoringPaused ? { ...this.#anchoringPaused } : null,
    };
  }

  /**
   * Anchoring paused (with why) or resumed (null): the retained status is published again with
   * reason "anchoring", so dashboards see that batches are not reaching the chain.
   */
  async anchoringChanged(pause: AnchoringPause | null): Promise<void> {
    this.#anchoringPaused = pause ? { ...pause } : null;
    if (this.#open) await this.#emit(this.status("online", "anchoring"), "status");
  }

  /**
   * Connects the output (with the offline status as last will) and publishes `online`; again
   * (reason "reconnect") after every reconnect, since the broker published the will meanwhile.
   */
  async start(): Promise<void> {
    await this.#o.output.open(this.status("offline", "will"), () => {
      if (this.#open) void this.#emit(this.status("online", "reconnect"), "status");
    });
    this.#open = true;
    const online = this.#emit(this.status("online", "start"), "status");
    // A broker that did not answer open()'s wait is reported by the ingest source (runtime.ts):
    // the status is queued until it does, and the start does not wait for it a second time.
    if (this.#o.output.connected?.() === false) return;
    const cut = this.#o.startSignal;
    if (cut?.aborted) return;
    const aborted = new Promise<"aborted">((res) => cut?.addEventListener("abort", () => res("aborted")));
    const acked = await Promise.race([this.#within(online), aborted]);
    if (acked === "aborted") return;
    if (!acked) {
      this.counters.publishErrors++;
      this.#o.onError?.(
        new PublishError(
          "status",
          `the broker did not acknowledge the online status within ${this.#ackMs} ms (does it let this gateway publish its status topic?); the gateway runs on and keeps trying`,
        ),
      );
    }
  }

  get #ackMs(): number {
    return this.#o.ackTimeoutMs ?? 10_000;
  }

  /** True when `p` settles within ackTimeoutMs. */
  #within(p: Promise<unknown>): Promise<boolean> {
    return settlesWithin(p, this.#ackMs, this.#timers);
  }

  /**
   * A condition of the gateway itself began (`raised`) or ended: published once per transition on
   * `vigil/v1/{site}/{gateway}/alert` (a raise while raised, or a clear while clear, does nothing).
   * Resolves with the event published, or undefined when nothing changed.
   */
  async gatewayAlert(
    alert: GatewayAlertKind,
    raised: boolean,
    o: { severity: GatewayAlertEvent["severity"]; message: string; detail: GatewayAlertEvent["detail"] },
  ): Promise<GatewayAlertEvent | undefined> {
    const since = this.#gatewayAlerts.get(alert);
    if (raised === (since !== undefined)) return undefined;
    const atUs = this.#clock.nowUs();
    const sinceUs = since ?? atUs;
    if (raised) this.#gatewayAlerts.set(alert, atUs);
    else this.#gatewayAlerts.delete(alert);
    if (raised) this.counters.gatewayAlertsRaised++;
    else this.counters.gatewayAlertsCleared++;
    const e: GatewayAlertEvent = {
      kind: "gateway-alert",
      alert,
      alertId: `${alert}-${sinceUs}`,
      state: raised ? "raised" : "cleared",
      severity: o.severity,
      message: o.message,
      atUs,
      sinceUs,
      detail: { ...o.detail },
    };
    if (this.#open) await this.#emit(e, "gateway-alert");
    return e;
  }

  /** Publishes the status again with the current models (after an update was promoted). */
  async modelsChanged(): Promise<void> {
    if (this.#open) await this.#emit(this.status("online", "models"), "status");
  }

  /**
   * Publishes every held health and waits for everything in flight, then publishes `offline`
   * (retained) and closes the output. The waits share one deadline, ackTimeoutMs from the call
   * (README `mqtt.connectTimeoutMs`: stop waits for the broker once). An output that is not
   * connected cannot acknowledge anything: nothing is waited for, and what is in flight is
   * dropped (one line says how much; the broker published the will if it had our connection).
   */
  async stop(): Promise<void> {
    if (!this.#open) return;
    if (this.#flushTimer !== undefined) this.#timers.clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    this.flushHealth(true);
    this.#readings?.stop();
    // One deadline: a broker that is gone, or never acknowledges, must not hold the shutdown.
    let timer: unknown;
    const late = new Promise<false>(
      (res) => (timer = this.#timers.setTimeout(() => res(false), this.#ackMs)),
    );
    const ok = (): boolean => true;
    const within = (p: Promise<unknown>): Promise<boolean> => Promise.race([p.then(ok, ok), late]);
    try {
      const up = this.#o.output.connected?.() !== false;
      const inFlight = this.#inflight.size;
      const settled = up && (await within(this.settled()));
      // Handed over also when it cannot be sent: the live feed (http tap) sees the stop.
      const offline = this.#o.output.emit(this.status("offline", "stop"));
      if (!settled || !(await within(offline))) {
        offline.catch(() => undefined); // given up on: its failure is the one reported below
        this.counters.publishErrors++;
        this.#o.onError?.(
          new PublishError(
            "status",
            !up
              ? `the broker is not connected: ${inFlight} publication${inFlight === 1 ? "" : "s"} in flight and the offline status dropped; closing without waiting`
              : `the broker did not acknowledge ${settled ? "the offline status" : "the publications in flight"} within ${this.#ackMs} ms; closing anyway`,
          ),
        );
      } else await offline;
    } finally {
      this.#open = false;
      // Within what is left of the deadline (the publisher's DISCONNECT waits for no acknowledgement).
      const close = this.#o.output.close();
      if (await within(close)) await close;
      else close.catch(() => undefined);
      this.#timers.clearTimeout(timer);
    }
  }

  /** Resolves when every emission handed to the output so far has settled. */
  async settled(): Promise<void> {
    while (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight]);
  }

  /** Inference loop callback (live results). */
  readonly onResult = (r: InferenceResult): void => {
    const { model } = r;
    const names = model.outputNames;
    const transitions = this.rules.evaluate(
      r.deviceId,
      model.manifest.alerts,
      (output) => {
        const i = names.indexOf(output);
        return i < 0 ? NaN : r.outputs[i]!;
      },
      r.atUs,
    );
    for (const t of transitions) this.#alert(r, t);
    this.#updateHealth(r, transitions.length > 0);
  };

  /**
   * Inference loop callback: a sensor fault raised or cleared. Its own SENSOR_FAULT leaf
   * (core/leaf.ts; the frame's FRAME leaf in the window-hash slot, rule `{channel}:{reason}` or
   * `{channel}:{reason}:clear`, the raw value as score) and its own `sensor-fault` event, never
   * a machine-health alert. Severity is always warning.
   */
  readonly onSensorFault = (t: SensorFaultTransition): void => {
    // The episode's identity: when its raising frame arrived (the same after a gateway restart).
    const sinceUs = t.raisedAtUs;
    const preimage = sensorFaultLeafPreimage({
      modelHash: t.model.modelHash,
      inputWindowHash: t.frameLeaf,
      deviceId: t.deviceId,
      timestampUs: t.timestampUs,
      severity: SEVERITY_CODE.warning,
      rule: t.state === "raised" ? `${t.channel}:${t.reason}` : `${t.channel}:${t.reason}:clear`,
      score: t.value,
    });
    const leaf = leafFromPreimage(preimage);
    if (t.state === "raised") this.counters.sensorFaultsRaised++;
    else this.counters.sensorFaultsCleared++;
    try {
      this.#o.onLeaf?.({
        kind: "sensor-fault",
        hash: leaf,
        preimage,
        deviceId: t.deviceId,
        timestampUs: t.timestampUs,
      });
    } catch (e) {
      this.#o.onError?.(e);
    }
    const e: SensorFaultEvent = {
      kind: "sensor-fault",
      faultId: `${t.deviceId.toString(16).padStart(8, "0")}-${t.channel}-${sinceUs}`,
      transition: t,
      sinceUs,
      model: modelRef(t.model),
      leaf,
    };
    void this.#emit(e, "sensor-fault");
    this.#o.onSensorFault?.(e);
  };

  /** Inference loop callback: a device's data-quality / commissioning status changed (retained). */
  readonly onDeviceStatus = (s: DeviceQualityStatus): void => {
    this.counters.deviceStatusPublished++;
    void this.#emit({ kind: "device-status", status: s, model: modelRef(s.model) }, "device-status");
  };

  #alert(r: InferenceResult, t: AlertTransition): void {
    const rule = t.alert.rule;
    const preimage = alertLeafPreimage({
      modelHash: r.model.modelHash,
      inputWindowHash: r.windowHash,
      deviceId: r.deviceId,
      timestampUs: r.window.lastTimestampUs,
      severity: SEVERITY_CODE[rule.severity],
      // The leaf's rule string says which transition it attests.
      rule: t.state === "raised" ? rule.id : `${rule.id}:clear`,
      score: t.value,
    });
    const leaf = leafFromPreimage(preimage);
    if (t.state === "raised") this.counters.raised++;
    else this.counters.cleared++;
    try {
      this.#o.onLeaf?.({
        kind: "alert",
        hash: leaf,
        preimage,
        deviceId: r.deviceId,
        timestampUs: r.window.lastTimestampUs,
      });
    } catch (e) {
      this.#o.onError?.(e);
    }
    const e: AlertEvent = {
      kind: "alert",
      state: t.state,
      alertId: t.alert.id,
      deviceId: r.deviceId,
      profile: r.profile,
      rule,
      value: t.value,
      atUs: r.atUs,
      sinceUs: t.alert.sinceUs,
      model: modelRef(r.model),
      window: { ...r.window },
      windowHash: r.windowHash,
      leaf,
      inferenceLeaf: r.inferenceLeaf,
    };
    void this.#emit(e, "alert");
    this.#o.onAlert?.(e);
  }

  #updateHealth(r: InferenceResult, force: boolean): void {
    let h = this.#health.get(r.deviceId);
    if (!h) this.#health.set(r.deviceId, (h = { lastPublishUs: -Infinity, windows: 0, held: undefined }));
    h.windows++;
    if (force || r.atUs - h.lastPublishUs >= this.#healthUs) {
      h.held = undefined;
      this.#held.delete(r.deviceId);
      this.#publishHealth(h, r, r.atUs);
      return;
    }
    this.counters.healthThrottled++;
    h.held = r;
    this.#held.add(r.deviceId);
    this.#armFlush(h.lastPublishUs + this.#healthUs - this.#clock.nowUs());
  }

  #publishHealth(h: HealthState, r: InferenceResult, atUs: number): void {
    h.lastPublishUs = atUs;
    const e: HealthEvent = {
      kind: "health",
      deviceId: r.deviceId,
      profile: r.profile,
      atUs,
      model: modelRef(r.model),
      outputs: r.model.outputNames.map((n, i) => [n, r.outputs[i]!] as const),
      lastFrame: {
        seq: r.window.lastSeq,
        timestampUs: r.window.lastTimestampUs,
        receivedUs: r.window.lastReceivedUs,
      },
      active: this.rules.active(r.deviceId).map((a) => ({
        alertId: a.id,
        ruleId: a.rule.id,
        severity: a.rule.severity,
        sinceUs: a.sinceUs,
      })),
      windows: h.windows,
    };
    void this.#emit(e, "health");
  }

  #armFlush(inUs: number): void {
    if (this.#flushTimer !== undefined || !this.#open) return;
    const ms = Math.max(0, Math.ceil(inUs / 1000));
    this.#flushTimer = unrefTimer(
      this.#timers.setTimeout(() => {
        this.#flushTimer = undefined;
        this.flushHealth(false);
      }, ms),
    );
  }

  /**
   * Publishes held health: every held result when `all`, else those whose device is due (and
   * re-arms the timer for the next one). Called by the flush timer, at stop and by tests.
   */
  flushHealth(all = true): void {
    const nowUs = this.#clock.nowUs();
    let next = Infinity;
    for (const id of this.#held) {
      const h = this.#health.get(id)!;
      const due = h.lastPublishUs + this.#healthUs;
      if (!all && due > nowUs) {
        next = Math.min(next, due);
        continue;
      }
      const r = h.held!;
      h.held = undefined;
      this.#held.delete(id);
      this.counters.healthFlushed++;
      this.#publishHealth(h, r, nowUs);
    }
    if (next !== Infinity) this.#armFlush(next - nowUs);
  }

  #emit(
    e: GatewayEvent,
    what: "alert" | "health" | "status" | "sensor-fault" | "device-status" | "gateway-alert" | "reading",
  ): Promise<void> {
    if (what === "alert") this.counters.alertsPublished++;
    else if (what === "health") this.counters.healthPublished++;
    const p = this.#o.output.emit(e).catch((err: unknown) => {
      this.counters.publishErrors++;
      this.#o.onError?.(err);
    });
    this.#inflight.add(p);
    void p.finally(() => this.#inflight.delete(p));
    return p;
  }
}
