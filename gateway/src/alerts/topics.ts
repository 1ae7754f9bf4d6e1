/**
 * Alert topic scheme, version 1 (README.md in this folder):
 *   vigil/v1/{site}/{gateway}/{device}/alert    alert events, QoS 1, not retained
 *   vigil/v1/{site}/{gateway}/{device}/health   latest health per device, QoS 1, retained
 *   vigil/v1/{site}/{gateway}/{device}/sensor-fault  sensor faults, QoS 1, not retained
 *   vigil/v1/{site}/{gateway}/{device}/status   device data-quality/commissioning, QoS 1, retained
 *   vigil/v1/{site}/{gateway}/status            gateway online/offline, QoS 1, retained (+ LWT)
 *   vigil/v1/{site}/{gateway}/alert             alerts about the gateway itself, QoS 1, not retained
 * {device} is the 8-hex-digit device id. {site} and {gateway} are operator-chosen ids,
 * sanitised here into valid topic levels.
 */
import { VigilError } from "../core/errors.ts";
import { deviceIdHex } from "../protocol/frame.ts";
import { TOPIC_ROOT } from "../protocol/topics.ts";

export class TopicLevelError extends VigilError {
  override name = "TopicLevelError";
  constructor(field: string, message: string) {
    super("BAD_TOPIC_LEVEL", `${field}: ${message}`);
  }
}

const MAX_LEVEL = 64;
/** Levels that would collide with the gateway's own ingest topics under vigil/v1/. */
const RESERVED_SITES = new Set(["ingest"]);

/**
 * Turns an operator id into one topic level. A topic level must be non-empty in our scheme
 * (an empty level is legal MQTT but makes `+` subscriptions ambiguous), must not contain the
 * separator `/` or the wildcards `+` `#` (wildcards are never part of a topic name,
 * [MQTT-4.7.1-1]), nor U+0000 [MQTT-4.7.3-2], and should not start with `$` (reserved for broker
 * topics, [MQTT-4.7.2-1]). Everything outside `[A-Za-z0-9._-]` becomes `_`, so ids stay
 * readable in every client; the result is at most 64 characters. Throws when nothing usable
 * remains.
 */
export function topicLevel(id: string, field: string): string {
  const s = id
    .trim()
    .replace(/[^A-Za-z0-9._-]/g, "_")
    .slice(0, MAX_LEVEL);
  if (s === "" || /^_+$/.test(s))
    throw new TopicLevelError(field, `"${id}" has no usable characters for an MQTT topic level`);
  return s;
}

export interface AlertTopics {
  site: string;
  gateway: string;
  status: string;
  /** Alerts about the gateway itself (gateway-alert): one topic level fewer than a device's alerts. */
  gatewayAlert: string;
  /** The registry cache's retained state (runtime.ts, gateway/src/access/README.md). */
  access: string;
  alert(deviceId: number): string;
  health(deviceId: number): string;
  sensorFault(deviceId: number): string;
  deviceStatus(deviceId: number): string;
  /** Decoded readings of a device's stored frames, for dashboards (QoS 0, throttled). */
  reading(deviceId: number): string;
}

export function alertTopics(site: string, gateway: string): AlertTopics {
  const s = topicLevel(site, "site");
  if (RESERVED_SITES.has(s))
    throw new TopicLevelError("site", `"${s}" is reserved (vigil/v1/ingest/ carries device frames)`);
  const g = topicLevel(gateway, "gateway");
  const base = `${TOPIC_ROOT}/${s}/${g}`;
  return {
    site: s,
    gateway: g,
    status: `${base}/status`,
    gatewayAlert: `${base}/alert`,
    access: `${base}/access`,
    alert: (id) => `${base}/${deviceIdHex(id)}/alert`,
    health: (id) => `${base}/${deviceIdHex(id)}/health`,
    reading: (id) => `${base}/${deviceIdHex(id)}/reading`,
    sensorFault: (id) => `${base}/${deviceIdHex(id)}/sensor-fault`,
    deviceStatus: (id) => `${base}/${deviceIdHex(id)}/status`,
  };
}

/** Subscriptions for a dashboard of one gateway (or `+` for all sites/gateways). */
export function dashboardSubscriptions(site = "+", gateway = "+"): string[] {
  return [
    `${TOPIC_ROOT}/${site}/${gateway}/+/alert`,
    `${TOPIC_ROOT}/${site}/${gateway}/+/health`,
    `${TOPIC_ROOT}/${site}/${gateway}/+/sensor-fault`,
    `${TOPIC_ROOT}/${site}/${gateway}/+/status`,
    `${TOPIC_ROOT}/${site}/${gateway}/status`,
    `${TOPIC_ROOT}/${site}/${gateway}/alert`,
  ];
}
