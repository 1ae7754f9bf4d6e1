/**
 * The Vigil JSON encoding, topic scheme v1 (README.md in this folder): alerts, sensor faults,
 * retained health, retained device status and the retained gateway status as JSON payloads, each with a JSON Schema in ./schemas.
 */
import { bytesToHex } from "../core/hex.ts";
import { deviceIdHex } from "../protocol/frame.ts";
import type { AlertEncoder, EncodedMessage } from "./encoder.ts";
import type {
  AlertEvent,
  DeviceStatusEvent,
  GatewayAlertEvent,
  GatewayEvent,
  HealthEvent,
  ReadingEvent,
  SensorFaultEvent,
  StatusEvent,
} from "./events.ts";
import {
  isoUs,
  type AlertPayload,
  type DeviceStatusPayload,
  type GatewayAlertPayload,
  type HealthPayload,
  type ReadingPayload,
  type SensorFaultPayload,
  type StatusPayload,
} from "./payloads.ts";
import { alertTopics, type AlertTopics } from "./topics.ts";

/**
 * A float32 reading as JSON: the shortest decimal that reads back as the same float32 (21.5, not
 * 21.5; 0.1, not 0.10000000149011612); null for NaN and ±Inf, which JSON cannot carry (RFC 8259 §6).
 */
export function float32Json(v: number): number | null {
  if (!Number.isFinite(v)) return null;
  for (let p = 1; p < 9; p++) {
    const d = Number(v.toPrecision(p));
    if (Math.fround(d) === v) return d;
  }
  return Number(v.toPrecision(9));
}

/** 4 decimals: enough for RUL cycles and scores, and stable JSON across platforms. */
function round(v: number): number {
  return Math.round(v * 1e4) / 1e4;
}

export class VigilJsonEncoder implements AlertEncoder {
  readonly name = "vigil-json";
  readonly topics: AlertTopics;

  /** `site` and `gateway` become topic levels (sanitised, topics.ts; TopicLevelError if unusable). */
  constructor(site: string, gateway: string) {
    this.topics = alertTopics(site, gateway);
  }

  encode(e: GatewayEvent): EncodedMessage[] {
    switch (e.kind) {
      case "alert":
        return [
          {
            topic: this.topics.alert(e.deviceId),
            payload: JSON.stringify(this.alert(e)),
            qos: 1,
            retain: false,
          },
        ];
      case "health":
        return [
          {
            topic: this.topics.health(e.deviceId),
            payload: JSON.stringify(this.health(e)),
            qos: 1,
            retain: true,
          },
        ];
      case "status":
        return [this.#status(e)];
      case "sensor-fault":
        return [
          {
            topic: this.topics.sensorFault(e.transition.deviceId),
            payload: JSON.stringify(this.sensorFault(e)),
            qos: 1,
            retain: false,
          },
        ];
      case "device-status":
        return [
          {
            topic: this.topics.deviceStatus(e.status.deviceId),
            payload: JSON.stringify(this.deviceStatus(e)),
            qos: 1,
            retain: true,
          },
        ];
      case "gateway-alert":
        return [
          {
            topic: this.topics.gatewayAlert,
            payload: JSON.stringify(this.gatewayAlert(e)),
            qos: 1,
            retain: false,
          },
        ];
      case "reading":
        // QoS 0: a live view; the store holds every frame (a lost reading costs nothing).
        return [
          {
            topic: this.topics.reading(e.deviceId),
            payload: JSON.stringify(this.reading(e)),
            qos: 0,
            retain: false,
          },
        ];
    }
  }

  reading(e: ReadingEvent): ReadingPayload {
    return {
      v: 1,
      type: "reading",
      site: this.topics.site,
      gateway: this.topics.gateway,
      device: deviceIdHex(e.deviceId),
      seq: e.seq,
      time: isoUs(e.timestampUs),
      timestampUs: e.timestampUs,
      receivedUs: e.receivedUs,
      channels: e.channels && e.channels.length === e.values.length ? [...e.channels] : null,
      values: Array.from(e.values, float32Json),
      clockUnverified: e.clockUnverified,
    };
  }

  gatewayAlert(e: GatewayAlertEvent): GatewayAlertPayload {
    return {
      v: 1,
      type: "gateway-alert",
      id: e.alertId,
      kind: e.alert,
      state: e.state,
      site: this.topics.site,
      gateway: this.topics.gateway,
      severity: e.severity,
      message: e.message,
      time: isoUs(e.atUs),
      timeUs: e.atUs,
      since: isoUs(e.sinceUs),
      sinceUs: e.sinceUs,
      detail: { ...e.detail },
    };
  }

  sensorFault(e: SensorFaultEvent): SensorFaultPayload {
    const t = e.transition;
    return {
      v: 1,
      type: "sensor-fault",
      id: e.faultId,
      state: t.state,
      site: this.topics.site,
      gateway: this.topics.gateway,
      device: deviceIdHex(t.deviceId),
      profile: t.profile,
      channel: t.channel,
      channelIndex: t.channelIndex,
      reason: t.reason,
      severity: "warning",
      value: Number.isFinite(t.value) ? round(t.value) : null,
      time: isoUs(t.atUs),
      timeUs: t.atUs,
      since: isoUs(e.sinceUs),
      sinceUs: e.sinceUs,
      frame: { seq: t.seq, timestampUs: t.timestampUs, receivedUs: t.receivedUs },
      model: { ...e.model },
      receipt: { leaf: bytesToHex(e.leaf), frameLeaf: bytesToHex(t.frameLeaf), batchSeq: null },
    };
  }

  deviceStatus(e: DeviceStatusEvent): DeviceStatusPayload {
    const s = e.status;
    const c = s.commissioning;
    return {
      v: 1,
      type: "device-status",
      site: this.topics.site,
      gateway: this.topics.gateway,
      device: deviceIdHex(s.deviceId),
      profile: s.profile,
      state: s.state,
      reason: s.reason,
      withheld: s.withheld,
      faults: s.faults.map((f) => ({ ...f })),
      commissioning: {
        mode: c.mode,
        age: Number.isFinite(c.age) ? round(c.age) : null,
        baselineRows: c.baselineRows,
        baselineNeeds: c.baselineNeeds,
      },
      model: { ...e.model },
      lastFrame: { seq: s.lastSeq, timestampUs: s.lastTimestampUs },
      time: isoUs(s.atUs),
      timeUs: s.atUs,
    };
  }

  will(e: StatusEvent): EncodedMessage {
    return this.#status(e);
  }

  #status(e: StatusEvent): EncodedMessage {
    return { topic: this.topics.status, payload: JSON.stringify(this.status(e)), qos: 1, retain: true };
  }

  alert(e: AlertEvent): AlertPayload {
    const rule = e.rule;
    return {
      v: 1,
      type: "alert",
      id: e.alertId,
      state: e.state,
      site: this.topics.site,
      gateway: this.topics.gateway,
      device: deviceIdHex(e.deviceId),
      severity: rule.severity,
      rule: { id: rule.id, output: rule.output, op: rule.op, threshold: rule.threshold, clear: rule.clear },
      value: round(e.value),
      time: isoUs(e.atUs),
      timeUs: e.atUs,
      since: isoUs(e.sinceUs),
      sinceUs: e.sinceUs,
      model: { ...e.model },
      window: {
        firstSeq: e.window.firstSeq,
        lastSeq: e.window.lastSeq,
        frames: e.window.frames,
        firstTimestampUs: e.window.firstTimestampUs,
        lastTimestampUs: e.window.lastTimestampUs,
        sha256: Buffer.from(e.windowHash).toString("hex"),
      },
      receipt: { leaf: bytesToHex(e.leaf), inferenceLeaf: bytesToHex(e.inferenceLeaf), batchSeq: null },
    };
  }

  health(e: HealthEvent): HealthPayload {
    const outputs: Record<string, number | null> = {};
    for (const [name, v] of e.outputs) outputs[name] = Number.isFinite(v) ? round(v) : null;
    return {
      v: 1,
      type: "health",
      site: this.topics.site,
      gateway: this.topics.gateway,
      device: deviceIdHex(e.deviceId),
      profile: e.profile,
      time: isoUs(e.atUs),
      timeUs: e.atUs,
      model: { ...e.model },
      outputs,
      lastFrame: {
        seq: e.lastFrame.seq,
        timestampUs: e.lastFrame.timestampUs,
        time: isoUs(e.lastFrame.timestampUs),
        receivedUs: e.lastFrame.receivedUs,
      },
      active: e.active.map((a) => ({
        id: a.alertId,
        rule: a.ruleId,
        severity: a.severity,
        since: isoUs(a.sinceUs),
        sinceUs: a.sinceUs,
      })),
      windows: e.windows,
    };
  }

  status(e: StatusEvent): StatusPayload {
    return {
      v: 1,
      type: "status",
      site: this.topics.site,
      gateway: this.topics.gateway,
      state: e.state,
      reason: e.reason,
      time: isoUs(e.atUs),
      timeUs: e.atUs,
      models: e.models.map((m) => ({ ...m, profiles: [...m.profiles] })),
      anchoringPaused: e.anchoringPaused
        ? {
            reason: e.anchoringPaused.reason,
            message: e.anchoringPaused.message,
            since: isoUs(e.anchoringPaused.sinceUs),
            sinceUs: e.anchoringPaused.sinceUs,
            untilUs: e.anchoringPaused.untilUs,
          }
        : null,
    };
  }
}
