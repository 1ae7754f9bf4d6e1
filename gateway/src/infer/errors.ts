import { VigilError } from "../core/errors.ts";

/** Base of every error raised by the inference stage. */
export type InferErrorCode =
  | "MODEL_MANIFEST_INVALID"
  | "MODEL_HASH_MISMATCH"
  | "MODEL_PROFILE_CONFLICT"
  | "MODEL_LOAD_FAILED"
  | "MODEL_LANE"
  | "MODEL_RUN_FAILED"
  | "MODEL_WORKER"
  | "HISTORY_DAMAGED"
  | "FEATURE_SPEC_INVALID"
  | "DATA_FILE";

export class InferError extends VigilError {
  override name = "InferError";
  declare readonly code: InferErrorCode;
  constructor(code: InferErrorCode, message: string, opts: { details?: string; cause?: unknown } = {}) {
    super(code, message, opts);
  }
}

/** A manifest does not validate against models/manifest.schema.json or is inconsistent. */
export class ModelManifestError extends InferError {
  override name = "ModelManifestError";
  readonly manifestPath: string;
  constructor(manifestPath: string, message: string, opts: { details?: string; cause?: unknown } = {}) {
    super("MODEL_MANIFEST_INVALID", `${manifestPath}: ${message}`, opts);
    this.manifestPath = manifestPath;
  }
}

/** The ONNX file's sha256 (or size) differs from what its manifest pins: never loaded. */
export class ModelHashMismatchError extends InferError {
  override name = "ModelHashMismatchError";
  readonly expected: string;
  readonly actual: string;
  constructor(
    readonly modelPath: string,
    expected: string,
    actual: string,
  ) {
    super("MODEL_HASH_MISMATCH", `${modelPath}: sha256 ${actual} does not match the manifest's ${expected}`);
    this.expected = expected;
    this.actual = actual;
  }
}

/** Two loaded manifests claim the same device profile. */
export class ModelProfileConflictError extends InferError {
  override name = "ModelProfileConflictError";
  constructor(
    readonly profile: string,
    a: string,
    b: string,
  ) {
    super("MODEL_PROFILE_CONFLICT", `device profile "${profile}" is claimed by both ${a} and ${b}`);
  }
}

/** onnxruntime refused the file, or its input/output names differ from the manifest. */
export class ModelLoadError extends InferError {
  override name = "ModelLoadError";
  constructor(modelPath: string, message: string, opts: { cause?: unknown } = {}) {
    super("MODEL_LOAD_FAILED", `${modelPath}: ${message}`, opts);
  }
}

/** A model's feature specification cannot be compiled (unknown channel, bad normalisation table). */
export class FeatureSpecError extends InferError {
  override name = "FeatureSpecError";
  constructor(message: string) {
    super("FEATURE_SPEC_INVALID", message);
  }
}

/** A data file (C-MAPSS text, RUL list) is missing or malformed; `file` names it. */
export class DataFileError extends InferError {
  override name = "DataFileError";
  constructor(
    readonly file: string,
    message: string,
    opts: { cause?: unknown } = {},
  ) {
    super("DATA_FILE", `${file}: ${message}`, opts);
  }
}

/** A lane operation (load, shadow, promote, unload) that the loop's current lanes do not allow. */
export class LaneError extends InferError {
  override name = "LaneError";
  constructor(model: string, message: string) {
    super("MODEL_LANE", `${model}: ${message}`);
  }
}
