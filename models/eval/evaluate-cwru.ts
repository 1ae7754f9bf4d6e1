// `npx tsx models/eval/evaluate-cwru.ts [--latency-runs N] [--write]` (part of `npm run models:eval`)
// Recomputes the CWRU bearing-fault model's held-out metrics with onnxruntime-node (models/eval/cwru.ts:
// each class's test block streamed through the gateway's DeviceWindow), clean and with 5 % missing values +
// one stuck statistic per recording, checks the ONNX sha256, measures latency, prints a table and, as the
// last line, one JSON object. Exit code 1 if the hash differs or a figure is worse than the manifest claims.
// --write (training pipeline only): records the figures in the manifest's metrics instead (`npm run
// models:eval -- --write` never does: run-all.ts). --latency-runs N: batch-1 runs (default 200; batch 256:
// a tenth, at least 5). A mistyped option is one line and exit 2 before the model is loaded (options.ts).
import { readFileSync, writeFileSync } from "node:fs";
import * as ort from "onnxruntime-node";
import * as prettier from "prettier";
import { createSession, sha256Hex } from "./cmapss.ts";
import {
  CWRU_MANIFEST,
  cwruTestBlocks,
  faultyBlocks,
  scoreCwru,
  worseThanClaimed,
  type CwruScores,
} from "./cwru.ts";
import { latencyMs } from "./latency.ts";
import { loadManifest, modelPath } from "../../gateway/src/infer/features/manifest.ts";
import { evalOptions, int } from "./options.ts";

/** Published figures on CWRU, for the README and the manifest (what they measured differs: see models/cwru/README.md). */
export const PUBLISHED = {
  segmentWiseAccuracy:
    "≥ 98–99 % 10-class accuracy with random segment-wise splits of the same recordings (e.g. MDPI Information 15(5):259, 2024, raw signals, CNNs > 98 %; IIETA JESA 58(1), 2025, ≥ 99 %); inflated by leakage between segments of one recording",
  leakageFree:
    "Rosa, Braga & Silva 2024 (arXiv:2407.14625), bearing-wise leakage-free split, multi-label: macro AUROC 0.911 (fine-grained diagnosis), 0.988 (fault detection)",
};

/** 6 significant digits (the "not worse" check allows 0.1 %, so rounding can never fail it). */
const r5 = (x: number): number => Number(x.toPrecision(6));

function figures(s: CwruScores): Record<string, unknown> {
  return {
    windows: s.windows,
    accuracy: r5(s.accuracy),
    macroF1: r5(s.macroF1),
    detection: {
      precision: r5(s.detection.precision),
      recall: r5(s.detection.recall),
      falseAlarmRate: r5(s.detection.falseAlarmRate),
      auroc: r5(s.detection.auroc),
    },
    rootBrier: r5(s.rootBrier),
    logLoss: r5(s.logLoss),
    withheld: s.withheld,
  };
}

const USAGE = "npx tsx models/eval/evaluate-cwru.ts [--latency-runs N] [--write]";

async function main(): Promise<void> {
  // Checked before the model is loaded (models/eval/options.ts: one line, exit 2).
  const { write, runs } = evalOptions(
    "evaluate-cwru.ts",
    USAGE,
    { "latency-runs": { type: "string" }, write: { type: "boolean" } },
    (a) => ({ write: a.write === true, runs: int("latency-runs", a["latency-runs"], 200, 1) }),
  );
  const m = loadManifest(CWRU_MANIFEST);
  const onnx = modelPath(CWRU_MANIFEST, m);
  const sha256Ok = sha256Hex(readFileSync(onnx)) === m.model.sha256;
  const session = await createSession(onnx, 1);
  const blocks = cwruTestBlocks();
  const clean = await scoreCwru(session, m, blocks);
  const faulty = await scoreCwru(session, m, faultyBlocks(blocks));
  const lat1 = await latencyMs(session, m, 1, runs);
  const lat256 = ((await latencyMs(session, m, 256, Math.max(5, Math.floor(runs / 10)))) * 1000) / 256;
  await session.release();
  if (write) {
    m.metrics = {
      testFile: "models/data/cwru/feature_time_48k_2048_load_1.csv.gz",
      protocol:
        "held-out rows [161, 230) of each class's recording (the last 30 %, after the training and validation rows), streamed frame by frame through the gateway's DeviceWindow (one device per recording); every runnable window (8 frames) scored. rmse = root Brier score of p_fault vs any-fault and score = mean 10-class log loss (the schema's lower-is-better pair); accuracy and macroF1 are 10-class (argmax of class_probs); detection at p_fault >= 0.5; falseAlarmRate over Normal_1 windows",
      units: clean.windows,
      rmse: r5(clean.rootBrier),
      score: r5(clean.logLoss),
      ...figures(clean),
      perClassRecall: clean.perClassRecall,
      confusion: clean.confusion,
      conditions: {
        missingStuck: {
          protocol:
            "the same blocks with 5 % of values NaN and one statistic per recording stuck from the block's middle (seed 14004)",
          rmse: r5(faulty.rootBrier),
          score: r5(faulty.logLoss),
          ...figures(faulty),
        },
      },
      published: PUBLISHED,
      latencyMsBatch1: Number(lat1.toFixed(4)),
      latencyUsPerWindowBatch256: Number(lat256.toFixed(2)),
      latencyHost: `onnxruntime-node ${ort.env.versions.common}, 1 intra-op thread, ${process.arch}`,
    };
    writeFileSync(
      CWRU_MANIFEST,
      await prettier.format(JSON.stringify(m), { parser: "json", printWidth: 110 }),
    );
    console.log(`wrote metrics to ${CWRU_MANIFEST}`);
  }
  const claims = loadManifest(CWRU_MANIFEST).metrics;
  const worse = [
    ...worseThanClaimed(clean, claims),
    ...worseThanClaimed(
      faulty,
      (claims["conditions"] as Record<string, Record<string, unknown>> | undefined)?.["missingStuck"],
    ).map((k) => `missingStuck.${k}`),
  ];
  const ok = sha256Ok && worse.length === 0;
  const row = (name: string, s: CwruScores): string =>
    `${name.padEnd(22)} ${String(s.windows).padStart(7)} ${(100 * s.accuracy).toFixed(2).padStart(8)} % ${s.macroF1.toFixed(4).padStart(7)} ${s.detection.precision.toFixed(4).padStart(9)} ${s.detection.recall.toFixed(4).padStart(7)} ${s.detection.falseAlarmRate.toFixed(4).padStart(9)} ${s.detection.auroc.toFixed(4).padStart(7)} ${s.rootBrier.toFixed(4).padStart(7)} ${s.logLoss.toFixed(4).padStart(8)} ${String(s.withheld).padStart(8)}`;
  console.log(`${m.name}: onnxruntime-node ${ort.env.versions.common}, 1 intra-op thread, ${process.arch}`);
  console.log(
    "condition              windows  accuracy  macroF1  precision  recall  FA (Normal)  AUROC  rBrier  logLoss  withheld",
  );
  console.log(row("held-out, clean", clean));
  console.log(row("5 % missing + stuck", faulty));
  console.log(
    `latency: ${lat1.toFixed(3)} ms at batch 1, ${lat256.toFixed(2)} µs per window in batches of 256; sha256 ${sha256Ok ? "ok" : "MISMATCH"}; ${ok ? "not worse than claimed" : `WORSE: ${worse.join(", ")}`}`,
  );
  console.log(
    JSON.stringify({
      ok,
      model: m.name,
      clean: figures(clean),
      missingStuck: figures(faulty),
      sha256Ok,
      worse,
      latencyMsBatch1: lat1,
      latencyUsPerWindowBatch256: lat256,
    }),
  );
  if (!ok) process.exitCode = 1;
}

await main();
