// The boot_id the simulated devices announce (hardware/PROTOCOL.md: "a device must increment
// boot_id (mod 2^32) on every boot"). A Simulator is a new boot of each of its devices: unless
// pinned (SimulatorOptions.bootId, `vigil sim --boot-id`), it starts at a random boot_id that the
// seed does not decide, so two runs with the same seed are two boots. A reboot fault adds one, mod 2^32.
import { describe, expect, it } from "vitest";
import { Simulator } from "../../device-sim/src/simulator.ts";
import type { Transport } from "../../device-sim/src/transports/types.ts";
import { decodeFrame, FrameType } from "../../gateway/src/protocol/frame.ts";
import { testDevice } from "./device-fixture.ts";

/** A transport that is never opened: the tests only read the devices' HELLOs. */
const idle: Transport = {
  name: "idle",
  connected: false,
  open: async () => undefined,
  send: () => false,
  sendNoise: () => undefined,
  disconnect: async () => undefined,
  reconnect: async () => undefined,
  drain: async () => undefined,
  close: async () => undefined,
};

const helloBoot = (raw: Buffer): number => {
  const f = decodeFrame(raw);
  if (f.type !== FrameType.Hello) throw new Error("not a HELLO");
  return f.bootId;
};

describe("simulated devices: boot_id", () => {
  it("behavior: two simulators with the same seed announce different boot_ids (a new run is a new boot), every device of one the same", () => {
    const boots = Array.from({ length: 4 }, () => new Simulator({ transport: idle, devices: 3, seed: 1 }));
    for (const s of boots)
      expect(new Set(s.devices.map((d) => helloBoot(d.hello())))).toEqual(new Set([s.bootId]));
    // Four draws from 2^32 values: equal ones would be a 1-in-a-billion coincidence, not a flake to retry.
    expect(new Set(boots.map((s) => s.bootId)).size).toBe(4);
    for (const s of boots)
      expect(Number.isInteger(s.bootId) && s.bootId >= 0 && s.bootId <= 0xffffffff).toBe(true);
  });

  it("behavior: a pinned boot_id is announced as given, and a reboot continues from it mod 2^32", () => {
    const s = new Simulator({ transport: idle, devices: 2, bootId: 0xffffffff });
    const d = s.devices[1]!;
    expect(helloBoot(d.hello())).toBe(0xffffffff);
    d.reboot();
    expect(helloBoot(d.hello())).toBe(0);
    d.reboot();
    expect(helloBoot(d.hello())).toBe(1);
    expect(helloBoot(s.devices[0]!.hello())).toBe(0xffffffff);
  });

  it("input: a boot_id outside [0, 2^32) is a RangeError; a device without one starts at 1", () => {
    expect(() => testDevice({ bootId: 2 ** 32 })).toThrow(RangeError);
    expect(() => testDevice({ bootId: -1 })).toThrow(
      /bootId must be a whole number in \[0, 4294967295\], got -1/,
    );
    expect(helloBoot(testDevice().hello())).toBe(1);
  });
});
