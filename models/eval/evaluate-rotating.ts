// `npx tsx models/eval/evaluate-rotating.ts [--manifest models/rotating/rotating-v1.manifest.json]
//                                           [--latency-runs N] [--write]`
// Recomputes the rotating-machine health model's held-out metrics with onnxruntime-node (regenerating the
// evaluation seeds' trajectories, streaming them through per-device windows with one micro-batched call
// per tick, applying the manifest's alert rules with hysteresis), checks the ONNX sha256, measures
// per-window latency on one thread (batch 1, and amortised in batches of 256), prints a table and, as the
// last line, one JSON object. Exit code 1 if the hash differs or the metrics are worse than claimed.
// --write: (training pipeline only) records the recomputed metrics in the manifest instead of checking.
// Robustness runs (reported, never compared with the claims): --faults stuck=0.005,drift=0.005,spike=0.01
// (or --faults none), --mean-life N, --seeds A-B override the held-out split's settings.
// --manifest: absolute or relative to the repo root. A mistyped option or a bad value is one line and
// exit 2 before the model is loaded (options.ts). `npm run models:eval` runs this with --latency-runs only.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { performance } from "node:perf_hooks";
import * as ort from "../../gateway/src/infer/ort.ts";
import { latencyMs } from "./latency.ts";
import * as prettier from "prettier";
import { REPO_ROOT, createSession, sha256Hex } from "./cmapss.ts";
import { loadManifest, modelPath } from "../../gateway/src/infer/features/manifest.ts";
import { parseFaultRates } from "../../device-sim/src/faults.ts";
import type { SplitSpec } from "../rotating/generate.ts";
import { claimedMetrics, evalSpec, evaluateRotating, worseThanClaimed } from "./rotating.ts";
import { evalOptions, int, num, UsageError } from "./options.ts";

const USAGE =
  "npx tsx models/eval/evaluate-rotating.ts [--manifest PATH] [--latency-runs N] [--write] | [--faults SPEC|none] [--mean-life N] [--seeds A-B]";

/** The command line, checked before any model is loaded (models/eval/options.ts: one line, exit 2). */
function options() {
  return evalOptions(
    "evaluate-rotating.ts",
    USAGE,
    {
      manifest: { type: "string" },
      "latency-runs": { type: "string" },
      write: { type: "boolean" },
      faults: { type: "string" },
      "mean-life": { type: "string" },
      seeds: { type: "string" },
    },
    (a) => {
      const override = a.faults !== undefined || a["mean-life"] !== undefined || a.seeds !== undefined;
      if (override && a.write)
        throw new UsageError("--write records the manifest's own split; drop --faults/--mean-life/--seeds");
      let faults: SplitSpec["faults"] | undefined;
      if (a.faults === "") throw new UsageError("--faults needs NAME=P[,NAME=P…] or none");
      if (a.faults !== undefined)
        try {
          faults = a.faults === "none" ? {} : parseFaultRates(a.faults);
        } catch (e) {
          throw new UsageError(`--faults: ${(e as Error).message}`);
        }
      const seeds = a.seeds === undefined ? undefined : /^(\d+)-(\d+)$/.exec(a.seeds);
      if (seeds === null || (seeds && !(Number(seeds[1]) > 0 && Number(seeds[2]) >= Number(seeds[1]))))
        throw new UsageError(`--seeds must be A-B with 1 ≤ A ≤ B, got "${a.seeds}"`);
      const manifestPath = resolve(REPO_ROOT, a.manifest ?? "models/rotating/rotating-v1.manifest.json");
      if (!existsSync(manifestPath))
        throw new UsageError(`--manifest ${a.manifest}: ${manifestPath} does not exist`);
      return {
        manifestPath,
        runs: int("latency-runs", a["latency-runs"], 200, 1),
        write: a.write === true,
        override,
        faults,
        meanLife: a["mean-life"] === undefined ? undefined : num("mean-life", a["mean-life"], 600, 1),
        seeds: seeds ? ([Number(seeds[1]), Number(seeds[2])] as const) : undefined,
      };
    },
  );
}

async function main(): Promise<void> {
  const o = options();
  const { manifestPath, runs, write, override } = o;
  const m = loadManifest(manifestPath);
  let spec: SplitSpec = evalSpec(m);
  if (override) {
    const [a, b] = o.seeds ?? [];
    spec = {
      ...spec,
      ...(o.faults !== undefined ? { faults: o.faults } : {}),
      ...(o.meanLife !== undefined ? { meanLife: o.meanLife } : {}),
      ...(a !== undefined && b !== undefined
        ? { seeds: Array.from({ length: b - a + 1 }, (_, i) => a + i) }
        : {}),
    };
    console.log(`robustness run (not compared with the manifest): ${JSON.stringify(spec)}`);
  }
  const onnx = modelPath(manifestPath, m);
  const sha256Ok = sha256Hex(readFileSync(onnx)) === m.model.sha256;
  const session = await createSession(onnx, 1);
  const t0 = performance.now();
  const ev = await evaluateRotating(manifestPath, m, { session, spec });
  const evalSeconds = (performance.now() - t0) / 1000;
  const latencyMsBatch1 = await latencyMs(session, m, 1, runs);
  const latencyUsPerWindowBatch256 =
    ((await latencyMs(session, m, 256, Math.max(5, Math.floor(runs / 10)))) * 1000) / 256;
  await session.release();

  if (write) {
    m.metrics = {
      testFile: `regenerated in memory: models/rotating/generate.ts SPLITS.eval (seeds ${spec.seeds[0]}-${spec.seeds[spec.seeds.length - 1]})`,
      protocol:
        "Held-out simulator seeds regenerated in memory; each device streamed frame by frame through its own " +
        "window (stride 1, no padding) with one micro-batched onnxruntime call per tick; alert rule with " +
        "hysteresis. precision = TP / (TP + false alarms), TP = degrading machine whose alert is active at some " +
        "frame after the degradation onset (before failure), false alarm = alert raised at a frame with " +
        "ground-truth degradation 0 (incl. degrade:false machines); lead = failureStep - first such frame. " +
        "rmse = root Brier score and score = mean log loss of p_fail vs failure-within-horizon labels over all " +
        "scored windows (the schema requires rmse/score; both lower-is-better).",
      split: "eval",
      seeds: [spec.seeds[0], spec.seeds[spec.seeds.length - 1]],
      degradingMachines: ev.headline.degradingMachines,
      healthyMachines: ev.headline.healthyMachines,
      faults: spec.faults,
      horizonFrames: ev.horizon,
      windows: ev.windows,
      ...claimedMetrics(ev),
      truePositives: ev.headline.truePositives,
      falseNegatives: ev.headline.falseNegatives,
      falseAlarms: ev.headline.falseAlarms,
      healthyFrames: ev.headline.healthyFrames,
      leadP25Frames: ev.headline.leadP25Frames,
      leadP75Frames: ev.headline.leadP75Frames,
      minLeadFrames: ev.headline.minLeadFrames,
      rules: Object.fromEntries(
        ev.rules.map((r) => [
          r.rule,
          {
            precision: Number(r.precision.toFixed(6)),
            recall: Number(r.recall.toFixed(6)),
            medianLeadFrames: r.medianLeadFrames,
            falseAlarms: r.falseAlarms,
            falseAlarmsPer1000HealthyFrames: Number(r.falseAlarmsPer1000HealthyFrames.toFixed(6)),
          },
        ]),
      ),
      latencyMsBatch1: Number(latencyMsBatch1.toFixed(4)),
      latencyUsPerWindowBatch256: Number(latencyUsPerWindowBatch256.toFixed(2)),
      latencyHost: `onnxruntime-node ${ort.env.versions.common}, 1 intra-op thread, ${process.arch}`,
    };
    const text = await prettier.format(JSON.stringify(m), { parser: "json", printWidth: 110 });
    writeFileSync(manifestPath, text);
    console.log(`wrote metrics to ${manifestPath}`);
  }

  const claims = loadManifest(manifestPath);
  const worse = override ? [] : worseThanClaimed(ev, claims);
  const ok = sha256Ok && worse.length === 0;
  const h = ev.headline;
  console.log(`onnxruntime-node ${ort.env.versions.common}, 1 intra-op thread, ${process.arch}`);
  console.log(
    "model                 rule             machines  precision  recall  median lead  FA/1k healthy  params  MACs/window  ms (b=1)  µs/window (b=256)  ok",
  );
  for (const r of ev.rules) {
    console.log(
      [
        m.name.padEnd(20),
        r.rule.padEnd(16),
        `${r.degradingMachines}+${r.healthyMachines}`.padStart(8),
        r.precision.toFixed(3).padStart(9),
        r.recall.toFixed(3).padStart(6),
        String(r.medianLeadFrames).padStart(11),
        r.falseAlarmsPer1000HealthyFrames.toFixed(3).padStart(13),
        String(m.model.params).padStart(6),
        String(m.model.macsPerWindow).padStart(11),
        latencyMsBatch1.toFixed(3).padStart(8),
        latencyUsPerWindowBatch256.toFixed(1).padStart(17),
        r === h ? (ok ? "yes" : sha256Ok ? "WORSE" : "SHA256") : "",
      ].join("  "),
    );
  }
  for (const w of worse) console.log(`worse than claimed: ${w}`);
  console.log(
    JSON.stringify({
      ok,
      models: [
        {
          name: m.name,
          task: m.task,
          sha256Ok,
          units: ev.units,
          precision: h.precision,
          recall: h.recall,
          medianLeadFrames: h.medianLeadFrames,
          falseAlarmsPer1000HealthyFrames: h.falseAlarmsPer1000HealthyFrames,
          rootBrier: ev.rootBrier,
          logLoss: ev.logLoss,
          params: m.model.params,
          bytes: m.model.bytes,
          macs: m.model.macsPerWindow,
          window: m.inputs.window,
          latencyMsBatch1,
          latencyUsPerWindowBatch256,
          evalSeconds,
          worse,
          ok,
        },
      ],
    }),
  );
  if (!ok) process.exitCode = 1;
}

await main();
