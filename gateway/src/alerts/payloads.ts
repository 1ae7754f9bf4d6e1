/**
 * JSON payloads of the alert topics, version 1. One JSON Schema per payload lives in
 * ./schemas (alert, health, status, sensor-fault, device-status, gateway-alert, reading); test/alerts checks every payload the gateway publishes
 * against them. Field meanings: README.md.
 */
import { readFileSync } from "node:fs";
import { fromRoot } from "../core/paths.ts";

import type { ModelRef } from "./events.ts";

export type { ModelRef };

export interface WindowRef {
  /** Extended seq of the first real frame of the input window (padding rows repeat it). */
  firstSeq: number;
  /** Extended seq of the window's last frame. */
  lastSeq: number;
  /** Real frames in the window (fewer than the model's window while a device starts). */
  frames: number;
  firstTimestampUs: number;
  lastTimestampUs: number;
  /** sha256 of the exact float32 little-endian input window, lowercase hex. */
  sha256: string;
}

export interface ReceiptRef {
  /** keccak256 ALERT leaf (gateway/src/core/leaf.ts), 0x-hex: the key to fetch the receipt. */
  leaf: string;
  /** keccak256 INFERENCE leaf of the result that triggered the alert, 0x-hex. */
  inferenceLeaf: string;
  /** Sequence of the Merkle batch holding the leaf: null when published (sealing comes later). */
  batchSeq: number | null;
}

export interface AlertPayload {
  v: 1;
  type: "alert";
  /** Stable id of the episode: the same in its `raised` and `cleared` messages. */
  id: string;
  state: "raised" | "cleared";
  site: string;
  gateway: string;
  device: string;
  severity: "info" | "warning" | "critical";
  rule: { id: string; output: string; op: "<=" | ">="; threshold: number; clear: number };
  /** The output value that caused this transition. */
  value: number;
  time: string;
  timeUs: number;
  /** When the episode was raised. */
  since: string;
  sinceUs: number;
  model: ModelRef;
  window: WindowRef;
  receipt: ReceiptRef;
}

export interface HealthPayload {
  v: 1;
  type: "health";
  site: string;
  gateway: string;
  device: string;
  profile: string;
  time: string;
  timeUs: number;
  model: ModelRef;
  /** Latest value of each model output (4 decimals), e.g. { "rul": 87.4 }; null when not finite. */
  outputs: Record<string, number | null>;
  lastFrame: { seq: number; timestampUs: number; time: string; receivedUs: number };
  active: Array<{
    id: string;
    rule: string;
    severity: "info" | "warning" | "critical";
    since: string;
    sinceUs: number;
  }>;
  windows: number;
}

export interface StatusPayload {
  v: 1;
  type: "status";
  site: string;
  gateway: string;
  state: "online" | "offline";
  /**
   * start / stop: published by the gateway; models: the live models changed (an update was
   * promoted); will: the broker published the last will; reconnect: the connection to an external
   * broker is back after the will; anchoring: anchoring on chain paused or resumed (see
   * `anchoringPaused`).
   */
  reason: "start" | "stop" | "will" | "reconnect" | "models" | "anchoring";
  time: string;
  timeUs: number;
  models: Array<ModelRef & { profiles: string[] }>;
  /** Null while batches are anchored (or anchoring is off); otherwise why it is paused. */
  anchoringPaused: {
    reason: string;
    message: string;
    since: string;
    sinceUs: number;
    /** When it resumes by itself; null: when the condition clears. */
    untilUs: number | null;
  } | null;
}

/** Published on `{device}/sensor-fault` when a sensor fault is raised or cleared. */
export interface SensorFaultPayload {
  v: 1;
  type: "sensor-fault";
  /**
   * Stable id of the episode: `{device}-{channel}-{raisedAtUs}` (the raising frame's arrival, also
   * after a restart), the same in raised and cleared.
   */
  id: string;
  state: "raised" | "cleared";
  site: string;
  gateway: string;
  device: string;
  profile: string;
  /** Channel name (HELLO / manifest) and its index in the frame. */
  channel: string;
  channelIndex: number;
  /** The check that raised the fault (on `cleared` too). */
  reason: "missing" | "out-of-range" | "stuck" | "spike";
  /** Always "warning": a sensor fault is about the data, not the machine. */
  severity: "warning";
  /** The channel's raw value in the frame, 4 decimals; null when NaN/±Inf. */
  value: number | null;
  time: string;
  timeUs: number;
  since: string;
  sinceUs: number;
  /** The frame that raised or cleared the fault. */
  frame: { seq: number; timestampUs: number; receivedUs: number };
  /** The model whose data-quality rules (manifest `inputs.quality`) flagged it. */
  model: ModelRef;
  /** `leaf`: the SENSOR_FAULT leaf; `frameLeaf`: the frame's FRAME leaf; `batchSeq` null when published. */
  receipt: { leaf: string; frameLeaf: string; batchSeq: number | null };
}

/** Retained on `{device}/status`: the device's data-quality and commissioning state. */
export interface DeviceStatusPayload {
  v: 1;
  type: "device-status";
  site: string;
  gateway: string;
  device: string;
  profile: string;
  /** `ok`: predictions run; `data-quality`: the last window was withheld (no prediction). */
  state: "ok" | "data-quality";
  /** The window rule: ok, window-imputed, row-imputed, features-lost. */
  reason: "ok" | "window-imputed" | "row-imputed" | "features-lost";
  /**
   * Windows withheld for data quality by the live model since the gateway started or that model
   * was attached, as of this status.
   */
  withheld: number;
  faults: Array<{ channel: string; reason: "missing" | "out-of-range" | "stuck" | "spike" }>;
  commissioning: {
    mode: "first-cycle" | "mid-life" | "assumed-first-cycle" | "not-needed";
    /** The machine's age (origin feature) in the device's first frame; null when unknown. */
    age: number | null;
    baselineRows: number;
    baselineNeeds: number;
  };
  model: ModelRef;
  lastFrame: { seq: number; timestampUs: number };
  time: string;
  timeUs: number;
}

/**
 * Published on `vigil/v1/{site}/{gateway}/alert` when a condition of the gateway itself is raised
 * or cleared (not retained; the retained updates status carries the state for late subscribers).
 */
export interface GatewayAlertPayload {
  v: 1;
  type: "gateway-alert";
  /** Stable id of the episode: `{kind}-{raisedAtUs}`, the same in raised and cleared. */
  id: string;
  /** What is wrong: `update-check-stale` (no update check succeeded for updates.staleAfterMs). */
  kind: "update-check-stale";
  state: "raised" | "cleared";
  site: string;
  gateway: string;
  severity: "info" | "warning" | "critical";
  /** One sentence for an operator. */
  message: string;
  time: string;
  timeUs: number;
  since: string;
  sinceUs: number;
  /** update-check-stale: lastSuccessMs (ms since the epoch: the newest chain-view time among successful checks, never before the agent's start), staleAfterMs, lastError (null: none). */
  detail: Record<string, string | number | null>;
}

export function isoUs(us: number): string {
  return new Date(Math.floor(us / 1000)).toISOString();
}

/** `vigil/v1/{site}/{gateway}/{device}/reading` (schemas/reading.schema.json). */
export interface ReadingPayload {
  v: 1;
  type: "reading";
  site: string;
  gateway: string;
  device: string;
  seq: number;
  time: string;
  timestampUs: number;
  receivedUs: number;
  channels: string[] | null;
  values: Array<number | null>;
  clockUnverified: boolean;
}

export type PayloadKind =
  "alert" | "health" | "status" | "sensor-fault" | "device-status" | "gateway-alert" | "reading";

/** The JSON Schema of one payload kind (draft-07), read from ./schemas. */
export function payloadSchema(kind: PayloadKind): object {
  return JSON.parse(
    readFileSync(fromRoot("gateway", "src", "alerts", "schemas", `${kind}.schema.json`), "utf8"),
  ) as object;
}
