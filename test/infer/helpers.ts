import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO_ROOT } from "../../models/eval/cmapss.ts";
import { CMAPSS_WIDTH, type CmapssUnit } from "../../gateway/src/infer/features/cmapss.ts";
import { type ModelManifest } from "../../gateway/src/infer/features/manifest.ts";
import type { FrameRecord } from "../../gateway/src/core/records.ts";
import { FrameType, type DataFrame } from "../../gateway/src/protocol/frame.ts";

export const CMAPSS_DIR = join(REPO_ROOT, "models", "cmapss");
export const FD001_MANIFEST = join(CMAPSS_DIR, "fd001.manifest.json");
export const T0_US = 1_764_000_000_000_000;

export function fd001Manifest(): ModelManifest {
  return JSON.parse(readFileSync(FD001_MANIFEST, "utf8")) as ModelManifest;
}

/** A models folder in a temp dir holding FD001's ONNX under a (possibly edited) manifest. */
export function tempModels(edits: Array<(m: ModelManifest) => void> = [(): void => undefined]): string {
  const dir = mkdtempSync(join(tmpdir(), "vigil-models-"));
  edits.forEach((edit, i) => {
    const m = fd001Manifest();
    edit(m);
    const sub = join(dir, `m${i}`);
    mkdirp(sub);
    copyFileSync(join(CMAPSS_DIR, "fd001.onnx"), join(sub, m.model.file));
    writeFileSync(join(sub, `model.manifest.json`), JSON.stringify(m, null, 2));
  });
  return dir;
}

function mkdirp(p: string): void {
  mkdirSync(p, { recursive: true });
}

/** A stored DATA frame as ingest hands it to observers (raw bytes are not needed by the loop). */
export function frame(
  deviceId: number,
  seq: number,
  values: ArrayLike<number>,
  tsUs = T0_US + seq * 1000,
): [FrameRecord, DataFrame] {
  const v = Float32Array.from(values);
  return [
    { deviceId, seq, receivedUs: tsUs, timestampUs: tsUs, raw: Buffer.alloc(0) },
    { type: FrameType.Data, deviceId, seq, timestampUs: tsUs, flags: 0, values: v },
  ];
}

/** Row `r` of a C-MAPSS unit: the CMAPSS_WIDTH channel values of one device frame. */
export function row(u: CmapssUnit, r: number): Float64Array {
  return u.data.subarray(r * CMAPSS_WIDTH, (r + 1) * CMAPSS_WIDTH);
}
