// The CWRU bearing-fault model (models/cwru): manifest, hashes, data, the held-out metrics recomputed
// with onnxruntime-node through the gateway's DeviceWindow (not worse than claimed), the data-quality
// rules on the real data, and the simulator's replay profile.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Ajv } from "ajv";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type * as ort from "onnxruntime-node";
import { REPO_ROOT, createSession, sha256Hex } from "../../models/eval/cmapss.ts";
import {
  CWRU_MANIFEST,
  cwruTestBlocks,
  faultyBlocks,
  runCwru,
  scoreCwru,
  streamBlocks,
  worseThanClaimed,
} from "../../models/eval/cwru.ts";
import {
  CWRU_CHANNELS,
  CWRU_CLASSES,
  CWRU_SPLIT,
  loadCwru,
  parseCwru,
} from "../../gateway/src/infer/features/cwru.ts";
import { readMaybeGzip } from "../../gateway/src/infer/features/cmapss.ts";
import { loadManifest, modelPath, type ModelManifest } from "../../gateway/src/infer/features/manifest.ts";
import { createNormalizer } from "../../gateway/src/infer/features/normalize.ts";
import {
  checkRow,
  createQuality,
  newFrameQuality,
  QualityState,
} from "../../gateway/src/infer/features/quality.ts";
import { DataFileError } from "../../gateway/src/infer/errors.ts";
import { cwruSources, CWRU_DESCRIPTORS, CWRU_PROFILE } from "../../device-sim/src/profiles/cwru.ts";
import { Rng } from "../../device-sim/src/rng.ts";

const schema = JSON.parse(readFileSync(join(REPO_ROOT, "models", "manifest.schema.json"), "utf8")) as object;
const validate = new Ajv({ allErrors: true, strict: true }).compile(schema);

let m: ModelManifest;
let session: ort.InferenceSession;
beforeAll(async () => {
  m = loadManifest(CWRU_MANIFEST);
  session = await createSession(modelPath(CWRU_MANIFEST, m));
});
afterAll(() => session.release());

describe("CWRU bearing-fault model", () => {
  it("manifest validates and matches the ONNX file, the data and the simulator's channels", () => {
    expect(validate(m)).toBe(true);
    expect(validate.errors ?? []).toEqual([]);
    const onnx = readFileSync(modelPath(CWRU_MANIFEST, m));
    expect(sha256Hex(onnx)).toBe(m.model.sha256);
    expect(onnx.length).toBe(m.model.bytes);
    for (const d of m.training.data) expect(sha256Hex(readMaybeGzip(join(REPO_ROOT, d.file)))).toBe(d.sha256);
    expect(m.inputs.channels).toEqual(CWRU_CHANNELS);
    expect(CWRU_DESCRIPTORS.map((c) => c.name)).toEqual(m.inputs.channels);
    expect(m.devices.profiles).toEqual([CWRU_PROFILE]);
    expect(m.outputs[1]!.meaning).toContain(CWRU_CLASSES.join(", "));
  });

  it("recomputed held-out metrics (clean, and 5 % missing + one stuck statistic) are not worse than claimed", async () => {
    const blocks = cwruTestBlocks();
    const clean = await scoreCwru(session, m, blocks);
    expect(clean.windows).toBe(m.metrics.units);
    expect(worseThanClaimed(clean, m.metrics)).toEqual([]);
    const conditions = m.metrics["conditions"] as Record<string, Record<string, unknown>>;
    const faulty = await scoreCwru(session, m, faultyBlocks(blocks));
    expect(worseThanClaimed(faulty, conditions["missingStuck"])).toEqual([]);
    // the claim is the model's own figure, not a loose bound
    expect(clean.logLoss).toBeGreaterThanOrEqual((m.metrics["logLoss"] as number) * 0.999);
  });

  it("no clean frame of the whole file is flagged by the data-quality rules", () => {
    const norm = createNormalizer(m);
    const spec = createQuality(m, norm);
    const out = new Float32Array(norm.features);
    const res = newFrameQuality(spec);
    let flagged = 0;
    for (const r of loadCwru()) {
      const state = new QualityState(spec);
      for (let i = 0; i < r.rows; i++) {
        checkRow(spec, norm, state, r.data, i * CWRU_CHANNELS.length, out, 0, res);
        flagged += res.flagged;
      }
    }
    expect(flagged).toBe(0);
  });

  it("the split: 69 held-out rows per class, after the training and validation rows", () => {
    const recs = loadCwru();
    expect(recs.map((r) => r.label)).toEqual(CWRU_CLASSES);
    expect(recs.every((r) => r.rows === CWRU_SPLIT.rowsPerClass)).toBe(true);
    const blocks = cwruTestBlocks(recs);
    expect(blocks.every((b) => b.rows === 69)).toBe(true);
    expect(blocks[3]!.data[0]).toBe(recs[3]!.data[CWRU_SPLIT.testFrom * CWRU_CHANNELS.length]);
  });

  it("parser rejects a wrong header, a bad field and an unknown class", () => {
    const head = [...CWRU_CHANNELS, "fault"].join(",");
    const row = (label: string, v = "1"): string => [...CWRU_CHANNELS.map(() => v), label].join(",");
    expect(() => parseCwru("a,b\n")).toThrow(DataFileError);
    expect(() => parseCwru(`${head}\n${row("Normal_1", "x")}\n`)).toThrow(/not a number/);
    expect(() => parseCwru(`${head}\n${row("Broken_1")}\n`)).toThrow(/unknown class/);
    expect(() => parseCwru(`\ufeff${head}\n${row("Normal_1")}\n`)).toThrow(/has no rows/); // BOM ok, 9 classes missing
  });
});

describe("simulator profile cwru-bearing-v1", () => {
  it("replays held-out rows: healthy, then the device's fault; the model alerts after the onset only", async () => {
    const sources = cwruSources(9, new Rng(7));
    const recs = loadCwru();
    const C = CWRU_CHANNELS.length;
    for (const [i, s] of sources.entries()) {
      expect(s.fault).toBe(CWRU_CLASSES[1 + i]);
      expect(Array.from(s.sample(0)!)).toEqual(
        Array.from(
          Float32Array.from(recs[0]!.data.subarray(CWRU_SPLIT.testFrom * C, (CWRU_SPLIT.testFrom + 1) * C)),
        ),
      );
      expect(s.sample(s.failureStep + 200)).toBeUndefined();
    }
    // stream two devices through the gateway's windows and the model
    for (const s of sources.slice(0, 9)) {
      const rows: number[] = [];
      for (let t = 0; s.sample(t); t++) rows.push(...s.sample(t)!);
      const frames = rows.length / C;
      const { windows, labels } = streamBlocks(m, [
        { label: s.fault, classIndex: 1, rows: frames, data: Float64Array.from(rows) },
      ]);
      const { pFault } = await runCwru(session, m, windows, labels.length);
      const W = m.inputs.window;
      // window k ends at frame k + W - 1
      for (let k = 0; k < pFault.length; k++) {
        const end = k + W - 1;
        if (end < s.failureStep) expect(pFault[k]).toBeLessThan(0.5);
        if (end - W + 1 >= s.failureStep) expect(pFault[k]).toBeGreaterThanOrEqual(0.5);
      }
    }
  });
});
