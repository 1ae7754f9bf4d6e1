/**
 * The benches that promise "as deployed" figures (bench infer's RSS, bench e2e) run Node with the
 * Pi unit's NODE_OPTIONS, read from hardware/pi/vigil.service by bench/lib/unit.ts. bench infer
 * once passed only the young-generation flag: its "as deployed" RSS ran without the unit's
 * old-generation cap, under which V8 grows the heap less eagerly, and reported 175 MB where the
 * deployed flags give about 130 MB. These tests pin that the flags are the unit's and that Node
 * applies them.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { unitEnvironment, unitNodeOptions } from "../../bench/lib/unit.ts";

describe("bench/lib/unit.ts unitNodeOptions", () => {
  it("behavior: returns the unit's NODE_OPTIONS, one flag per element", () => {
    const unit = readFileSync("hardware/pi/vigil.service", "utf8");
    const env = unitEnvironment(unit)["NODE_OPTIONS"];
    expect(env).toBeDefined();
    expect(unitNodeOptions(".")).toEqual(env!.trim().split(/\s+/));
  });

  it("behavior: Node accepts the unit's flags in NODE_OPTIONS and sizes its heap by them", () => {
    const flags = unitNodeOptions(".");
    const oldCap = flags.find((f) => f.startsWith("--max-old-space-size="));
    expect(oldCap, "the unit caps the old generation").toBeDefined();
    const capMb = Number(oldCap!.split("=")[1]);
    const limitMb = Number(
      execFileSync(
        process.execPath,
        ["-e", "console.log(require('node:v8').getHeapStatistics().heap_size_limit / 2 ** 20)"],
        { encoding: "utf8", env: { ...process.env, NODE_OPTIONS: flags.join(" ") } },
      ).trim(),
    );
    // heap_size_limit = the old-generation cap + the young generation (a few MB with 2 MB semi-spaces).
    expect(limitMb).toBeGreaterThanOrEqual(capMb);
    expect(limitMb).toBeLessThan(capMb + 32);
  });

  it("behavior: a unit without NODE_OPTIONS is an error, not Node's defaults", () => {
    const root = mkdtempSync(join(tmpdir(), "vigil-unit-"));
    mkdirSync(join(root, "hardware/pi"), { recursive: true });
    writeFileSync(join(root, "hardware/pi/vigil.service"), '[Service]\nEnvironment="VIGIL_DIST=1"\n');
    expect(() => unitNodeOptions(root)).toThrow(/sets no NODE_OPTIONS/);
  });
});
