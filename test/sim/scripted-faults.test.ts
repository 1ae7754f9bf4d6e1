// Scripted sensor faults of the simulator (device-sim/src/faults.ts): the deterministic NaN / stuck /
// spike values the demo and the sensor-fault tests rely on.
import { describe, expect, it } from "vitest";
import { FaultCounters, parseScriptedFaults, ScriptedFaults } from "../../device-sim/src/faults.ts";

const CH = ["a", "b", "c"];

function run(spec: string, deviceId = 1, frames = 8): number[][] {
  const f = new ScriptedFaults(parseScriptedFaults(spec), deviceId, CH);
  const counters = new FaultCounters();
  const out: number[][] = [];
  for (let step = 0; step < frames; step++) {
    const v = Float32Array.of(step, 10 + step, 20 + step);
    f.apply(v, step, counters);
    out.push(Array.from(v));
  }
  return out;
}

describe("scripted sensor faults", () => {
  it("behavior: stuck holds the value at FROM for FRAMES frames; nan and spike (×5) hit only their channel and frames", () => {
    const stuck = run("stuck:b@2+3");
    expect(stuck.map((r) => r[1])).toEqual([10, 11, 12, 12, 12, 15, 16, 17]);
    const nan = run("nan:2@6");
    expect(nan.map((r) => Number.isNaN(r[2]))).toEqual([
      false,
      false,
      false,
      false,
      false,
      false,
      true,
      true,
    ]);
    const spike = run("spike:0@1+1");
    expect(spike.map((r) => r[0])).toEqual([0, 5, 2, 3, 4, 5, 6, 7]);
  });

  it("behavior: #ID/ID limits a fault to those devices", () => {
    expect(run("nan:a@0#2/3", 1).some((r) => Number.isNaN(r[0]))).toBe(false);
    expect(run("nan:a@0#2/3", 3).every((r) => Number.isNaN(r[0]))).toBe(true);
  });

  it("args: malformed entries and unknown channels are refused naming them", () => {
    expect(parseScriptedFaults("")).toEqual([]);
    expect(parseScriptedFaults("stuck:s11@60+80,nan:3@5#1/2")).toEqual([
      { kind: "stuck", channel: "s11", from: 60, frames: 80 },
      { kind: "nan", channel: 3, from: 5, devices: [1, 2] },
    ]);
    expect(() => parseScriptedFaults("stuck:s11")).toThrow(/stuck:s11.*KIND:CHANNEL@FROM/);
    // An empty id is no device id (it used to read as device 0).
    for (const bad of ["nan:a@0#", "nan:a@0#/", "nan:a@0#1//2", "nan:a@0#1/"])
      expect(() => parseScriptedFaults(bad)).toThrow(RangeError);
    expect(() => parseScriptedFaults("drift:s11@1")).toThrow(RangeError);
    expect(() => new ScriptedFaults(parseScriptedFaults("nan:zz@1"), 1, CH)).toThrow(
      /"zz" is not one of a, b, c/,
    );
    expect(() => new ScriptedFaults(parseScriptedFaults("nan:7@1"), 1, CH)).toThrow(RangeError);
  });
});
