/**
 * CWRU bearing data (Case Western Reserve University Bearing Data Center,
 * https://engineering.case.edu/bearingdatacenter): the time-domain feature table of the drive-end
 * accelerometer at 48 kHz, 1 HP load, one row per 2,048-sample window (models/data/cwru/README.md).
 * The one parser used by the simulator's `cwru-bearing-v1` replay, the tests and models/eval; the
 * training script (models/cwru/train.py) reads the same file and uses the same split.
 */
import { fromRoot } from "../../core/paths.ts";
import { DataFileError } from "../errors.ts";
import { readMaybeGzip } from "./cmapss.ts";

/** The channels of a `cwru-bearing-v1` frame: the 9 statistics of one 2,048-sample vibration window. */
export const CWRU_CHANNELS: readonly string[] = [
  "max",
  "min",
  "mean",
  "sd",
  "rms",
  "skewness",
  "kurtosis",
  "crest",
  "form",
];

/** Class labels, healthy first (the model's `class_probs` order). */
export const CWRU_CLASSES: readonly string[] = [
  "Normal_1",
  "Ball_007_1",
  "Ball_014_1",
  "Ball_021_1",
  "IR_007_1",
  "IR_014_1",
  "IR_021_1",
  "OR_007_6_1",
  "OR_014_6_1",
  "OR_021_6_1",
];

/**
 * The split of each class's rows (in file order, one recording per class): rows [0, 129) train,
 * [129, 161) validation (early stopping), [161, 230) test. No window crosses a boundary.
 */
export const CWRU_SPLIT = { rowsPerClass: 230, validationFrom: 129, testFrom: 161 } as const;

/** One class's recording: `rows` frames of the 9 channels, row-major. */
export interface CwruRecording {
  label: string;
  /** index in CWRU_CLASSES */
  classIndex: number;
  rows: number;
  data: Float64Array;
}

/** Parses the feature CSV (header `max,…,form,fault`) into one recording per class, CWRU_CLASSES order. */
export function parseCwru(text: string, file = "CWRU CSV"): CwruRecording[] {
  const lines = text.replace(/^\ufeff/, "").split("\n");
  const header = lines[0]?.trim().split(",");
  if (header?.join(",") !== [...CWRU_CHANNELS, "fault"].join(","))
    throw new DataFileError(file, `unexpected header ${JSON.stringify(lines[0])}`);
  const byClass = new Map<string, number[]>();
  for (let i = 1; i < lines.length; i++) {
    const t = lines[i]!.trim();
    if (t === "") continue;
    const f = t.split(",");
    if (f.length !== CWRU_CHANNELS.length + 1)
      throw new DataFileError(
        file,
        `line ${i + 1}: expected ${CWRU_CHANNELS.length + 1} fields, got ${f.length}`,
      );
    const label = f[CWRU_CHANNELS.length]!;
    if (!CWRU_CLASSES.includes(label)) throw new DataFileError(file, `line ${i + 1}: unknown class ${label}`);
    let rows = byClass.get(label);
    if (!rows) byClass.set(label, (rows = []));
    for (let c = 0; c < CWRU_CHANNELS.length; c++) {
      const v = Number(f[c]);
      if (!Number.isFinite(v)) throw new DataFileError(file, `line ${i + 1}: field ${c + 1} is not a number`);
      rows.push(v);
    }
  }
  return CWRU_CLASSES.map((label, classIndex) => {
    const rows = byClass.get(label);
    if (!rows) throw new DataFileError(file, `class ${label} has no rows`);
    return { label, classIndex, rows: rows.length / CWRU_CHANNELS.length, data: Float64Array.from(rows) };
  });
}

/** The feature table shipped in models/data/cwru (or `path`). */
export function loadCwru(
  path = fromRoot("models", "data", "cwru", "feature_time_48k_2048_load_1.csv.gz"),
): CwruRecording[] {
  return parseCwru(readMaybeGzip(path).toString("utf8"), path);
}

/** Rows [from, to) of a recording as a new recording (a block of the split). */
export function cwruBlock(r: CwruRecording, from: number, to: number): CwruRecording {
  const W = CWRU_CHANNELS.length;
  return { ...r, rows: to - from, data: r.data.slice(from * W, to * W) };
}
