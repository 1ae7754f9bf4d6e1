// `npm run models:eval [-- --dir models/cmapss] [--only fd001] [--latency-runs N] [--write]` (--dir: absolute or relative to the repo root)
// (run-all.ts: these options go to this script; --dir, --only and --write make it the only evaluation run),
// or alone: `npx tsx models/eval/evaluate.ts [same options]`. --only is a manifest's name (fd001, any case).
// Recomputes every committed C-MAPSS model's test metrics with onnxruntime-node from its manifest and
// the data in models/data/cmapss: the standard protocol (last window per test unit from the first cycle,
// truth uncapped and capped) and every plant condition (models/eval/conditions.ts: observation from
// mid-life, the counter restarted there, 5 % missing values + one stuck sensor, the int8 variant) and a
// 90 % bootstrap interval of the first-cycle RMSEs over test units (bootstrap.ts); checks the ONNX
// sha256s, measures per-window latency on one thread (batch 1, and amortised in batches of 256) for the
// float and int8 files in the same run, prints one table per condition with the issue-14 goals and, as
// the last line, one JSON object.
// Exit code 1 if a hash differs or a recomputed figure is worse than its manifest claims.
// --write (training pipeline only): records the condition figures in metrics.conditions instead.
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import * as ort from "../../gateway/src/infer/ort.ts";
import * as prettier from "prettier";
import { latencyMs } from "./latency.ts";
import { REPO_ROOT, createSession, evaluateManifest, sha256Hex } from "./cmapss.ts";
import { bootstrapRmse, type RmseInterval } from "./bootstrap.ts";
import {
  evaluateConditions,
  GOALS,
  METRIC_TOLERANCE,
  worseConditions,
  type ConditionFigures,
} from "./conditions.ts";
import { loadManifest, modelPath } from "../../gateway/src/infer/features/manifest.ts";
import { evalOptions, int, UsageError } from "./options.ts";

interface Row {
  name: string;
  subset: string;
  units: number;
  rmse: number;
  score: number;
  rmseCappedTruth: number;
  scoreCappedTruth: number;
  claimedRmse: number;
  claimedScore: number;
  /** first cycle: how far the test RMSE could move with another draw of test units */
  intervals: { uncapped: RmseInterval; capped: RmseInterval };
  conditions: Record<string, ConditionFigures>;
  worse: string[];
  params: number;
  bytes: number;
  macs: number;
  window: number;
  latencyMsBatch1: number;
  latencyUsPerWindowBatch256: number;
  int8?: {
    bytes: number;
    latencyMsBatch1: number;
    latencyUsPerWindowBatch256: number;
    ratioBatch256: number;
  };
  sha256Ok: boolean;
  ok: boolean;
}

function printTable(title: string, header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((t) => (t[i] ?? "").length)));
  const fmt = (cells: string[]): string => cells.map((c, i) => c.padStart(widths[i] ?? 0)).join("  ");
  console.log(`\n${title}`);
  console.log(fmt(header));
  for (const t of rows) console.log(fmt(t));
}

/** Bootstrap intervals of the first-cycle RMSE, uncapped and capped, with the share at or below each goal. */
function firstCycleIntervals(
  pred: Float32Array,
  truth: Float64Array,
  capped: Float64Array,
  subset: string,
): Row["intervals"] {
  const u = GOALS["firstCycleUncapped"]![subset];
  const c = GOALS["firstCycleCapped"]![subset];
  return {
    uncapped: bootstrapRmse(pred, truth, u === undefined ? {} : { threshold: u }),
    capped: bootstrapRmse(pred, capped, c === undefined ? {} : { threshold: c }),
  };
}

const goal = (g: number | undefined, v: number): string =>
  g === undefined ? "–" : `${g} ${v <= g ? "met" : `missed by ${(v - g).toFixed(2)}`}`;

const USAGE =
  "npx tsx models/eval/evaluate.ts [--dir models/cmapss] [--only fd001] [--latency-runs N] [--write]";

/** The command line, checked before any model is loaded (models/eval/options.ts: one line, exit 2). */
function options(): { dir: string; files: string[]; runs: number; write: boolean } {
  return evalOptions(
    "evaluate.ts",
    USAGE,
    {
      dir: { type: "string" },
      only: { type: "string" },
      "latency-runs": { type: "string" },
      write: { type: "boolean" },
    },
    (a) => {
      const dir = resolve(REPO_ROOT, a.dir ?? "models/cmapss");
      if (!existsSync(dir) || !statSync(dir).isDirectory())
        throw new UsageError(`--dir ${a.dir}: ${dir} is not a directory`);
      const all = readdirSync(dir)
        .filter((f) => f.endsWith(".manifest.json"))
        .sort();
      if (all.length === 0) throw new UsageError(`no *.manifest.json in ${dir}`);
      const names = all.map((f) => f.slice(0, -".manifest.json".length));
      // The exact name, else the same name in another case (FD001 as the tables print it).
      const want = a.only;
      const only =
        want === undefined
          ? undefined
          : (names.find((n) => n === want) ?? names.find((n) => n.toLowerCase() === want.toLowerCase()));
      if (want !== undefined && only === undefined)
        throw new UsageError(
          `--only ${want}: no ${want}.manifest.json in ${dir} (there: ${names.join(", ")})`,
        );
      return {
        dir,
        files: only === undefined ? all : [`${only}.manifest.json`],
        runs: int("latency-runs", a["latency-runs"], 200, 1),
        write: a.write === true,
      };
    },
  );
}

async function main(): Promise<void> {
  const { dir, files, runs, write } = options();

  const rows: Row[] = [];
  for (const f of files) {
    const manifestPath = join(dir, f);
    const m = loadManifest(manifestPath);
    const onnx = modelPath(manifestPath, m);
    let sha256Ok = sha256Hex(readFileSync(onnx)) === m.model.sha256;
    const variant = m.model.variants?.find((v) => v.precision === "int8");
    const int8Path = variant ? join(dir, variant.file) : undefined;
    if (variant && int8Path) sha256Ok &&= sha256Hex(readFileSync(int8Path)) === variant.sha256;
    const session = await createSession(onnx, 1);
    const int8 = int8Path ? await createSession(int8Path, 1) : undefined;
    const ev = await evaluateManifest(manifestPath, m, session);
    const conditions = await evaluateConditions(m, session, int8);
    if (write) {
      m.metrics.conditions = conditions;
      const text = await prettier.format(JSON.stringify(m), { parser: "json", printWidth: 110 });
      writeFileSync(manifestPath, text);
      console.log(`wrote metrics.conditions to ${manifestPath}`);
    }
    const claimed = m.metrics.conditions as Record<string, ConditionFigures> | undefined;
    const worse = worseConditions(conditions, claimed);
    const notWorse = (got: number, c: number | undefined): boolean =>
      c === undefined || got <= c * (1 + METRIC_TOLERANCE);
    if (!notWorse(ev.rmse, m.metrics.rmse)) worse.push("rmse");
    if (!notWorse(ev.score, m.metrics.score)) worse.push("score");
    if (!notWorse(ev.rmseCappedTruth, m.metrics.cappedTruth?.rmse)) worse.push("cappedTruth.rmse");
    if (!notWorse(ev.scoreCappedTruth, m.metrics.cappedTruth?.score)) worse.push("cappedTruth.score");
    const lat1 = await latencyMs(session, m, 1, runs);
    const lat256 = ((await latencyMs(session, m, 256, Math.max(5, Math.floor(runs / 10)))) * 1000) / 256;
    let int8Row: Row["int8"];
    if (int8 && variant) {
      const q1 = await latencyMs(int8, m, 1, runs);
      const q256 = ((await latencyMs(int8, m, 256, Math.max(5, Math.floor(runs / 10)))) * 1000) / 256;
      int8Row = {
        bytes: variant.bytes,
        latencyMsBatch1: q1,
        latencyUsPerWindowBatch256: q256,
        ratioBatch256: q256 / lat256,
      };
      await int8.release();
    }
    const subset = f.replace(".manifest.json", "").toUpperCase();
    rows.push({
      name: m.name,
      subset,
      units: ev.units,
      rmse: ev.rmse,
      score: ev.score,
      rmseCappedTruth: ev.rmseCappedTruth,
      scoreCappedTruth: ev.scoreCappedTruth,
      claimedRmse: m.metrics.rmse,
      claimedScore: m.metrics.score,
      intervals: firstCycleIntervals(ev.predictions, ev.truth, ev.cappedTruth, subset),
      conditions,
      worse,
      params: m.model.params,
      bytes: m.model.bytes,
      macs: m.model.macsPerWindow,
      window: m.inputs.window,
      latencyMsBatch1: lat1,
      latencyUsPerWindowBatch256: lat256,
      ...(int8Row ? { int8: int8Row } : {}),
      sha256Ok,
      ok: sha256Ok && worse.length === 0,
    });
    await session.release();
  }

  console.log(`onnxruntime-node ${ort.env.versions.common}, 1 intra-op thread, ${process.arch}`);
  const c = (r: Row, k: string): ConditionFigures | undefined => r.conditions[k];
  const rs = (x: { rmse: number; score: number } | undefined): string =>
    x ? `${x.rmse.toFixed(2)} / ${x.score.toFixed(1)}` : "–";
  printTable(
    "From the first cycle (standard protocol): RMSE / PHM08 score",
    ["subset", "units", "uncapped", "goal", "capped truth", "goal", "claimed uncapped"],
    rows.map((r) => [
      r.subset,
      String(r.units),
      `${r.rmse.toFixed(3)} / ${r.score.toFixed(1)}`,
      goal(GOALS["firstCycleUncapped"]![r.subset], r.rmse),
      `${r.rmseCappedTruth.toFixed(3)} / ${r.scoreCappedTruth.toFixed(1)}`,
      goal(GOALS["firstCycleCapped"]![r.subset], r.rmseCappedTruth),
      `${r.claimedRmse} / ${r.claimedScore}`,
    ]),
  );
  const iv = (x: RmseInterval): string => `${x.lo.toFixed(2)} – ${x.hi.toFixed(2)}`;
  const share = (x: RmseInterval): string =>
    x.atOrBelow === undefined ? "–" : `${(100 * x.atOrBelow).toFixed(1)} % ≤ ${x.threshold}`;
  printTable(
    "From the first cycle: 90 % bootstrap interval over test units (10,000 seeded resamples)",
    ["subset", "uncapped", "interval", "resamples at goal", "capped truth", "interval", "resamples at goal"],
    rows.map((r) => [
      r.subset,
      r.rmse.toFixed(2),
      iv(r.intervals.uncapped),
      share(r.intervals.uncapped),
      r.rmseCappedTruth.toFixed(2),
      iv(r.intervals.capped),
      share(r.intervals.capped),
    ]),
  );
  printTable(
    "Observation from mid-life (5 seeded cuts per unit): RMSE / PHM08 score",
    ["subset", "samples", "capped truth", "goal", "uncapped", "counter restarted (capped)"],
    rows.map((r) => [
      r.subset,
      String(c(r, "midLife")?.samples ?? "–"),
      rs(c(r, "midLife")?.cappedTruth),
      goal(GOALS["midLifeCapped"]![r.subset], c(r, "midLife")?.cappedTruth.rmse ?? Infinity),
      rs(c(r, "midLife")),
      rs(c(r, "counterRestarted")?.cappedTruth),
    ]),
  );
  printTable(
    "5 % of used values missing + one stuck sensor (5 seeded repeats): RMSE / PHM08 score",
    ["subset", "samples", "capped truth", "ratio to clean", "goal", "withheld", "sensor faults"],
    rows.map((r) => {
      const x = c(r, "missingStuck");
      const ratio = (x?.["ratioToClean"] as number | undefined) ?? Infinity;
      return [
        r.subset,
        String(x?.samples ?? "–"),
        rs(x?.cappedTruth),
        ratio.toFixed(3),
        goal(GOALS["missingStuckRatio"]![r.subset], ratio),
        String(x?.["withheld"] ?? "–"),
        String(x?.["sensorFaults"] ?? "–"),
      ];
    }),
  );
  printTable(
    "int8 variant vs float (same run)",
    [
      "subset",
      "int8 capped",
      "Δ capped RMSE",
      "goal",
      "bytes f32/int8",
      "µs/window b=256 f32/int8",
      "ratio",
      "ms b=1 f32/int8",
    ],
    rows.map((r) => {
      const x = c(r, "int8");
      const d = (x?.["deltaCappedRmse"] as number | undefined) ?? Infinity;
      return [
        r.subset,
        rs(x?.cappedTruth),
        x ? d.toFixed(3) : "–",
        goal(GOALS["int8Delta"]![r.subset], d),
        r.int8 ? `${r.bytes} / ${r.int8.bytes}` : "–",
        r.int8
          ? `${r.latencyUsPerWindowBatch256.toFixed(1)} / ${r.int8.latencyUsPerWindowBatch256.toFixed(1)}`
          : "–",
        r.int8 ? r.int8.ratioBatch256.toFixed(2) : "–",
        r.int8 ? `${r.latencyMsBatch1.toFixed(3)} / ${r.int8.latencyMsBatch1.toFixed(3)}` : "–",
      ];
    }),
  );
  printTable(
    "Model size and latency (float32)",
    ["subset", "params", "bytes", "MACs/window", "window", "ms (b=1)", "µs/window (b=256)", "ok"],
    rows.map((r) => [
      r.subset,
      String(r.params),
      String(r.bytes),
      String(r.macs),
      String(r.window),
      r.latencyMsBatch1.toFixed(3),
      r.latencyUsPerWindowBatch256.toFixed(1),
      r.ok ? "yes" : r.sha256Ok ? `WORSE: ${r.worse.join(", ")}` : "SHA256",
    ]),
  );
  const ok = rows.every((r) => r.ok);
  console.log(JSON.stringify({ ok, goals: GOALS, models: rows }));
  if (!ok) process.exitCode = 1;
}

await main();
