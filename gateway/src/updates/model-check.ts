/**
 * Consistency of a model release: the manifest (schema-valid, see infer/registry.readManifest) must
 * describe exactly this ONNX file — its sha256 and size, its input tensor's name and shape
 * [batch, window, values per row], and every declared output's name and rank. Used by
 * `vigil release publish` before proposing, and by the update agent before loading a candidate.
 */
import { inspectModel, type ModelInterface } from "../infer/inspect.ts";
import { readManifest, sha256File } from "../infer/registry.ts";
import type { ModelManifest } from "../infer/features/manifest.ts";
import { UpdateError } from "./errors.ts";

function dims(shape: readonly (number | string)[]): string {
  return `[${shape.map((d) => (typeof d === "number" ? String(d) : d || "?")).join(", ")}]`;
}

/** One dimension agrees when both are numbers and equal, or either is symbolic (named/dynamic). */
function dimOk(model: number | string, manifest: number | string): boolean {
  return typeof model !== "number" || typeof manifest !== "number" || model === manifest;
}

/**
 * True for a file name a release may name beside its manifest: one path component of letters,
 * digits, `.`, `_` and `-` (no folder, no absolute path, not `.` or `..`).
 */
export function isPlainFileName(name: string): boolean {
  return /^[A-Za-z0-9._-]+$/.test(name) && !/^\.+$/.test(name);
}

/**
 * Checks `onnx` against the manifest at `manifestPath`; returns the parsed manifest. onnxruntime
 * reads the model's interface in a worker thread (infer/inspect.ts), so a model slow to load does
 * not hold this thread.
 * @param signal Aborts the check (a stop): `INTERRUPTED`.
 * @throws UpdateError MANIFEST_INVALID (schema; `model.file` or a `model.variants[].file` that is
 *   not a plain file name in the manifest's folder), MANIFEST_MISMATCH (hash, size, names,
 *   shapes), MODEL_INVALID (onnxruntime cannot load the bytes), INTERRUPTED (aborted).
 */
export async function checkModelAgainstManifest(
  manifestPath: string,
  onnx: Uint8Array,
  signal?: AbortSignal,
): Promise<ModelManifest> {
  let m: ModelManifest;
  try {
    m = readManifest(manifestPath);
  } catch (e) {
    throw new UpdateError("MANIFEST_INVALID", (e as Error).message.split("\n")[0]!, { cause: e });
  }
  // A file name such as "../x.onnx" would make the registry read a file outside the release.
  for (const f of [m.model.file, ...(m.model.variants ?? []).map((v) => v.file)])
    if (!isPlainFileName(f))
      throw new UpdateError(
        "MANIFEST_INVALID",
        `the manifest names model file "${f}", which is not a plain file name beside it`,
      );
  const sha = sha256File(onnx);
  if (sha !== m.model.sha256)
    throw new UpdateError(
      "MANIFEST_MISMATCH",
      `the manifest pins model sha256 ${m.model.sha256}, the file has ${sha}`,
    );
  if (onnx.length !== m.model.bytes)
    throw new UpdateError(
      "MANIFEST_MISMATCH",
      `the manifest says ${m.model.bytes} bytes, the file has ${onnx.length}`,
    );
  let io: ModelInterface;
  try {
    io = await inspectModel(onnx, signal);
  } catch (e) {
    if (signal?.aborted)
      throw new UpdateError("INTERRUPTED", "the update agent stopped while the model was checked", {
        cause: e,
      });
    throw new UpdateError("MODEL_INVALID", "onnxruntime cannot load the model file", {
      cause: e,
      details: (e as { details?: string }).details ?? (e as Error).message,
    });
  }
  const names = (v: ModelInterface["inputs"]): string => v.map((x) => x.name).join(", ");
  const input = io.inputs.find((x) => x.name === m.inputs.tensor);
  if (!input)
    throw new UpdateError(
      "MANIFEST_MISMATCH",
      `the model has no input "${m.inputs.tensor}" (it has ${names(io.inputs)})`,
    );
  if (input.isTensor) {
    const want = m.inputs.shape;
    const got = input.shape;
    if (got.length !== want.length || !got.every((d, i) => dimOk(d, want[i]!)))
      throw new UpdateError(
        "MANIFEST_MISMATCH",
        `input "${input.name}" has shape ${dims(got)}, the manifest declares ${dims(want)}`,
      );
  }
  for (const o of m.outputs) {
    const meta = io.outputs.find((x) => x.name === o.name);
    if (!meta)
      throw new UpdateError(
        "MANIFEST_MISMATCH",
        `the model has no output "${o.name}" (it has ${names(io.outputs)})`,
      );
    if (meta.isTensor && meta.shape.length > 0) {
      if (meta.shape.length !== o.shape.length || !meta.shape.every((d, i) => dimOk(d, o.shape[i]!)))
        throw new UpdateError(
          "MANIFEST_MISMATCH",
          `output "${o.name}" has shape ${dims(meta.shape)}, the manifest declares ${dims(o.shape)}`,
        );
    }
  }
  return m;
}

/**
 * A manifest for one of `manifest`'s precision variants as a release of its own: `model.file`,
 * `sha256`, `bytes` and `precision` become the variant's, and the variants list is dropped (a
 * release ships one file). E.g. the int8 FD001 model of models/cmapss/fd001.manifest.json.
 */
export function variantManifest(manifest: ModelManifest, precision: string): ModelManifest {
  const v = manifest.model.variants?.find((x) => x.precision === precision);
  if (!v) throw new UpdateError("MANIFEST_INVALID", `the manifest has no ${precision} variant`);
  const { variants: _variants, prefer: _prefer, ...model } = manifest.model;
  return {
    ...manifest,
    model: { ...model, file: v.file, sha256: v.sha256, bytes: v.bytes, precision: v.precision },
  };
}
