/** Alert-stage events (alerts/events.ts) built by hand for the live-feed and metrics tests. */
import type { AlertEvent, HealthEvent, ModelRef } from "../../gateway/src/alerts/events.ts";
import type { ManifestAlert } from "../../gateway/src/infer/features/manifest.ts";

export const MODEL: ModelRef = { name: "rotating-v1-health", version: "1.0.0", sha256: "5e".repeat(32) };
export const T0_US = 1_764_000_000_000_000;

export function health(deviceId: number, value: number, atUs = T0_US, active = 0): HealthEvent {
  return {
    kind: "health",
    deviceId,
    profile: "rotating-v1",
    atUs,
    model: MODEL,
    outputs: [["p_fail", value]],
    lastFrame: { seq: 1, timestampUs: atUs, receivedUs: atUs },
    active: Array.from({ length: active }, (_, i) => ({
      alertId: `a${i}`,
      ruleId: "failure-warning",
      severity: "warning" as const,
      sinceUs: atUs,
    })),
    windows: 1,
  };
}

export function rule(severity: ManifestAlert["severity"] = "warning"): ManifestAlert {
  return { id: `failure-${severity}`, output: "p_fail", severity, op: ">=", threshold: 0.5, clear: 0.3 };
}

export function alert(
  deviceId: number,
  state: "raised" | "cleared",
  severity: ManifestAlert["severity"] = "warning",
  alertId = `${deviceId}-${severity}`,
  atUs = T0_US,
): AlertEvent {
  return {
    kind: "alert",
    state,
    alertId,
    deviceId,
    profile: "rotating-v1",
    rule: rule(severity),
    value: state === "raised" ? 0.62 : 0.21,
    atUs,
    sinceUs: T0_US,
    model: MODEL,
    window: {
      firstSeq: 1,
      lastSeq: 64,
      frames: 64,
      firstTimestampUs: T0_US,
      lastTimestampUs: atUs,
      lastReceivedUs: atUs,
      rows: 64,
    },
    windowHash: new Uint8Array(32),
    leaf: new Uint8Array(32).fill(0xa1),
    inferenceLeaf: new Uint8Array(32).fill(0xb2),
  };
}
