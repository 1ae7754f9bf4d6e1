import { describe, expect, it } from "vitest";
import type { ManifestAlert } from "../../gateway/src/infer/features/manifest.ts";
import { RuleEngine } from "../../gateway/src/alerts/rules.ts";

const warning: ManifestAlert = {
  id: "rul-warning",
  output: "rul",
  severity: "warning",
  op: "<=",
  threshold: 50,
  clear: 60,
};
const critical: ManifestAlert = {
  id: "rul-critical",
  output: "rul",
  severity: "critical",
  op: "<=",
  threshold: 20,
  clear: 30,
};
const score: ManifestAlert = {
  id: "score-high",
  output: "score",
  severity: "warning",
  op: ">=",
  threshold: 0.8,
  clear: 0.6,
};

function run(rules: ManifestAlert[], values: number[], output = "rul"): string[] {
  const e = new RuleEngine();
  const out: string[] = [];
  values.forEach((v, t) => {
    for (const tr of e.evaluate(1, rules, (o) => (o === output ? v : NaN), t))
      out.push(`${t}:${tr.alert.rule.id}:${tr.state}`);
  });
  return out;
}

describe("alert rules", () => {
  it("behavior: raised once at the threshold, not again while active (dedup), cleared only past `clear` (hysteresis)", () => {
    expect(run([warning], [80, 51, 50, 49, 40, 55, 59, 60, 49, 61, 70])).toEqual([
      "2:rul-warning:raised",
      "9:rul-warning:cleared",
    ]);
  });

  it("behavior: values flapping inside the hysteresis band never produce messages", () => {
    expect(run([warning], [49, 52, 48, 58, 45, 59.9, 50])).toEqual(["0:rul-warning:raised"]);
  });

  it("behavior: a falling RUL raises warning then critical, each with its own episode; recovery clears both", () => {
    expect(run([warning, critical], [100, 45, 30, 20, 10, 25, 31, 65])).toEqual([
      "1:rul-warning:raised",
      "3:rul-critical:raised",
      "6:rul-critical:cleared",
      "7:rul-warning:cleared",
    ]);
  });

  it("behavior: `>=` rules (anomaly score) mirror `<=` ones", () => {
    expect(run([score], [0.1, 0.8, 0.9, 0.7, 0.61, 0.59, 0.85], "score")).toEqual([
      "1:score-high:raised",
      "5:score-high:cleared",
      "6:score-high:raised",
    ]);
  });

  it("behavior: NaN never changes state; devices are independent", () => {
    const e = new RuleEngine();
    expect(e.evaluate(1, [warning], () => NaN, 0)).toEqual([]);
    // ±Inf neither: −Inf would raise a `<=` rule with a value no payload can carry.
    expect(e.evaluate(1, [warning], () => -Infinity, 0)).toEqual([]);
    expect(e.evaluate(1, [score], () => Infinity, 0)).toEqual([]);
    expect(e.evaluate(1, [warning], () => 10, 1)).toHaveLength(1);
    expect(e.evaluate(2, [warning], () => 10, 1)).toHaveLength(1);
    expect(e.active(1).map((a) => [a.rule.id, a.sinceUs, a.id])).toEqual([
      ["rul-warning", 1, "00000001-rul-warning-1"],
    ]);
    expect(e.raised).toBe(2);
  });

  it("behavior: a raised rule the device's model no longer has (an update dropped it, a new profile) is cleared at its next result, with the output's value or the raising one", () => {
    const e = new RuleEngine();
    expect(e.evaluate(1, [warning, critical], () => 10, 1)).toHaveLength(2);
    // The promoted model keeps rul-warning only: rul-critical's episode ends now.
    const t = e.evaluate(1, [warning], () => 12, 2);
    expect(t.map((x) => [x.alert.id, x.state, x.value])).toEqual([
      ["00000001-rul-critical-1", "cleared", 12],
    ]);
    expect(e.active(1).map((a) => a.rule.id)).toEqual(["rul-warning"]);
    // A new profile whose model has no `rul` output at all: cleared with the value it was raised with.
    const t2 = e.evaluate(1, [score], () => NaN, 3);
    expect(t2.map((x) => [x.alert.id, x.state, x.value])).toEqual([
      ["00000001-rul-warning-1", "cleared", 10],
    ]);
    expect(e.active(1)).toEqual([]);
    expect([e.raised, e.cleared]).toEqual([2, 2]);
  });

  it("behavior: state carries over a model update: the new model's rule with the same id continues the episode", () => {
    const e = new RuleEngine();
    expect(e.evaluate(1, [warning], () => 40, 1)).toHaveLength(1);
    const updated: ManifestAlert = { ...warning, threshold: 45, clear: 55 };
    // Still inside the (new) band: no second raise, and the active alert now carries the new rule.
    expect(e.evaluate(1, [updated], () => 44, 2)).toEqual([]);
    expect(e.active(1)[0]!.rule).toBe(updated);
    const cleared = e.evaluate(1, [updated], () => 56, 3);
    expect(cleared.map((t) => t.state)).toEqual(["cleared"]);
    expect(cleared[0]!.alert.id).toBe("00000001-rul-warning-1");
  });
});
