/**
 * MQTT topic scheme, version 1 (documented in hardware/PROTOCOL.md and the README).
 * Topic levels never contain wildcards or empty levels [MQTT-4.7.3-1], [MQTT-4.7.1-1].
 */
export const TOPIC_ROOT = "vigil/v1";
/** Device frames: `vigil/v1/ingest/{device_id_hex}` (binary) and `…/json`. */
export const INGEST_TOPIC_PREFIX = `${TOPIC_ROOT}/ingest/`;
export const INGEST_SUBSCRIPTION = `${INGEST_TOPIC_PREFIX}+`;
export const INGEST_JSON_SUBSCRIPTION = `${INGEST_TOPIC_PREFIX}+/json`;

export type IngestTopic = { deviceHex: string; json: boolean } | { deviceHex: string; nack: true };

/** Parses an ingest topic; undefined for anything else. */
export function parseIngestTopic(topic: string): { deviceHex: string; json: boolean } | undefined {
  if (!topic.startsWith(INGEST_TOPIC_PREFIX)) return undefined;
  const rest = topic.slice(INGEST_TOPIC_PREFIX.length);
  const slash = rest.indexOf("/");
  if (slash === -1) return { deviceHex: rest, json: false };
  if (rest.slice(slash + 1) === "json") return { deviceHex: rest.slice(0, slash), json: true };
  return undefined;
}

export function nackTopic(deviceHex: string): string {
  return `${INGEST_TOPIC_PREFIX}${deviceHex}/nack`;
}
