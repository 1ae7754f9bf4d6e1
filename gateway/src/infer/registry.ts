/**
 * Model registry: loads every `*.manifest.json` under a models folder, validates it against
 * models/manifest.schema.json (ajv), checks the ONNX file's size and sha256 against the manifest
 * **before** onnxruntime sees the bytes (the session is created from the very buffer that was
 * hashed, so the file cannot change between check and load), and maps device profiles (from
 * HELLO) to models. A profile claimed by two manifests is refused: which model serves a device
 * must never depend on directory order.
 */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { Ajv, type ValidateFunction } from "ajv";
import * as ort from "./ort.ts";
import { createNormalizer, type Normalizer } from "./features/normalize.ts";
import {
  selectModelFile,
  tensorWidth,
  type ModelManifest,
  type ModelPrecision,
} from "./features/manifest.ts";
import { createQuality, type QualitySpec } from "./features/quality.ts";
import { fromRoot } from "../core/paths.ts";
import {
  ModelHashMismatchError,
  ModelLoadError,
  ModelManifestError,
  ModelProfileConflictError,
} from "./errors.ts";

export interface SessionTuning {
  /** onnxruntime intra-op threads. Default 1 (a Pi-class box also runs ingest, store and MQTT). */
  threads?: number;
  /**
   * onnxruntime's CPU memory arena (`enableCpuMemArena`). Default true: without it, tensors are
   * malloc'd per run and glibc keeps the freed buffers, which raised steady RSS by 13–21 MB in
   * bench/infer.ts (it measures both).
   */
  memArena?: boolean;
  /** onnxruntime memory-pattern planning (`enableMemPattern`), default true (see `memArena`). */
  memPattern?: boolean;
  /**
   * Default false. True: verify the file and manifest only and create no main-thread session;
   * the session is created where the model runs (a worker thread, `models.runner: "worker"`),
   * which also checks the input and output names. Without it every model would be in memory
   * twice: 6 sessions held ≈ 37 MB of RSS on the main thread that worker mode never runs.
   */
  deferSession?: boolean;
}

/** The onnxruntime session options the gateway uses (also for the worker-thread session). */
export function sessionOptions(t: SessionTuning = {}): ort.InferenceSession.SessionOptions {
  return {
    intraOpNumThreads: t.threads ?? 1,
    interOpNumThreads: 1,
    executionMode: "sequential",
    graphOptimizationLevel: "all",
    enableCpuMemArena: t.memArena ?? true,
    enableMemPattern: t.memPattern ?? true,
  };
}

/** One loaded, verified model. */
export interface LoadedModel {
  manifest: ModelManifest;
  manifestPath: string;
  /** The ONNX file loaded: the manifest's main file or one of its `model.variants` (selectModelFile). */
  onnxPath: string;
  /** Precision of the loaded file ("float32" or "int8"). */
  precision: ModelPrecision;
  /** sha256 of the loaded ONNX file, lowercase hex (= the manifest's sha256 for it, verified). */
  sha256: string;
  /** The same hash as 32 bytes: the `modelHash` committed in inference and alert leaves. */
  modelHash: Uint8Array;
  normalizer: Normalizer;
  /** The manifest's data-quality rules (`inputs.quality`) compiled for this normaliser (quality.ts). */
  quality: QualitySpec;
  /**
   * The main-thread onnxruntime session; undefined when loaded with `deferSession` (the session
   * is then created in the worker thread that runs the model, worker.ts).
   */
  session: ort.InferenceSession | undefined;
  /** Floats per window: window × features. */
  windowValues: number;
  /** Output names in manifest order (read from the session's results). */
  outputNames: readonly string[];
  /** The verified ONNX bytes the session was created from (a worker-thread session uses the same). */
  bytes: Uint8Array;
  /** The session options used (a worker-thread session uses the same). */
  tuning: SessionTuning;
}

export interface RegistryOptions extends SessionTuning {
  /** Default: models/manifest.schema.json in the package. */
  schemaPath?: string;
  /**
   * Which file of a manifest to load (config `models.precision`): "auto" (default) follows the
   * manifest's `model.prefer` for `arch`; "float32" / "int8" ask for that precision, and a
   * manifest without it loads its main file.
   */
  precision?: "auto" | ModelPrecision;
  /** CPU architecture for `model.prefer`. Default `process.arch` (x64, arm64, …). */
  arch?: string;
}

let cachedValidator: { path: string; fn: ValidateFunction } | undefined;

function validator(path: string): ValidateFunction {
  if (cachedValidator?.path === path) return cachedValidator.fn;
  const schema = JSON.parse(readFileSync(path, "utf8")) as object;
  // Not strict: strict mode lints the schema itself (owned by models/); validation is unaffected.
  const fn = new Ajv({ allErrors: true, strict: false }).compile(schema);
  cachedValidator = { path, fn };
  return fn;
}

/** Every `*.manifest.json` below `dir`, sorted (deterministic load order and error messages). */
export function findManifests(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, depth: number): void => {
    if (depth > 4) return;
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory() && e.name !== "node_modules" && !e.name.startsWith(".")) walk(p, depth + 1);
      else if (e.isFile() && e.name.endsWith(".manifest.json")) out.push(p);
    }
  };
  walk(dir, 0);
  return out.sort();
}

export function sha256File(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * The manifest's other ONNX files (main file and `model.variants`, all but the one loaded), each
 * checked like a loaded one (size and sha256), so that a bad file is found before an operator
 * switches `models.precision` to it (`vigil doctor`). Returns one line per problem.
 */
export function otherFileProblems(m: LoadedModel): string[] {
  const mm = m.manifest.model;
  const files = [
    { precision: mm.precision ?? "float32", file: mm.file, sha256: mm.sha256, bytes: mm.bytes },
    ...(mm.variants ?? []),
  ];
  const problems: string[] = [];
  for (const f of files) {
    const path = join(dirname(m.manifestPath), f.file);
    if (path === m.onnxPath) continue;
    let bytes: Buffer;
    try {
      bytes = readFileSync(path);
    } catch (e) {
      problems.push(
        `${path} (${f.precision}) cannot be read (${(e as NodeJS.ErrnoException).code ?? "error"})`,
      );
      continue;
    }
    const sha256 = sha256File(bytes);
    if (sha256 !== f.sha256 || bytes.length !== f.bytes)
      problems.push(
        `${path} (${f.precision}) is not the manifest's file: expected ${f.sha256} (${f.bytes} B), found ${sha256} (${bytes.length} B)`,
      );
  }
  return problems;
}

/**
 * Most values one input window may hold (window rows × values per row): 65,536, 36× the largest
 * shipped model's (60 × 30). A manifest beyond it is refused with a sentence, not by a failed
 * allocation of maxBatch × window × width floats.
 */
export const MAX_WINDOW_VALUES = 65_536;

/** Parses and validates one manifest; throws {@link ModelManifestError}. */
export function readManifest(
  path: string,
  schemaPath = fromRoot("models", "manifest.schema.json"),
): ModelManifest {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new ModelManifestError(path, "not readable JSON", { cause: e });
  }
  const validate = validator(schemaPath);
  if (!validate(json)) {
    const details = (validate.errors ?? [])
      .map((e) => `${e.instancePath || "/"} ${e.message ?? ""}`)
      .join("; ");
    throw new ModelManifestError(path, "does not match models/manifest.schema.json", { details });
  }
  const m = json as ModelManifest;
  const { inputs } = m;
  const width = tensorWidth(m);
  // Each lane holds maxBatch windows of its input (worker.ts): at most 128 × 65,536 floats, 32 MiB.
  if (inputs.window * width > MAX_WINDOW_VALUES)
    throw new ModelManifestError(
      path,
      `an input window of ${inputs.window} rows × ${width} values is ${inputs.window * width} values; at most ${MAX_WINDOW_VALUES} are allowed`,
    );
  if (inputs.shape[1] !== inputs.window || inputs.shape[2] !== width)
    throw new ModelManifestError(
      path,
      `inputs.shape ${JSON.stringify(inputs.shape)} disagrees with window ${inputs.window} × ${width} values per row (features + baseline)`,
    );
  const outputs = new Set(m.outputs.map((o) => o.name));
  for (const a of m.alerts) {
    if (!outputs.has(a.output))
      throw new ModelManifestError(path, `alert ${a.id} refers to unknown output "${a.output}"`);
    const ok = a.op === "<=" ? a.clear > a.threshold : a.clear < a.threshold;
    if (!ok)
      throw new ModelManifestError(
        path,
        `alert ${a.id}: clear ${a.clear} must lie past threshold ${a.threshold} on the other side of "${a.op}" (hysteresis)`,
      );
  }
  return m;
}

/**
 * Loads one model: manifest validation, choice of the ONNX file (selectModelFile: config
 * precision, else the manifest's preference for this CPU), size + sha256 check of its bytes
 * against the manifest's entry for that file, normaliser and data-quality rules, then the
 * onnxruntime session ({@link sessionOptions}: graph optimisation "all", sequential execution,
 * `threads` intra-op, arena and memory pattern on unless turned off).
 */
export async function loadModel(manifestPath: string, opts: RegistryOptions = {}): Promise<LoadedModel> {
  const manifest = readManifest(manifestPath, opts.schemaPath);
  const precision = opts.precision ?? "auto";
  const choice = selectModelFile(
    manifest,
    opts.arch ?? process.arch,
    precision === "auto" ? undefined : precision,
  );
  const onnxPath = join(dirname(manifestPath), choice.file);
  let bytes: Buffer;
  try {
    bytes = readFileSync(onnxPath);
  } catch (e) {
    throw new ModelLoadError(onnxPath, "cannot read the ONNX file", { cause: e });
  }
  const sha256 = sha256File(bytes);
  if (sha256 !== choice.sha256 || bytes.length !== choice.bytes)
    throw new ModelHashMismatchError(
      onnxPath,
      `${choice.sha256} (${choice.bytes} B)`,
      `${sha256} (${bytes.length} B)`,
    );
  let normalizer: Normalizer;
  let quality: QualitySpec;
  try {
    normalizer = createNormalizer(manifest);
    quality = createQuality(manifest, normalizer);
  } catch (e) {
    throw new ModelManifestError(manifestPath, (e as Error).message, { cause: e });
  }
  const outputNames = manifest.outputs.map((o) => o.name);
  const session = opts.deferSession ? undefined : await createSession(onnxPath, bytes, manifest, opts);
  return {
    manifest,
    manifestPath,
    onnxPath,
    precision: choice.precision,
    sha256,
    modelHash: Uint8Array.from(Buffer.from(sha256, "hex")),
    normalizer,
    quality,
    session,
    windowValues: manifest.inputs.window * tensorWidth(manifest),
    outputNames,
    bytes,
    tuning: { ...opts },
  };
}

/** Creates the session and checks that it has the manifest's input tensor and outputs. */
async function createSession(
  onnxPath: string,
  bytes: Buffer,
  manifest: ModelManifest,
  opts: SessionTuning,
): Promise<ort.InferenceSession> {
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(bytes, sessionOptions(opts));
  } catch (e) {
    throw new ModelLoadError(onnxPath, "onnxruntime could not create a session", { cause: e });
  }
  const missing = missingNames(manifest, session.inputNames, session.outputNames);
  if (missing) {
    await session.release().catch(() => undefined);
    throw new ModelLoadError(onnxPath, missing);
  }
  return session;
}

/**
 * Why a session does not fit its manifest (no input tensor of the manifest's name, or a missing
 * output), or undefined when it fits. The worker thread repeats this check in its own source
 * (worker.ts: it cannot import TypeScript), with the same messages.
 */
function missingNames(
  manifest: Pick<ModelManifest, "inputs" | "outputs">,
  inputNames: readonly string[],
  outputNames: readonly string[],
): string | undefined {
  if (!inputNames.includes(manifest.inputs.tensor))
    return `has no input "${manifest.inputs.tensor}" (has ${inputNames.join(", ")})`;
  for (const o of manifest.outputs)
    if (!outputNames.includes(o.name)) return `has no output "${o.name}" (has ${outputNames.join(", ")})`;
  return undefined;
}

/** Releases a model's main-thread session, if it has one (idempotent per model). */
export async function releaseModel(m: LoadedModel): Promise<void> {
  const s = m.session;
  if (!s) return;
  m.session = undefined;
  await s.release().catch(() => undefined);
}

export class ModelRegistry {
  readonly models: readonly LoadedModel[];
  readonly #byProfile = new Map<string, LoadedModel>();

  constructor(models: readonly LoadedModel[]) {
    this.models = models;
    for (const m of models)
      for (const p of m.manifest.devices.profiles) {
        const other = this.#byProfile.get(p);
        if (other) throw new ModelProfileConflictError(p, other.manifestPath, m.manifestPath);
        this.#byProfile.set(p, m);
      }
  }

  /**
   * Loads every manifest under `dir` (recursively: models/cmapss, models/rotating, …). All or
   * nothing: the first invalid manifest, hash mismatch or profile conflict throws and releases
   * the sessions already created.
   */
  static async load(dir: string, opts: RegistryOptions = {}): Promise<ModelRegistry> {
    let st;
    try {
      st = statSync(dir);
    } catch (e) {
      throw new ModelLoadError(dir, "models folder not found", { cause: e });
    }
    if (!st.isDirectory()) throw new ModelLoadError(dir, "is not a folder");
    const loaded: LoadedModel[] = [];
    try {
      for (const p of findManifests(dir)) loaded.push(await loadModel(p, opts));
      return new ModelRegistry(loaded);
    } catch (e) {
      await Promise.all(loaded.map(releaseModel));
      throw e;
    }
  }

  /** The model serving devices that announced `profile` in HELLO; undefined when none does. */
  forProfile(profile: string | undefined): LoadedModel | undefined {
    return profile === undefined ? undefined : this.#byProfile.get(profile);
  }

  describe(dir?: string): Array<{
    name: string;
    version: string;
    precision: ModelPrecision;
    sha256: string;
    manifest: string;
    profiles: string[];
  }> {
    return this.models.map((m) => ({
      name: m.manifest.name,
      version: m.manifest.version,
      precision: m.precision,
      sha256: m.sha256,
      manifest: dir ? relative(dir, m.manifestPath) : m.manifestPath,
      profiles: [...m.manifest.devices.profiles],
    }));
  }

  async release(): Promise<void> {
    await Promise.all(this.models.map(releaseModel));
  }
}
