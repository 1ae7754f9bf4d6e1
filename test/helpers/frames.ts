import fc from "fast-check";
import {
  FrameType,
  MAX_CHANNELS,
  type DataFrame,
  type HelloFrame,
} from "../../gateway/src/protocol/frame.ts";

export const f32 = fc.float({ noNaN: true, noDefaultInfinity: true });

export const dataFrameArb: fc.Arbitrary<DataFrame> = fc.record({
  type: fc.constant(FrameType.Data),
  deviceId: fc.nat({ max: 0xffffffff }),
  seq: fc.nat({ max: 0xffffffff }),
  timestampUs: fc.maxSafeNat(),
  flags: fc.nat({ max: 255 }),
  values: fc.array(f32, { minLength: 1, maxLength: MAX_CHANNELS }).map((a) => Float32Array.from(a)),
});

const name = fc.stringMatching(/^[a-z0-9_]{1,15}$/);
export const helloFrameArb: fc.Arbitrary<HelloFrame> = fc
  .record({
    type: fc.constant(FrameType.Hello),
    deviceId: fc.nat({ max: 0xffffffff }),
    bootId: fc.nat({ max: 0xffffffff }),
    firmware: fc.record({
      major: fc.nat({ max: 255 }),
      minor: fc.nat({ max: 255 }),
      patch: fc.nat({ max: 65535 }),
    }),
    profile: fc.stringMatching(/^[!-~]{0,31}$/),
    channels: fc.array(fc.record({ name, unit: fc.nat({ max: 12 }) }), { minLength: 1, maxLength: 12 }),
  })
  .filter((h) => 14 + h.profile.length + h.channels.reduce((a, c) => a + 2 + c.name.length, 0) <= 240);

export const errorFrameArb = fc.record({
  type: fc.constant(FrameType.Error),
  deviceId: fc.nat({ max: 0xffffffff }),
  code: fc.nat({ max: 255 }),
  message: fc.string({ maxLength: 60 }),
});
