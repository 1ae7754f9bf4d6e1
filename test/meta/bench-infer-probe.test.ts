/**
 * bench infer's RSS probe (bench/probes/infer-probe.ts) must run inference for every model it
 * measures: its frames have to pass the data-quality stage, or every window is withheld and the
 * "RSS with the model running" figure is an idle model's. The C-MAPSS manifests list raw channels
 * that are not their features (settings, unused sensors, the cycle counter), which the probe once
 * filled with feature statistics by channel index: all FD001 windows were withheld. Each case runs
 * the probe (tsx, real onnxruntime) on one committed model in its own folder.
 */
import { execFile } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

interface ProbeOut {
  models: string[];
  windowsRun: number;
  rssMb: { steady: number };
}

/** The manifest and its float model alone in a fresh folder (the probe loads every manifest there). */
function solo(manifest: string): string {
  const dir = mkdtempSync(join(tmpdir(), "vigil-probe-"));
  const m = JSON.parse(readFileSync(manifest, "utf8")) as { model: { file: string } };
  const from = join(manifest, "..");
  copyFileSync(manifest, join(dir, "model.manifest.json"));
  copyFileSync(join(from, m.model.file), join(dir, m.model.file));
  return dir;
}

function probe(dir: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(
      process.execPath,
      ["--import", "tsx", "bench/probes/infer-probe.ts", "--models", dir, "--devices", "4", "--steps", "70"],
      { timeout: 90_000 },
      (e, stdout, stderr) => res({ code: e ? ((e as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe("bench infer's RSS probe", () => {
  it.each([
    ["rotating", "models/rotating/rotating-v1.manifest.json"],
    ["C-MAPSS FD001", "models/cmapss/fd001.manifest.json"],
  ])(
    "behavior: the %s model runs windows on the probe's frames",
    async (_name, manifest) => {
      const r = await probe(solo(manifest));
      expect(r.stderr).not.toMatch(/no window ran/);
      expect(r.code, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as ProbeOut;
      expect(out.windowsRun).toBeGreaterThan(0);
      expect(out.rssMb.steady).toBeGreaterThan(0);
    },
    120_000,
  );
});
