// `npm run models:eval [-- --dir models/cmapss] [--latency-runs N]` (--dir: absolute or relative to the repo root)
// Recomputes every committed C-MAPSS model's test metrics with onnxruntime-node from its manifest and
// the data in models/data/cmapss, checks the ONNX sha256, measures per-window latency on one thread
// (batch of 1, and amortised in batches of 256), prints a table and, as the last line, one JSON object.
// Exit code 1 if a model's hash differs or its recomputed metrics are worse than its manifest claims.
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import * as ort from "../../gateway/src/infer/ort.ts";
import { latencyMs } from "./latency.ts";
import { REPO_ROOT, createSession, evaluateManifest, sha256Hex } from "./cmapss.ts";
import { loadManifest, modelPath } from "../../gateway/src/infer/features/manifest.ts";

/** Relative tolerance for "not worse than claimed" (float noise between PyTorch and onnxruntime). */
export const METRIC_TOLERANCE = 1e-3;

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
  params: number;
  bytes: number;
  macs: number;
  window: number;
  latencyMsBatch1: number;
  latencyUsPerWindowBatch256: number;
  sha256Ok: boolean;
  ok: boolean;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const opt = (name: string, dflt: string): string => {
    const i = args.indexOf(name);
    return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : dflt;
  };
  const dir = resolve(REPO_ROOT, opt("--dir", "models/cmapss"));
  const runs = Number(opt("--latency-runs", "200"));
  const files = readdirSync(dir)
    .filter((f) => f.endsWith(".manifest.json"))
    .sort();
  if (files.length === 0) throw new Error(`no *.manifest.json in ${dir}`);

  const rows: Row[] = [];
  for (const f of files) {
    const manifestPath = join(dir, f);
    const m = loadManifest(manifestPath);
    const onnx = modelPath(manifestPath, m);
    const sha256Ok = sha256Hex(readFileSync(onnx)) === m.model.sha256;
    const session = await createSession(onnx, 1);
    const ev = await evaluateManifest(manifestPath, m, session);
    const notWorse = (got: number, claimed: number | undefined): boolean =>
      claimed === undefined || got <= claimed * (1 + METRIC_TOLERANCE);
    const ok =
      sha256Ok &&
      notWorse(ev.rmse, m.metrics.rmse) &&
      notWorse(ev.score, m.metrics.score) &&
      notWorse(ev.rmseCappedTruth, m.metrics.cappedTruth?.rmse) &&
      notWorse(ev.scoreCappedTruth, m.metrics.cappedTruth?.score);
    rows.push({
      name: m.name,
      subset: f.replace(".manifest.json", "").toUpperCase(),
      units: ev.units,
      rmse: ev.rmse,
      score: ev.score,
      rmseCappedTruth: ev.rmseCappedTruth,
      scoreCappedTruth: ev.scoreCappedTruth,
      claimedRmse: m.metrics.rmse,
      claimedScore: m.metrics.score,
      params: m.model.params,
      bytes: m.model.bytes,
      macs: m.model.macsPerWindow,
      window: m.inputs.window,
      latencyMsBatch1: await latencyMs(session, m, 1, runs),
      latencyUsPerWindowBatch256:
        ((await latencyMs(session, m, 256, Math.max(5, Math.floor(runs / 10)))) * 1000) / 256,
      sha256Ok,
      ok,
    });
    await session.release();
  }

  const header = [
    "subset",
    "units",
    "RMSE",
    "score",
    "claimed RMSE/score",
    "capped-truth RMSE/score",
    "params",
    "bytes",
    "MACs/window",
    "window",
    "ms (b=1)",
    "µs/window (b=256)",
    "ok",
  ];
  const table = rows.map((r) => [
    r.subset,
    String(r.units),
    r.rmse.toFixed(3),
    r.score.toFixed(1),
    `${r.claimedRmse} / ${r.claimedScore}`,
    `${r.rmseCappedTruth.toFixed(3)} / ${r.scoreCappedTruth.toFixed(1)}`,
    String(r.params),
    String(r.bytes),
    String(r.macs),
    String(r.window),
    r.latencyMsBatch1.toFixed(3),
    r.latencyUsPerWindowBatch256.toFixed(1),
    r.ok ? "yes" : r.sha256Ok ? "WORSE" : "SHA256",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((t) => (t[i] ?? "").length)));
  const fmt = (cells: string[]): string => cells.map((c, i) => c.padStart(widths[i] ?? 0)).join("  ");
  console.log(`onnxruntime-node ${ort.env.versions.common}, 1 intra-op thread, ${process.arch}`);
  console.log(fmt(header));
  for (const t of table) console.log(fmt(t));
  const ok = rows.every((r) => r.ok);
  console.log(JSON.stringify({ ok, models: rows }));
  if (!ok) process.exitCode = 1;
}

await main();
