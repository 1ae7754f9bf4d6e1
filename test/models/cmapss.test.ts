// Committed C-MAPSS models: hash, manifest schema, and test metrics recomputed with onnxruntime-node must
// not be worse than what each manifest claims (tolerance: float noise only). Also unit tests of the
// shared normalisation / windowing / metric helpers the gateway reuses.
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { Ajv } from "ajv";
import { describe, expect, it } from "vitest";
import {
  REPO_ROOT,
  createSession,
  evaluateManifest,
  phm08Score,
  rmse,
  sha256Hex,
} from "../../models/eval/cmapss.ts";
import { evaluateConditions, worseConditions, type ConditionFigures } from "../../models/eval/conditions.ts";
import {
  checkRow,
  createQuality,
  newFrameQuality,
  QualityState,
} from "../../gateway/src/infer/features/quality.ts";
import {
  CMAPSS_CHANNELS,
  CMAPSS_WIDTH,
  loadCmapss,
  parseCmapss,
  readMaybeGzip,
} from "../../gateway/src/infer/features/cmapss.ts";
import { normalizeUnit, fillWindow, lastWindows } from "../../gateway/src/infer/features/windows.ts";
import {
  applyBaseline,
  newBaseline,
  assignRegime,
  createNormalizer,
  normalizeRow,
} from "../../gateway/src/infer/features/normalize.ts";
import {
  loadManifest,
  modelPath,
  tensorWidth,
  type ModelManifest,
} from "../../gateway/src/infer/features/manifest.ts";
import { CMAPSS_DESCRIPTORS as SIM_CHANNELS } from "../../device-sim/src/profiles/cmapss.ts";

const MODEL_DIR = join(REPO_ROOT, "models", "cmapss");
const DATA_DIR = join(REPO_ROOT, "models", "data", "cmapss");
const REL_TOL = 1e-3;
const SUBSETS = ["fd001", "fd002", "fd003", "fd004"];

const schema = JSON.parse(readFileSync(join(REPO_ROOT, "models", "manifest.schema.json"), "utf8")) as object;
const validate = new Ajv({ allErrors: true, strict: true }).compile(schema);

function manifestPaths(): string[] {
  return readdirSync(MODEL_DIR)
    .filter((f) => f.endsWith(".manifest.json"))
    .sort()
    .map((f) => join(MODEL_DIR, f));
}

describe("committed C-MAPSS models", () => {
  it("has one manifest per subset FD001-FD004", () => {
    expect(manifestPaths().map((p) => p.split("/").pop())).toEqual(SUBSETS.map((s) => `${s}.manifest.json`));
  });

  it("claims each device profile at most once, and cmapss-v2 by exactly one model", () => {
    const owners = new Map<string, string>();
    for (const p of manifestPaths()) {
      for (const prof of loadManifest(p).devices.profiles) {
        expect(owners.has(prof), `profile ${prof} claimed twice`).toBe(false);
        owners.set(prof, p);
      }
    }
    expect(owners.has("cmapss-v2")).toBe(true);
    for (const s of SUBSETS) expect(owners.get(`cmapss-${s}`)).toMatch(new RegExp(`${s}\\.manifest\\.json$`));
  });

  for (const subset of SUBSETS) {
    describe(subset.toUpperCase(), () => {
      const manifestPath = join(MODEL_DIR, `${subset}.manifest.json`);
      let cached: ModelManifest | undefined;
      const manifest = (): ModelManifest => (cached ??= loadManifest(manifestPath));

      it("manifest validates against models/manifest.schema.json", () => {
        const m = manifest();
        const ok = validate(m);
        expect(validate.errors ?? []).toEqual([]);
        expect(ok).toBe(true);
      });

      it("manifest is consistent with the ONNX file, the data and the C-MAPSS channel layout", () => {
        const m = manifest();
        const onnx = readFileSync(modelPath(manifestPath, m));
        expect(sha256Hex(onnx)).toBe(m.model.sha256);
        expect(onnx.length).toBe(m.model.bytes);
        expect(m.task).toBe("rul");
        expect(m.inputs.channels).toEqual(CMAPSS_CHANNELS);
        // The simulator's replay sends exactly these channels, in this order.
        expect(SIM_CHANNELS.map((c) => c.name)).toEqual(m.inputs.channels);
        expect(m.inputs.shape).toEqual(["batch", m.inputs.window, tensorWidth(m)]);
        expect(m.devices.profiles).toContain(`cmapss-${subset}`);
        for (const d of m.training.data) {
          expect(sha256Hex(readMaybeGzip(join(REPO_ROOT, d.file)))).toBe(d.sha256);
        }
        const regimes = m.normalization.regime.centroids.length;
        expect(regimes).toBe(subset === "fd002" || subset === "fd004" ? 6 : 1);
        // alert hysteresis: a "<=" rule clears strictly above its threshold
        for (const a of m.alerts) {
          expect(a.op === "<=" ? a.clear > a.threshold : a.clear < a.threshold).toBe(true);
        }
      });

      it("recomputed test RMSE and PHM08 score are not worse than the manifest claims", async () => {
        const m = manifest();
        const ev = await evaluateManifest(manifestPath, m);
        expect(ev.units).toBe(m.metrics.units);
        expect(ev.rmse).toBeLessThanOrEqual(m.metrics.rmse * (1 + REL_TOL));
        expect(ev.score).toBeLessThanOrEqual(m.metrics.score * (1 + REL_TOL));
        const capped = m.metrics.cappedTruth;
        if (capped) {
          expect(ev.rmseCappedTruth).toBeLessThanOrEqual(capped.rmse * (1 + REL_TOL));
          expect(ev.scoreCappedTruth).toBeLessThanOrEqual(capped.score * (1 + REL_TOL));
        }
        // the claim is the model's own number, not a loose upper bound
        expect(ev.rmse).toBeGreaterThanOrEqual(m.metrics.rmse * (1 - REL_TOL));
        for (const p of ev.predictions) {
          expect(p).toBeGreaterThanOrEqual(0);
          expect(p).toBeLessThanOrEqual(125);
        }
      });

      it("every plant condition (mid-life start, counter restarted, missing + stuck, int8) is not worse than claimed", async () => {
        const m = manifest();
        const claimed = m.metrics.conditions as Record<string, ConditionFigures> | undefined;
        expect(Object.keys(claimed ?? {})).toEqual(
          expect.arrayContaining(["midLife", "counterRestarted", "missingStuck"]),
        );
        const session = await createSession(modelPath(manifestPath, m));
        const variant = m.model.variants?.find((v) => v.precision === "int8");
        const int8 = variant ? await createSession(join(MODEL_DIR, variant.file)) : undefined;
        if (variant) expect(sha256Hex(readFileSync(join(MODEL_DIR, variant.file)))).toBe(variant.sha256);
        try {
          const got = await evaluateConditions(m, session, int8);
          expect(worseConditions(got, claimed)).toEqual([]);
          // the claims are the model's own figures
          for (const [k, c] of Object.entries(claimed!))
            expect(got[k]!.cappedTruth.rmse).toBeGreaterThanOrEqual(c.cappedTruth.rmse * (1 - REL_TOL));
        } finally {
          await session.release();
          await int8?.release();
        }
      }, 120_000);

      it("its data-quality rules flag no frame of the clean train and test files", () => {
        const m = manifest();
        const norm = createNormalizer(m);
        const spec = createQuality(m, norm);
        expect(spec.declared).toBe(true);
        const out = new Float32Array(norm.features);
        const res = newFrameQuality(spec);
        let flagged = 0;
        for (const split of ["train", "test"])
          for (const u of loadCmapss(join(DATA_DIR, `${split}_${subset.toUpperCase()}.txt.gz`))) {
            const state = new QualityState(spec);
            for (let r = 0; r < u.cycles; r++) {
              checkRow(spec, norm, state, u.data, r * CMAPSS_WIDTH, out, 0, res);
              flagged += res.flagged;
            }
          }
        expect(flagged).toBe(0);
      });
    });
  }
});

describe("FD001 first bar", () => {
  // The first bar: FD001 test RMSE <= 13.0 (last window per test unit, truth uncapped),
  // recomputed here with onnxruntime-node from the committed file, not read from the manifest.
  it("FD001 test RMSE is at most 13.0", async () => {
    const p = join(MODEL_DIR, "fd001.manifest.json");
    const ev = await evaluateManifest(p, loadManifest(p));
    expect(ev.rmse).toBeLessThanOrEqual(13.0);
  });
});

describe("C-MAPSS helpers", () => {
  const row = (unit: number, cycle: number, base: number): string =>
    [unit, cycle, ...Array.from({ length: 24 }, (_, c) => base + c)].join(" ") + "  ";

  it("parses whitespace-separated rows into units and rejects gaps and bad field counts", () => {
    const units = parseCmapss([row(1, 1, 0), row(1, 2, 100), row(2, 1, 200)].join("\n") + "\n");
    expect(units.map((u) => [u.unit, u.cycles])).toEqual([
      [1, 2],
      [2, 1],
    ]);
    // Row layout: 24 file channels, then the cycle counter (CMAPSS_CHANNELS).
    expect(CMAPSS_WIDTH).toBe(25);
    expect(units[0]!.data[CMAPSS_WIDTH + 5]).toBe(105);
    expect(units[0]!.data[CMAPSS_WIDTH + 24]).toBe(2);
    expect(units[1]!.data[24]).toBe(1);
    expect(() => parseCmapss([row(1, 1, 0), row(1, 3, 0)].join("\n"))).toThrow(/out of order/);
    expect(() => parseCmapss("1 1 2 3")).toThrow(/26 fields/);
  });

  it("reads gzip and plain files alike", () => {
    const dir = mkdtempSync(join(tmpdir(), "vigil-cmapss-"));
    try {
      const text = [row(7, 1, 0), row(7, 2, 50)].join("\n") + "\n";
      writeFileSync(join(dir, "a.txt"), text);
      writeFileSync(join(dir, "a.txt.gz"), gzipSync(text));
      const plain = loadCmapss(join(dir, "a.txt"));
      expect(loadCmapss(join(dir, "a.txt.gz"))).toEqual(plain);
      expect(plain[0]!.cycles).toBe(2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const units = loadCmapss(join(DATA_DIR, "train_FD001.txt.gz"));
    expect(units.length).toBe(100);
    expect(units.reduce((s, u) => s + u.cycles, 0)).toBe(20631);
  });

  it("PHM08 score and RMSE match the dataset README's check value (constant 100 on FD001)", async () => {
    const m = loadManifest(join(MODEL_DIR, "fd001.manifest.json"));
    const ev = await evaluateManifest(join(MODEL_DIR, "fd001.manifest.json"), m);
    const constant = new Float64Array(ev.truth.length).fill(100);
    expect(rmse(constant, ev.truth)).toBeCloseTo(48.23, 2);
    expect(phm08Score(constant, ev.truth)).toBeCloseTo(123472.2, 0);
    // asymmetric: 13 early vs 10 late
    expect(phm08Score([0], [13])).toBeCloseTo(Math.E - 1, 12);
    expect(phm08Score([10], [0])).toBeCloseTo(Math.E - 1, 12);
  });

  it("assigns regimes by nearest centroid and normalises per regime without allocating", () => {
    const m = loadManifest(join(MODEL_DIR, "fd002.manifest.json"));
    const norm = createNormalizer(m);
    expect(norm.regimes).toBe(6);
    const frame = new Float64Array(CMAPSS_WIDTH);
    const out = new Float32Array(norm.features + 2);
    for (let k = 0; k < norm.regimes; k++) {
      const c = m.normalization.regime.centroids[k]!;
      frame.set(c, 0); // settings are channels 0..2
      m.inputs.features.forEach(
        (f, i) =>
          (frame[CMAPSS_CHANNELS.indexOf(f)] =
            m.normalization.mean[k]![i]! + 2 * m.normalization.std[k]![i]!),
      );
      expect(assignRegime(norm, frame)).toBe(k);
      expect(normalizeRow(norm, frame, 0, out, 1)).toBe(k);
      expect(out[0]).toBe(0); // writes only its slot
      for (let f = 0; f < norm.direct; f++) expect(out[1 + f]).toBeCloseTo(2, 5);
    }
  });

  it("pads windows of short units by repeating the first row", () => {
    const rows = Float32Array.from([1, 10, 2, 20, 3, 30]); // 3 rows x 2 features
    const out = new Float32Array(5 * 2);
    fillWindow(rows, 2, 2, 5, out, 0);
    expect(Array.from(out)).toEqual([1, 10, 1, 10, 1, 10, 2, 20, 3, 30]);
    fillWindow(rows, 2, 1, 2, out, 0);
    expect(Array.from(out.subarray(0, 4))).toEqual([1, 10, 2, 20]);
  });

  it("last windows of a real short test unit start with the repeated first row", () => {
    const m = loadManifest(join(MODEL_DIR, "fd004.manifest.json"));
    const units = loadCmapss(join(DATA_DIR, "test_FD004.txt.gz"));
    const shortest = units.reduce((a, b) => (b.cycles < a.cycles ? b : a));
    expect(shortest.cycles).toBe(19);
    const norm = createNormalizer(m);
    const W = m.inputs.window;
    const F = norm.features;
    const win = lastWindows(norm, [shortest], W);
    const first = new Float32Array(F);
    normalizeRow(norm, shortest.data, 0, first, 0);
    applyBaseline(norm, newBaseline(norm), first, 0); // deviations 0, then the origin
    const pad = W - shortest.cycles;
    for (let w = 0; w <= pad; w++)
      expect(Array.from(win.subarray(w * F, (w + 1) * F))).toEqual(Array.from(first));
    const last = new Float32Array(F);
    normalizeRow(norm, shortest.data, (shortest.cycles - 1) * CMAPSS_WIDTH, last, 0);
    const D = norm.direct;
    expect(Array.from(win.subarray((W - 1) * F, (W - 1) * F + D))).toEqual(Array.from(last.subarray(0, D)));
  });

  it("baseline deviations: each row's feature minus the mean of the unit's first K rows (rows so far while fewer)", () => {
    const m = loadManifest(join(MODEL_DIR, "fd001.manifest.json"));
    const norm = createNormalizer(m);
    const K = m.inputs.baseline!.rows;
    expect(K).toBe(10);
    expect(norm.features).toBe(
      norm.direct + m.inputs.baseline!.features.length + (m.inputs.baseline!.origin ? 1 : 0),
    );
    const unit = loadCmapss(join(DATA_DIR, "test_FD001.txt.gz"))[0]!;
    const rows = normalizeUnit(norm, unit);
    const F = norm.features;
    for (const r of [0, 1, 5, K - 1, K, K + 1, unit.cycles - 1]) {
      for (let j = 0; j < norm.baselineIndex.length; j++) {
        const f = norm.baselineIndex[j]!;
        let sum = 0;
        const n = Math.min(r + 1, K);
        for (let i = 0; i < n; i++) sum += rows[i * F + f]!;
        expect(rows[r * F + norm.direct + j]).toBe(Math.fround(rows[r * F + f]! - sum / n));
      }
    }
    // The first row is its own baseline.
    for (let j = 0; j < norm.baselineIndex.length; j++) expect(rows[norm.direct + j]).toBe(0);
    // Every row ends with the origin: the first row's normalised cycle counter (cycle 1 → 0.01).
    expect(norm.originIndex).toBe(m.inputs.features.indexOf("cycle"));
    for (const r of [0, 1, unit.cycles - 1]) expect(rows[r * F + F - 1]).toBe(Math.fround(0.01));
    // A fresh state per unit: a second pass gives the same rows.
    expect(normalizeUnit(norm, unit)).toEqual(rows);
    const state = newBaseline(norm);
    const row = new Float32Array(F);
    normalizeRow(norm, unit.data, 0, row, 0);
    applyBaseline(norm, state, row, 0);
    expect(state.rows).toBe(1);
  });
});
