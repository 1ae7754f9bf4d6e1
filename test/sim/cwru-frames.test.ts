import { describe, expect, it } from "vitest";
import { Rng } from "../../device-sim/src/rng.ts";
import { buildSources } from "../../device-sim/src/simulator.ts";

/** Frames a source yields before it ends (at most `cap`). */
function length(sample: (step: number) => unknown, cap = 10_000): number {
  let n = 0;
  while (n < cap && sample(n) !== undefined) n++;
  return n;
}

describe("vigil sim --profile cwru --frames N", () => {
  it("behavior: every device replays N frames, however long its seeded healthy phase", () => {
    // Seeded healthy phases are 40..119 frames: healthy + 200 falls below 300 for some devices.
    const sources = buildSources({ profile: "cwru", devices: 12, framesPerDevice: 300 }, new Rng(7));
    expect(sources.map((s) => length((i) => s.sample(i)))).toEqual(Array(12).fill(300));
  });

  it("behavior: without --frames a replay ends after its healthy frames + 200", () => {
    const sources = buildSources({ profile: "cwru", devices: 3 }, new Rng(7));
    for (const s of sources) {
      const failureStep = (s as unknown as { failureStep: number }).failureStep;
      expect(length((i) => s.sample(i))).toBe(failureStep + 200);
    }
  });
});
