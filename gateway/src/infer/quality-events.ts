/**
 * What the data-quality stage (features/quality.ts, run by DeviceWindow) tells the rest of the
 * gateway, per device of a live lane:
 *
 * - a **sensor-fault transition**: a used channel became faulted (flagged `faultFrames` frames in
 *   a row) or recovered (`clearFrames` good frames in a row). It is about the sensor, not the
 *   machine: the alert stage publishes it on its own topic and attests it with its own leaf kind
 *   (SENSOR_FAULT, core/leaf.ts), never as a machine-health alert.
 * - a **device status**: whether the device's last window ran (`ok`) or was withheld for data
 *   quality (`data-quality`, with the window rule that withheld it), its faulted channels and its
 *   commissioning mode (features/commissioning.ts). Emitted when the device is first seen and
 *   whenever one of these changes (not per frame), so a retained status stays current.
 */
import { frameLeaf } from "../core/leaf.ts";
import type { Commissioning } from "./features/commissioning.ts";
import { QUALITY_REASONS, WINDOW_VERDICTS, type QualityReason } from "./features/quality.ts";
import type { LoadedModel } from "./registry.ts";
import type { DeviceWindow } from "./window.ts";

export type WindowVerdictName = (typeof WINDOW_VERDICTS)[number];

/** A used channel's sensor fault was raised or cleared by one frame. */
export interface SensorFaultTransition {
  model: LoadedModel;
  deviceId: number;
  profile: string;
  /** Channel name (the manifest's `inputs.channels`, = HELLO name) and its index in the frame. */
  channel: string;
  channelIndex: number;
  state: "raised" | "cleared";
  /** The check that raised the fault (also on `cleared`: the reason that had raised it). */
  reason: Exclude<QualityReason, "ok">;
  /** The channel's raw value in this frame as the device sent it (NaN/±Inf possible). */
  value: number;
  /** The frame: extended seq, device timestamp, gateway arrival (µs). */
  seq: number;
  timestampUs: number;
  receivedUs: number;
  /** FRAME leaf of the frame (core/leaf.ts): binds the transition to the stored frame. */
  frameLeaf: Uint8Array;
  /** Gateway clock when the transition was seen, µs. */
  atUs: number;
  /**
   * Gateway arrival time (µs) of the frame that raised the fault, on `raised` and `cleared` alike:
   * the episode's identity, the same after a gateway restart (the warm-up replays that frame).
   */
  raisedAtUs: number;
}

/** A device's data-quality and commissioning state (see the module comment for when it is emitted). */
export interface DeviceQualityStatus {
  model: LoadedModel;
  deviceId: number;
  profile: string;
  /** `ok`: the last completed window ran (or none completed yet); `data-quality`: it was withheld. */
  state: "ok" | "data-quality";
  /** The window rule behind `state` (`ok` when it ran). */
  reason: WindowVerdictName;
  /** Windows withheld for data quality since the device was first seen by this gateway. */
  withheld: number;
  /** Channels in sensor fault now, with the reason that raised each. */
  faults: Array<{ channel: string; reason: Exclude<QualityReason, "ok"> }>;
  commissioning: Commissioning;
  /** The frame that triggered the status. */
  lastSeq: number;
  lastTimestampUs: number;
  atUs: number;
}

type FaultReason = Exclude<QualityReason, "ok">;

/**
 * The sensor-fault transitions of the frame just pushed into `dev` (call right after push).
 * Allocates only when there are transitions.
 */
export function sensorFaultTransitions(
  dev: DeviceWindow,
  values: ArrayLike<number>,
  frame: { seq: number; timestampUs: number; receivedUs: number; raw: Buffer | undefined },
  atUs: number,
): SensorFaultTransition[] {
  const q = dev.frameQuality;
  const out: SensorFaultTransition[] = [];
  if (q.changedCount === 0) return out;
  const st = dev.qualityState;
  const spec = dev.quality;
  const leaf = frame.raw
    ? frameLeaf({ seq: frame.seq, receivedUs: frame.receivedUs, raw: frame.raw })
    : undefined;
  for (let k = 0; k < q.changedCount; k++) {
    const u = q.changed[k]!;
    const ch = spec.channel[u]!;
    out.push({
      model: dev.model,
      deviceId: dev.deviceId,
      profile: dev.profile,
      channel: spec.names[u]!,
      channelIndex: ch,
      state: st.faulted[u] ? "raised" : "cleared",
      reason: QUALITY_REASONS[st.faultCode[u]!] as FaultReason,
      value: values[ch] as number,
      seq: frame.seq,
      timestampUs: frame.timestampUs,
      receivedUs: frame.receivedUs,
      frameLeaf: leaf ?? new Uint8Array(32),
      atUs,
      raisedAtUs: st.raisedRxUs[u]!,
    });
  }
  return out;
}

/** The device's current status (allocates: call on change only). */
export function deviceQualityStatus(dev: DeviceWindow, atUs: number): DeviceQualityStatus {
  const st = dev.qualityState;
  const faults: DeviceQualityStatus["faults"] = [];
  for (let u = 0; u < st.faulted.length; u++)
    if (st.faulted[u])
      faults.push({
        channel: dev.quality.names[u]!,
        reason: QUALITY_REASONS[st.faultCode[u]!] as FaultReason,
      });
  const reason = WINDOW_VERDICTS[dev.windowVerdict] ?? "ok";
  return {
    model: dev.model,
    deviceId: dev.deviceId,
    profile: dev.profile,
    state: reason === "ok" ? "ok" : "data-quality",
    reason,
    withheld: dev.withheld,
    faults,
    commissioning: dev.commissioning,
    lastSeq: dev.lastSeq,
    lastTimestampUs: dev.lastTimestampUs,
    atUs,
  };
}
