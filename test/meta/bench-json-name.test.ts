/**
 * README "Benchmarks": each benchmark's last line is one JSON object whose `bench` field names the
 * benchmark, so results collected from several runs say which is which. anchor and attest once
 * printed theirs without it. A source check: running every benchmark here would take an hour.
 */
import { readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

const BENCHES = readdirSync("bench")
  .filter((f) => f.endsWith(".ts") && f !== "run.ts")
  .map((f) => f.slice(0, -3));

describe("benchmark JSON lines", () => {
  it("behavior: every benchmark puts its own name in the `bench` field", () => {
    expect(BENCHES.length).toBeGreaterThan(10);
    const missing = BENCHES.filter(
      (name) => !readFileSync(`bench/${name}.ts`, "utf8").includes(`bench: "${name}"`),
    );
    expect(missing).toEqual([]);
  });
});
