/**
 * hardware/pi/README.md "The unit: least privilege" describes hardware/pi/vigil.service as it is:
 * every setting the first table names is in the unit with the value shown, the DeviceAllow list
 * is the unit's, and no setting of the "Left off" table is set.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

const readme = readFileSync("hardware/pi/README.md", "utf8");
const unit = readFileSync("hardware/pi/vigil.service", "utf8")
  .split("\n")
  .map((l) => l.trim())
  .filter((l) => /^[A-Z]\w*=/.test(l));
const keys = new Set(unit.map((l) => l.slice(0, l.indexOf("="))));

/** First cells of the markdown table that follows `heading` (a line starting with it). */
function firstCells(heading: string): string[] {
  const at = readme.indexOf(heading);
  expect(at, heading).toBeGreaterThanOrEqual(0);
  const rows: string[] = [];
  for (const line of readme.slice(at).split("\n").slice(1)) {
    if (!line.startsWith("|")) {
      if (rows.length) break;
      continue;
    }
    if (/^\|\s*(setting|---)/.test(line)) continue;
    rows.push(line.split("|")[1]!.trim());
  }
  return rows;
}

const spans = (cell: string): string[] => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);

describe("hardware/pi/README.md describes vigil.service", () => {
  it("behavior: each setting the table explains is in the unit, with the value shown", () => {
    const cells = firstCells("| setting | why |");
    expect(cells.length).toBeGreaterThan(10);
    const missing: string[] = [];
    for (const s of cells.flatMap(spans)) {
      const m = /^([A-Z][A-Za-z]+)(\*)?(?:=(.*))?$/.exec(s);
      if (!m) continue; // a value continuing the previous setting (`char-ttyACM rw`, `~@privileged …`)
      const [, key, star, value] = m;
      if (star) {
        if (![...keys].some((k) => k.startsWith(key!))) missing.push(s);
      } else if (!keys.has(key!)) missing.push(s);
      else if (value && !unit.includes(`${key}=${value}`)) missing.push(s);
    }
    expect(missing).toEqual([]);
  });

  it("behavior: the DeviceAllow list in the README is the unit's", () => {
    const row = firstCells("| setting | why |").find((c) => c.includes("DeviceAllow="))!;
    const documented = spans(row)
      .filter((s) => s !== "DevicePolicy=closed")
      .map((s) => s.replace(/^DeviceAllow=/, ""));
    const inUnit = unit
      .filter((l) => l.startsWith("DeviceAllow="))
      .map((l) => l.slice("DeviceAllow=".length));
    expect(documented).toEqual(inUnit);
    expect(unit).toContain("DevicePolicy=closed");
  });

  it("behavior: the settings left off are not set", () => {
    const cells = firstCells("| setting | why not |");
    expect(cells.length).toBeGreaterThan(5);
    const plain = cells
      .flatMap(spans)
      .flatMap((s) => s.split("/"))
      .filter((s) => /^[A-Z][A-Za-z]+$/.test(s));
    expect(plain.length).toBeGreaterThan(5);
    expect(plain.filter((k) => keys.has(k) && k !== "SupplementaryGroups")).toEqual([]);
  });
});
