/**
 * The gateway's live view, fed by the alert stage's events (alerts/events.ts): each device's
 * latest model outputs with a short history for its sparkline, the active alerts with their
 * receipts' leaf hashes, recent transitions, and alert counts by state and severity (for
 * `/metrics`). `observe` is called once per event on the alert stage's path, so it does O(1)
 * work and never throws; everything else is read at page-refresh or scrape time.
 *
 * Bounds: one entry per device that ever reported health, {@link SPARK_POINTS} points each;
 * {@link RECENT_ALERTS} recent transitions; pending page updates are coalesced per device.
 */
import type {
  AlertEvent,
  GatewayEvent,
  HealthEvent,
  ModelRef,
  Severity,
  StatusEvent,
} from "../alerts/events.ts";
import type { EventOutput } from "../alerts/service.ts";
import { deviceIdHex } from "../protocol/frame.ts";

/** Points kept per device for its sparkline (one per health event, at most one per second). */
export const SPARK_POINTS = 120;
/** Alert transitions kept for the page. */
export const RECENT_ALERTS = 50;
/** Alert transitions waiting for the next page update; older ones are dropped beyond this. */
const PENDING_ALERTS = 200;

/**
 * Keeps 4 significant digits: the page does not need float32 noise on the wire. NaN and ±Inf are
 * null, as in the MQTT health payload (alerts/README.md): 0 would read as a real value (RUL 0).
 */
export function round4(v: number): number | null {
  return Number.isFinite(v) ? Number(v.toPrecision(4)) : null;
}

function hex(b: Uint8Array): string {
  return "0x" + Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
}

/** A device's latest health and its sparkline ring. */
export class DeviceHealth {
  profile: string;
  model: ModelRef;
  atUs = 0;
  outputs: ReadonlyArray<readonly [string, number]> = [];
  active = 0;
  windows = 0;
  /** The first output's values, a ring of SPARK_POINTS. */
  readonly #ring = new Float32Array(SPARK_POINTS);
  /** Values pushed since the device was first seen. */
  pushes = 0;

  constructor(e: HealthEvent) {
    this.profile = e.profile;
    this.model = e.model;
  }

  push(v: number): void {
    this.#ring[this.pushes % SPARK_POINTS] = v;
    this.pushes++;
  }

  /** The last `n` values (at most what the ring holds), oldest first. */
  last(n: number = SPARK_POINTS): number[] {
    const k = Math.min(n, this.pushes, SPARK_POINTS);
    const out = new Array<number>(k);
    for (let i = 0; i < k; i++) out[i] = this.#ring[(this.pushes - k + i) % SPARK_POINTS]!;
    return out;
  }
}

/** An alert as the page and the active-alert gauge see it. */
export interface AlertView {
  alertId: string;
  state: "raised" | "cleared";
  device: string;
  profile: string;
  severity: Severity;
  ruleId: string;
  output: string;
  op: string;
  threshold: number;
  value: number;
  /** When the episode was raised / this transition happened, ms since the epoch. */
  sinceMs: number;
  atMs: number;
  model: string;
  /** keccak256 ALERT leaf of this transition: the receipt's leaf hash (`vigil receipt --leaf`). */
  leaf: string;
}

/** What changed since the last {@link LiveFeed.drain}: coalesced per device. */
export interface LiveDelta {
  /**
   * Per device: id, profile, model (`name@version`), time (ms), output values (manifest order),
   * active alerts, and the sparkline points added since the last drain.
   */
  health: Array<{
    d: string;
    pr: string;
    m: string;
    t: number;
    o: Array<number | null>;
    a: number;
    p: Array<number | null>;
  }>;
  alerts: AlertView[];
  /** Alert transitions dropped from the pending list (more than 200 between two drains). */
  droppedAlerts: number;
}

export class LiveFeed {
  readonly devices = new Map<number, DeviceHealth>();
  readonly active = new Map<string, AlertView>();
  readonly recent: AlertView[] = [];
  /** Alert transitions by `${state} ${severity}`. */
  readonly alertCounts = new Map<string, number>();
  status: StatusEvent | undefined;
  /** Events seen, by kind. */
  readonly counters = {
    alert: 0,
    health: 0,
    status: 0,
    "sensor-fault": 0,
    "device-status": 0,
    "gateway-alert": 0,
    reading: 0,
  };
  readonly #dirty = new Map<number, number>(); // device → pushes at the last drain
  #pendingAlerts: AlertView[] = [];
  #droppedAlerts = 0;

  /** Records one event. O(1), never throws. */
  readonly observe = (e: GatewayEvent): void => {
    this.counters[e.kind]++;
    if (e.kind === "health") this.#health(e);
    else if (e.kind === "alert") this.#alert(e);
    else if (e.kind === "status") this.status = e;
    // sensor-fault and device-status: the page reads data quality from the live window at
    // refresh time (PageModel), so only their counts are kept here.
  };

  /**
   * An EventOutput that shows every event to this feed, then hands it to `inner` unchanged
   * (runtime.ts wraps the alert stage's output with it).
   */
  tap(inner: EventOutput): EventOutput {
    return {
      open: (will, onReconnect) => inner.open(will, onReconnect),
      connected: () => inner.connected?.() ?? true,
      emit: (e) => {
        this.observe(e);
        return inner.emit(e);
      },
      close: () => inner.close(),
    };
  }

  #health(e: HealthEvent): void {
    let h = this.devices.get(e.deviceId);
    if (!h) this.devices.set(e.deviceId, (h = new DeviceHealth(e)));
    if (!this.#dirty.has(e.deviceId)) this.#dirty.set(e.deviceId, h.pushes);
    h.profile = e.profile;
    h.model = e.model;
    h.atUs = e.atUs;
    h.outputs = e.outputs;
    h.active = e.active.length;
    h.windows = e.windows;
    const first = e.outputs[0];
    if (first) h.push(first[1]);
  }

  #alert(e: AlertEvent): void {
    const v: AlertView = {
      alertId: e.alertId,
      state: e.state,
      device: deviceIdHex(e.deviceId),
      profile: e.profile,
      severity: e.rule.severity,
      ruleId: e.rule.id,
      output: e.rule.output,
      op: e.rule.op,
      threshold: e.rule.threshold,
      value: e.value,
      sinceMs: Math.round(e.sinceUs / 1000),
      atMs: Math.round(e.atUs / 1000),
      model: `${e.model.name}@${e.model.version}`,
      leaf: hex(e.leaf),
    };
    const key = `${e.state} ${e.rule.severity}`;
    this.alertCounts.set(key, (this.alertCounts.get(key) ?? 0) + 1);
    if (e.state === "raised") this.active.set(e.alertId, v);
    else this.active.delete(e.alertId);
    this.recent.push(v);
    if (this.recent.length > RECENT_ALERTS) this.recent.shift();
    this.#pendingAlerts.push(v);
    if (this.#pendingAlerts.length > PENDING_ALERTS) {
      this.#pendingAlerts.shift();
      this.#droppedAlerts++;
    }
  }

  /** Whether anything changed since the last drain. */
  get changed(): boolean {
    return this.#dirty.size > 0 || this.#pendingAlerts.length > 0;
  }

  /** What changed since the last call: each device once, with the points it gained. */
  drain(): LiveDelta {
    const health: LiveDelta["health"] = [];
    for (const [id, before] of this.#dirty) {
      const h = this.devices.get(id)!;
      health.push({
        d: deviceIdHex(id),
        pr: h.profile,
        m: `${h.model.name}@${h.model.version}`,
        t: Math.round(h.atUs / 1000),
        o: h.outputs.map((x) => round4(x[1])),
        a: h.active,
        p: h.last(h.pushes - before).map(round4),
      });
    }
    this.#dirty.clear();
    const delta = { health, alerts: this.#pendingAlerts, droppedAlerts: this.#droppedAlerts };
    this.#pendingAlerts = [];
    this.#droppedAlerts = 0;
    return delta;
  }
}
