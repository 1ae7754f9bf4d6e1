/**
 * The shipped alerting rules (hardware/prometheus/vigil-alerts.yml) with Debian's promtool:
 * `promtool check rules` and the rules' unit tests (vigil-alerts.test.yml).
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { requireTool } from "../helpers/procs.ts";

const DIR = "hardware/prometheus";

describe("hardware/prometheus/vigil-alerts.yml under promtool", () => {
  it("behavior: promtool check rules accepts the file", () => {
    const r = spawnSync(requireTool("promtool", "prometheus"), ["check", "rules", "vigil-alerts.yml"], {
      cwd: DIR,
      encoding: "utf8",
    });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    // Every rule of the file, counted from it (the count was written here and went stale).
    const rules = readFileSync(`${DIR}/vigil-alerts.yml`, "utf8").match(/^\s+- alert: /gm)!.length;
    expect(rules).toBeGreaterThan(15);
    expect(r.stdout).toContain(`SUCCESS: ${rules} rules found`);
  });

  it("behavior: every alert fires on its unit test's series, with its labels and annotations, and only there", () => {
    const r = spawnSync(requireTool("promtool", "prometheus"), ["test", "rules", "vigil-alerts.test.yml"], {
      cwd: DIR,
      encoding: "utf8",
    });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/SUCCESS/);
  });
});
