/**
 * The flash table of hardware/firmware-ref/README.md ("Memory and flash") is what `make size`
 * builds today: each column is rebuilt with its compiler when that compiler is installed in the
 * version the README names (other versions produce other sizes; then the column is skipped, and
 * says so). CI has gcc 12.2.0 (Debian 12), so the x86-64 column is always checked there.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const REF = "hardware/firmware-ref";
const readme = readFileSync(join(REF, "README.md"), "utf8");
const OBJECTS = ["vigil_frame", "vigil_txq", "vigil_fwu", "vigil_sha256"];

/** The table's rows: object → [x86-64, Cortex-M4, Cortex-M0+, data, bss]. */
function table(): Map<string, number[]> {
  const rows = new Map<string, number[]>();
  for (const m of readme.matchAll(/^\| `(vigil_\w+)\.o` +\|([\d |]+)\|$/gm))
    rows.set(
      m[1]!,
      m[2]!.split("|").map((c) => Number(c.trim())),
    );
  return rows;
}

function version(cc: string): string | undefined {
  try {
    return execFileSync(cc, ["-dumpfullversion"], { encoding: "utf8" }).trim();
  } catch {
    return undefined;
  }
}

/** `make size` with these tools: object → [text, data, bss]. */
function measure(vars: string[]): Map<string, number[]> {
  const build = mkdtempSync(join(tmpdir(), "vigil-fw-size-"));
  try {
    const out = execFileSync("make", ["-s", "-C", REF, "size", `BUILD=${build}`, ...vars], {
      encoding: "utf8",
    });
    const sizes = new Map<string, number[]>();
    for (const m of out.matchAll(
      /^\s*(\d+)\s+(\d+)\s+(\d+)\s+\d+\s+[0-9a-f]+\s+\S*\/(vigil_\w+)\.free\.o$/gm,
    ))
      sizes.set(m[4]!, [Number(m[1]), Number(m[2]), Number(m[3])]);
    return sizes;
  } finally {
    rmSync(build, { recursive: true, force: true });
  }
}

const columns = [
  { name: "x86-64", col: 0, cc: "gcc", want: /gcc (\d+\.\d+\.\d+) for\s+x86-64/, vars: ["CC=gcc"] },
  {
    name: "Cortex-M4",
    col: 1,
    cc: "arm-none-eabi-gcc",
    want: /arm-none-eabi-gcc (\d+\.\d+\.\d+)/,
    vars: ["CC=arm-none-eabi-gcc", "SIZE=arm-none-eabi-size", "MCU_FLAGS=-mcpu=cortex-m4 -mthumb"],
  },
  {
    name: "Cortex-M0+",
    col: 2,
    cc: "arm-none-eabi-gcc",
    want: /arm-none-eabi-gcc (\d+\.\d+\.\d+)/,
    vars: ["CC=arm-none-eabi-gcc", "SIZE=arm-none-eabi-size", "MCU_FLAGS=-mcpu=cortex-m0plus -mthumb"],
  },
];

describe("firmware-ref flash table (README: Memory and flash)", () => {
  it("behavior: the table lists every library object and names the compilers' versions", () => {
    expect([...table().keys()]).toEqual(OBJECTS);
    for (const c of columns) expect(readme, c.name).toMatch(c.want);
  });

  for (const c of columns) {
    const named = c.want.exec(readme)?.[1];
    const have = version(c.cc);
    it.skipIf(have === undefined || have !== named)(
      `behavior: the ${c.name} column is what make size builds (${c.cc} ${named}; installed: ${have ?? "none"})`,
      () => {
        const got = measure(c.vars);
        const rows = table();
        for (const o of OBJECTS) {
          const [text, data, bss] = got.get(o)!;
          const row = rows.get(o)!;
          expect({ o, text, data, bss }).toEqual({ o, text: row[c.col], data: row[3], bss: row[4] });
        }
      },
      60_000,
    );
  }
});
