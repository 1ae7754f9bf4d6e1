/**
 * NASA C-MAPSS turbofan run-to-failure data (A. Saxena, K. Goebel, D. Simon, N. Eklund, "Damage
 * Propagation Modeling for Aircraft Engine Run-to-Failure Simulation", PHM08; NASA Prognostics
 * Center of Excellence data repository): the one parser used by the simulator, the gateway's
 * tests and models/eval. The data ships gzipped in models/data/cmapss (see its README).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { fromRoot } from "../../core/paths.ts";
import { DataFileError } from "../errors.ts";

/** Reads a file, gunzipping it when it starts with the gzip magic bytes (DataFileError if unreadable). */
export function readMaybeGzip(path: string): Buffer {
  let raw: Buffer;
  try {
    raw = readFileSync(path);
    return raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b ? gunzipSync(raw) : raw;
  } catch (e) {
    throw new DataFileError(path, `cannot read: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * The channels of a C-MAPSS device frame (manifest `inputs.channels`, profile `cmapss-v2`): the 3
 * operational settings and 21 sensors in file order, then the engine's own cycle counter (the
 * file's second column: cycles since the engine entered service, 1, 2, 3, …).
 */
export const CMAPSS_CHANNELS: readonly string[] = [
  "setting1",
  "setting2",
  "setting3",
  ...Array.from({ length: 21 }, (_, i) => `s${i + 1}`),
  "cycle",
];
/** Channels per row: 25. */
export const CMAPSS_WIDTH = CMAPSS_CHANNELS.length;

/** One engine trajectory: `cycles` rows of the 25 channels (CMAPSS_CHANNELS), row-major. */
export interface CmapssUnit {
  unit: number;
  cycles: number;
  /** length cycles * CMAPSS_WIDTH, row r channel c at r * CMAPSS_WIDTH + c */
  data: Float64Array;
}

/**
 * Parses a C-MAPSS train/test text (26 whitespace-separated fields per row: unit, cycle, 3 settings,
 * 21 sensors) into rows of CMAPSS_CHANNELS (the cycle moves to the end). Rows must be grouped by
 * unit with cycles 1, 2, 3, ...; returns units in file order.
 */
const FIELDS = 26;

export function parseCmapss(text: string, file = "C-MAPSS text"): CmapssUnit[] {
  const width = CMAPSS_CHANNELS.length;
  const units: CmapssUnit[] = [];
  let cur: { unit: number; rows: number[] } | undefined;
  const flush = (): void => {
    if (cur)
      units.push({ unit: cur.unit, cycles: cur.rows.length / width, data: Float64Array.from(cur.rows) });
  };
  let lineNo = 0;
  for (const line of text.split("\n")) {
    lineNo++;
    const t = line.trim();
    if (t === "") continue;
    const f = t.split(/\s+/);
    if (f.length !== FIELDS)
      throw new DataFileError(file, `line ${lineNo}: expected ${FIELDS} fields, got ${f.length}`);
    const unit = Number(f[0]);
    const cycle = Number(f[1]);
    if (!cur || cur.unit !== unit) {
      flush();
      if (units.some((u) => u.unit === unit))
        throw new DataFileError(file, `line ${lineNo}: unit ${unit} is not contiguous`);
      cur = { unit, rows: [] };
    }
    if (cycle !== cur.rows.length / width + 1)
      throw new DataFileError(file, `line ${lineNo}: unit ${unit} cycle ${cycle} out of order`);
    for (let c = 2; c < f.length; c++) {
      const v = Number(f[c]);
      if (!Number.isFinite(v))
        throw new DataFileError(file, `line ${lineNo}: field ${c + 1} is not a number`);
      cur.rows.push(v);
    }
    cur.rows.push(cycle);
  }
  flush();
  return units;
}

/** Parses one C-MAPSS text file (plain or gzipped). */
export function loadCmapss(path: string): CmapssUnit[] {
  return parseCmapss(readMaybeGzip(path).toString("ascii"), path);
}

/** RUL_FD00x.txt: one true RUL per test unit, in unit order. */
export function loadRul(path: string): Float64Array {
  const vals = readMaybeGzip(path)
    .toString("ascii")
    .split(/\s+/)
    .filter((s) => s !== "")
    .map(Number);
  if (vals.some((v) => !Number.isFinite(v))) throw new DataFileError(path, "not a list of numbers");
  return Float64Array.from(vals);
}

export type CmapssSubset = "FD001" | "FD002" | "FD003" | "FD004";
export type CmapssSplit = "train" | "test";
export const CMAPSS_SUBSETS: readonly CmapssSubset[] = ["FD001", "FD002", "FD003", "FD004"];

/**
 * Folder of the C-MAPSS files: `$VIGIL_CMAPSS_DIR` when set (a full unpacked copy elsewhere),
 * else the gzipped copy shipped in the package, `models/data/cmapss`.
 */
export function cmapssDir(): string {
  return process.env.VIGIL_CMAPSS_DIR || fromRoot("models", "data", "cmapss");
}

/** Path of `{split}_{subset}.txt` or `RUL_{subset}.txt`, plain or `.gz` (DataFileError when neither exists). */
export function cmapssFile(name: string, dir = cmapssDir()): string {
  for (const p of [join(dir, name), join(dir, `${name}.gz`)]) if (existsSync(p)) return p;
  throw new DataFileError(
    join(dir, name),
    "not found (nor .gz); the package ships models/data/cmapss, or set VIGIL_CMAPSS_DIR",
  );
}

/** The units of one subset and split; test units carry their true RUL after the last row. */
export function loadCmapssSubset(
  subset: CmapssSubset,
  split: CmapssSplit,
  dir = cmapssDir(),
): Array<CmapssUnit & { rulAtEnd: number }> {
  const units = loadCmapss(cmapssFile(`${split}_${subset}.txt`, dir));
  const rul = split === "test" ? loadRul(cmapssFile(`RUL_${subset}.txt`, dir)) : undefined;
  if (rul && rul.length !== units.length)
    throw new DataFileError(`RUL_${subset}.txt`, `${rul.length} values for ${units.length} test units`);
  return units.map((u, i) => ({ ...u, rulAtEnd: rul ? rul[i]! : 0 }));
}
