import { Ajv, type ValidateFunction } from "ajv";
import { payloadSchema, type PayloadKind } from "../../gateway/src/alerts/payloads.ts";

const ajv = new Ajv({ allErrors: true, strict: true });
const validators = new Map<PayloadKind, ValidateFunction>();

/** Validates one payload against gateway/src/alerts/schemas/{kind}.schema.json; throws with ajv's errors. */
export function checkPayload(kind: PayloadKind, json: string | Buffer): Record<string, unknown> {
  let v = validators.get(kind);
  if (!v) validators.set(kind, (v = ajv.compile(payloadSchema(kind))));
  const obj = JSON.parse(json.toString()) as Record<string, unknown>;
  if (!v(obj)) throw new Error(`${kind} payload invalid: ${ajv.errorsText(v.errors)}\n${json.toString()}`);
  return obj;
}

/** Kind of an alert-scheme topic, or undefined. */
export function kindOf(topic: string): PayloadKind | undefined {
  // vigil/v1/{site}/{gateway}/alert is the gateway's own; one level more, a device's.
  if (topic.endsWith("/alert")) return topic.split("/").length === 6 ? "alert" : "gateway-alert";
  if (topic.endsWith("/health")) return "health";
  if (topic.endsWith("/reading")) return "reading";
  if (topic.endsWith("/sensor-fault")) return "sensor-fault";
  // vigil/v1/{site}/{gateway}/status is the gateway's; one level more, a device's.
  if (topic.endsWith("/status")) return topic.split("/").length === 6 ? "device-status" : "status";
  return undefined;
}
