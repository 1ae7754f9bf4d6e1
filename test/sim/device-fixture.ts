/**
 * The simulated device the state-machine tests drive with injected time: device 7, one channel
 * `x` whose value is the step, seeded, no faults. Options override the defaults.
 */
import { SimDevice, type SimDeviceOptions } from "../../device-sim/src/device.ts";
import { FaultCounters } from "../../device-sim/src/faults.ts";
import type { SignalSource } from "../../device-sim/src/profiles/types.ts";
import { Rng } from "../../device-sim/src/rng.ts";

export const TEST_SOURCE: SignalSource = {
  profile: "test-v1",
  channels: [{ name: "x", unit: 0 }],
  failureStep: undefined,
  sample: (step) => Float32Array.of(step),
};

/** Device 7 over {@link TEST_SOURCE}. */
export function testDevice(o: Partial<SimDeviceOptions> = {}): SimDevice {
  return new SimDevice({
    id: 7,
    source: TEST_SOURCE,
    rng: new Rng(1),
    faults: {},
    counters: new FaultCounters(),
    ...o,
  });
}
