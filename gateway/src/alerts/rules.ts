/**
 * Threshold rules from a model manifest's `alerts` section, with hysteresis and
 * de-duplication, per device:
 * - `op "<="`: raised when value ≤ threshold; cleared only once value > clear (clear > threshold).
 * - `op ">="`: raised when value ≥ threshold; cleared only once value < clear (clear < threshold).
 * - Between threshold and clear (the hysteresis band) the state does not change.
 * - Only transitions are reported: a raised rule is not raised again until it has cleared
 *   (de-duplication), so a dashboard sees one `raised` and one `cleared` per episode.
 * - A NaN value never changes state. Rules are independent, so a falling RUL raises
 *   `rul-warning` and later `rul-critical`, each with its own severity.
 * State is keyed by device and rule id, so it carries over when a model update is promoted
 * (the new model's rules with the same ids continue the episodes; a raised rule the device's model
 * no longer has, after an update or a profile change, is cleared at the device's next result).
 * State is in memory: after a gateway restart a condition that still holds is raised again
 * (consumers should key on device + rule, see README.md).
 */
import type { ManifestAlert } from "../infer/features/manifest.ts";
import { deviceIdHex } from "../protocol/frame.ts";

export type Severity = ManifestAlert["severity"];
/** Severity byte committed in ALERT leaves. */
export const SEVERITY_CODE: Record<Severity, number> = { info: 1, warning: 2, critical: 3 };

export interface ActiveAlert {
  id: string;
  rule: ManifestAlert;
  sinceUs: number;
  value: number;
}

export interface AlertTransition {
  state: "raised" | "cleared";
  alert: ActiveAlert;
  value: number;
}

interface DeviceRules {
  active: Map<string, ActiveAlert>;
}

export function breaches(rule: ManifestAlert, v: number): boolean {
  return rule.op === "<=" ? v <= rule.threshold : v >= rule.threshold;
}

export function recovered(rule: ManifestAlert, v: number): boolean {
  return rule.op === "<=" ? v > rule.clear : v < rule.clear;
}

export class RuleEngine {
  readonly #devices = new Map<number, DeviceRules>();
  raised = 0;
  cleared = 0;

  /**
   * Applies `rules` to one result (`value(output name)`), returning the transitions (usually
   * none). `nowUs` stamps newly raised alerts.
   */
  evaluate(
    deviceId: number,
    rules: readonly ManifestAlert[],
    value: (output: string) => number,
    nowUs: number,
  ): AlertTransition[] {
    let d = this.#devices.get(deviceId);
    if (!d) this.#devices.set(deviceId, (d = { active: new Map() }));
    let out: AlertTransition[] | undefined;
    for (const rule of rules) {
      const v = value(rule.output);
      // NaN and ±Inf never change state: ±Inf would raise a rule with a value no payload can carry.
      if (!Number.isFinite(v)) continue;
      const cur = d.active.get(rule.id);
      if (cur !== undefined) cur.rule = rule; // a promoted model's version of the rule
      if (cur === undefined && breaches(rule, v)) {
        const alert: ActiveAlert = {
          id: `${deviceIdHex(deviceId)}-${rule.id}-${nowUs}`,
          rule,
          sinceUs: nowUs,
          value: v,
        };
        d.active.set(rule.id, alert);
        this.raised++;
        (out ??= []).push({ state: "raised", alert, value: v });
      } else if (cur !== undefined && recovered(rule, v)) {
        d.active.delete(rule.id);
        this.cleared++;
        (out ??= []).push({ state: "cleared", alert: cur, value: v });
      }
    }
    // A raised rule the device's model no longer has (a promoted model dropped it, or the device
    // changed profile) would never be evaluated again: it is cleared now, so its episode ends,
    // with the current value of its output (the value it was raised with when the model has no
    // such output: a payload's value is always a number).
    for (const [id, cur] of d.active) {
      if (rules.some((r) => r.id === id)) continue;
      d.active.delete(id);
      this.cleared++;
      const v = value(cur.rule.output);
      (out ??= []).push({ state: "cleared", alert: cur, value: Number.isFinite(v) ? v : cur.value });
    }
    return out ?? NONE;
  }

  active(deviceId: number): ActiveAlert[] {
    const d = this.#devices.get(deviceId);
    return d ? [...d.active.values()] : [];
  }
}

const NONE: AlertTransition[] = [];
