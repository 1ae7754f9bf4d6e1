/**
 * Replay of NASA C-MAPSS turbofan run-to-failure data (A. Saxena, K. Goebel, D. Simon,
 * N. Eklund, "Damage Propagation Modeling for Aircraft Engine Run-to-Failure Simulation",
 * PHM08; NASA Prognostics Center of Excellence data repository). One device per engine
 * unit, one DATA frame per cycle: the 3 operational settings and 21 sensors in file order, then
 * the engine's cycle counter (the file's second column), as the `cmapss-v2` models expect.
 */
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { gunzipSync } from "node:zlib";
import { Unit, type ChannelDescriptor } from "../../../gateway/src/protocol/frame.ts";
import { fromRoot, packageRoot } from "../../../gateway/src/util/paths.ts";
import type { SignalSource } from "./types.ts";

export const CMAPSS_PROFILE = "cmapss-v2";

export const CMAPSS_CHANNELS: readonly ChannelDescriptor[] = [
  { name: "setting1", unit: Unit.none },
  { name: "setting2", unit: Unit.none },
  { name: "setting3", unit: Unit.none },
  ...Array.from({ length: 21 }, (_, i) => ({ name: `s${i + 1}`, unit: Unit.none })),
  { name: "cycle", unit: Unit.none },
];

export type CmapssSubset = "FD001" | "FD002" | "FD003" | "FD004";
export type CmapssSplit = "train" | "test";

export interface CmapssUnit {
  unit: number;
  /** One Float32Array per cycle: CMAPSS_CHANNELS (settings, sensors, cycle counter). */
  rows: Float32Array[];
  /** For test units: true RUL after the last row (RUL_FD00x.txt); for train units 0. */
  rulAtEnd: number;
}

/**
 * Where the data lives: `$VIGIL_CMAPSS_DIR`, the copy committed in models/data/cmapss, or
 * the workspace's shared datasets folder. Throws with the list of places tried.
 */
export function cmapssDir(): string {
  const candidates = [
    process.env.VIGIL_CMAPSS_DIR,
    fromRoot("models", "data", "cmapss"),
    resolve(packageRoot(), "../shared/datasets/cmapss"),
  ].filter((p): p is string => !!p);
  for (const c of candidates) if (existsSync(join(c, "RUL_FD001.txt"))) return c;
  throw new Error(`C-MAPSS data not found; tried ${candidates.join(", ")} (set VIGIL_CMAPSS_DIR)`);
}

function readText(dir: string, name: string): string {
  const plain = join(dir, name);
  if (existsSync(plain)) return readFileSync(plain, "utf8");
  const gz = plain + ".gz";
  if (existsSync(gz)) return gunzipSync(readFileSync(gz)).toString("utf8");
  throw new Error(`missing ${plain}(.gz)`);
}

/** Loads the units of one subset and split. */
export function loadCmapss(subset: CmapssSubset, split: CmapssSplit, dir = cmapssDir()): CmapssUnit[] {
  const units = new Map<number, Float32Array[]>();
  for (const line of readText(dir, `${split}_${subset}.txt`).split("\n")) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 26) continue;
    const unit = Number(cols[0]);
    const row = new Float32Array(CMAPSS_CHANNELS.length);
    for (let i = 0; i < 24; i++) row[i] = Number(cols[i + 2]);
    row[24] = Number(cols[1]);
    let list = units.get(unit);
    if (!list) units.set(unit, (list = []));
    list.push(row);
  }
  const rul =
    split === "test"
      ? readText(dir, `RUL_${subset}.txt`)
          .split("\n")
          .filter((l) => l.trim())
          .map(Number)
      : [];
  return [...units.entries()].map(([unit, rows]) => ({
    unit,
    rows,
    rulAtEnd: split === "test" ? (rul[unit - 1] ?? 0) : 0,
  }));
}

export class CmapssReplay implements SignalSource {
  readonly profile: string;
  readonly channels = CMAPSS_CHANNELS;
  readonly failureStep: number;
  readonly #rows: Float32Array[];

  constructor(unit: CmapssUnit, subset: CmapssSubset) {
    this.#rows = unit.rows;
    // Train units run to failure at their last cycle; test units fail RUL cycles after it.
    this.failureStep = unit.rows.length - 1 + unit.rulAtEnd;
    this.profile = subset === "FD001" ? CMAPSS_PROFILE : `cmapss-${subset.toLowerCase()}`;
  }

  sample(step: number): Float32Array | undefined {
    return this.#rows[step];
  }
}
