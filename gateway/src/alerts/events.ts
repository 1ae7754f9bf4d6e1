/**
 * What the alert stage produces, before any encoding: alert transitions, sensor-fault
 * transitions, device health, device data-quality status, the gateway's status and the
 * gateway's own alerts. An encoder (encoder.ts; Vigil JSON in vigil-json.ts) turns events into MQTT
 * messages, so another wire format (e.g. Sparkplug B) is one new encoder.
 */
import type { ManifestAlert } from "../infer/features/manifest.ts";
import type { DeviceQualityStatus, SensorFaultTransition } from "../infer/quality-events.ts";
import type { WindowMeta } from "../infer/window.ts";

/** The model behind an output: name, version and the sha256 of its ONNX file (lowercase hex). */
export interface ModelRef {
  name: string;
  version: string;
  sha256: string;
}

export type Severity = ManifestAlert["severity"];

/** An alert rule crossed its threshold (raised) or its clear level (cleared). */
export interface AlertEvent {
  kind: "alert";
  state: "raised" | "cleared";
  /** Stable id of the episode: the same in its raised and cleared events. */
  alertId: string;
  deviceId: number;
  profile: string;
  rule: ManifestAlert;
  /** The output value that caused the transition. */
  value: number;
  /** Gateway clock of the transition, µs. */
  atUs: number;
  /** When the episode was raised, µs. */
  sinceUs: number;
  model: ModelRef;
  window: WindowMeta;
  /** sha256 of the input window. */
  windowHash: Uint8Array;
  /** keccak256 ALERT leaf of this transition and the INFERENCE leaf of the result behind it. */
  leaf: Uint8Array;
  inferenceLeaf: Uint8Array;
}

/** An alert that is raised and not cleared. */
export interface ActiveAlertRef {
  alertId: string;
  ruleId: string;
  severity: Severity;
  sinceUs: number;
}

/** The latest outputs of a device's live model. */
export interface HealthEvent {
  kind: "health";
  deviceId: number;
  profile: string;
  atUs: number;
  model: ModelRef;
  /** Output names and values, manifest order. */
  outputs: ReadonlyArray<readonly [string, number]>;
  lastFrame: { seq: number; timestampUs: number; receivedUs: number };
  active: ActiveAlertRef[];
  /** Windows run for the device since the gateway started. */
  windows: number;
}

/**
 * Why anchoring batches on chain is paused (the anchor stage's pause, declared here because alerts
 * sit below anchor; runtime.ts passes it on). Ingest and sealing go on while it is paused.
 */
export interface AnchoringPause {
  /** fee-cap, spend-cap, gateway-inactive, insufficient-funds, … (anchor/service.ts). */
  reason: string;
  message: string;
  sinceUs: number;
  /** When it resumes by itself (a spend cap the day's spend reached: next 00:00 UTC); null: when the condition clears (a spend cap passed only by the next transaction's worst case is re-checked). */
  untilUs: number | null;
}

/**
 * The gateway came up, is going down, or vanished (published by the broker as last will); or,
 * reason "anchoring", anchoring paused or resumed.
 */
export interface StatusEvent {
  kind: "status";
  state: "online" | "offline";
  reason: "start" | "stop" | "will" | "reconnect" | "models" | "anchoring";
  atUs: number;
  models: Array<ModelRef & { profiles: string[] }>;
  anchoringPaused: AnchoringPause | null;
}

/**
 * A sensor fault raised or cleared (the data-quality stage, not a model output): its own kind,
 * topic and attestation leaf (SENSOR_FAULT), so a broken sensor is never read as a failing machine.
 */
export interface SensorFaultEvent {
  kind: "sensor-fault";
  /** Stable id of the episode: the same in its raised and cleared events. */
  faultId: string;
  transition: SensorFaultTransition;
  /** When the episode was raised, µs (gateway clock). */
  sinceUs: number;
  model: ModelRef;
  /** keccak256 SENSOR_FAULT leaf of this transition. */
  leaf: Uint8Array;
}

/** A device's data-quality and commissioning status changed (retained per device). */
export interface DeviceStatusEvent {
  kind: "device-status";
  status: DeviceQualityStatus;
  model: ModelRef;
}

/** Conditions of the gateway itself (not of a device or its data) that raise a gateway alert. */
export type GatewayAlertKind = "update-check-stale";

/**
 * A condition of the gateway itself raised or cleared: one `raised` when it starts, one `cleared`
 * when it ends. Not attested: it names no device, frame or window a receipt could prove.
 */
export interface GatewayAlertEvent {
  kind: "gateway-alert";
  alert: GatewayAlertKind;
  /** Stable id of the episode: the same in its raised and cleared events. */
  alertId: string;
  state: "raised" | "cleared";
  severity: Severity;
  /** One sentence for an operator. */
  message: string;
  /** Gateway clock of the transition, µs. */
  atUs: number;
  /** When the episode was raised, µs. */
  sinceUs: number;
  /** Facts behind it, per kind (update-check-stale: lastSuccessMs, staleAfterMs, lastError). */
  detail: Record<string, string | number | null>;
}

/**
 * A stored DATA frame decoded for dashboards (throttled per device, AlertService.onReading): the
 * values as sent, with the channel names of the device's last HELLO.
 */
export interface ReadingEvent {
  kind: "reading";
  deviceId: number;
  /** The device's u32 sequence number of the frame. */
  seq: number;
  /** Device timestamp, µs (the arrival time when the device has no clock). */
  timestampUs: number;
  /** Gateway clock at arrival, µs. */
  receivedUs: number;
  /** Channel names from the device's last HELLO, in value order; undefined before a HELLO. */
  channels: readonly string[] | undefined;
  values: Float32Array;
  /** The gateway clock was not known good when the frame arrived (FrameRecord.clockUnverified). */
  clockUnverified: boolean;
}

export type GatewayEvent =
  | AlertEvent
  | HealthEvent
  | StatusEvent
  | SensorFaultEvent
  | DeviceStatusEvent
  | GatewayAlertEvent
  | ReadingEvent;
