/**
 * `vigil doctor --help` and README "Checking an installation: `vigil doctor`" describe the same
 * checks: the same names in the same order, and what a README row requires (a setting it names,
 * "writable", "0600") is in the help's entry too.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { DOCTOR_HELP } from "../../gateway/src/cli/help/doctor.ts";

/** The README table's rows: check name → "passes when" text. */
function readmeRows(): [string, string][] {
  const readme = readFileSync("README.md", "utf8");
  const section = readme.slice(readme.indexOf("### Checking an installation: `vigil doctor`"));
  const start = section.indexOf("| check | passes when |");
  const table = section.slice(start, section.indexOf("\n\n", start));
  return [...table.matchAll(/^\| `([a-z]+)` \| (.+) \|$/gm)].map((m) => [m[1]!, m[2]!]);
}

/** The help's check list: name → its (joined) description. */
function helpEntries(): [string, string][] {
  const list = DOCTOR_HELP.slice(DOCTOR_HELP.indexOf("Checks,"), DOCTOR_HELP.indexOf("Options:"));
  return [...list.matchAll(/^ {2}([a-z]+) +(.+(?:\n {14}.+)*)/gm)].map((m) => [
    m[1]!,
    m[2]!.replace(/\s+/g, " "),
  ]);
}

describe("vigil doctor: help and README", () => {
  it("doc: the same checks in the same order", () => {
    const rows = readmeRows();
    expect(rows.length).toBeGreaterThan(8);
    expect(helpEntries().map(([n]) => n)).toEqual(rows.map(([n]) => n));
  });

  it("doc: what a README row requires is in the help's entry", () => {
    const help = new Map(helpEntries());
    for (const [name, text] of readmeRows()) {
      const entry = help.get(name)!;
      const settings = [...text.matchAll(/`((?:store|mqtt|chain)\.[A-Za-z.]+)`/g)].map((m) => m[1]!);
      for (const s of settings) expect(entry, `${name}: ${s}`).toContain(s);
      for (const word of ["writable", "0600", "30 s"])
        if (text.includes(word)) expect(entry, `${name}: ${word}`).toContain(word);
    }
  });
});
