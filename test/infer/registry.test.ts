import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  ModelHashMismatchError,
  ModelLoadError,
  ModelManifestError,
  ModelProfileConflictError,
} from "../../gateway/src/infer/errors.ts";
import {
  MAX_WINDOW_VALUES,
  ModelRegistry,
  findManifests,
  loadModel,
  type RegistryOptions,
} from "../../gateway/src/infer/registry.ts";
import { resolveConfig } from "../../gateway/src/config/config.ts";
import { REPO_ROOT } from "../../models/eval/cmapss.ts";
import { VigilError } from "../../gateway/src/core/errors.ts";
import type { ModelManifest } from "../../gateway/src/infer/features/manifest.ts";
import { CMAPSS_DIR, FD001_MANIFEST, fd001Manifest, tempModels } from "./helpers.ts";

describe("model registry", () => {
  it("behavior: loads every manifest below the folder and maps HELLO profiles to models", async () => {
    const dir = tempModels([
      (m) => {
        m.name = "a";
        m.devices.profiles = ["pa"];
      },
      (m) => {
        m.name = "b";
        m.devices.profiles = ["pb", "pc"];
      },
    ]);
    expect(findManifests(dir).map((p) => p.slice(dir.length))).toEqual([
      "/m0/model.manifest.json",
      "/m1/model.manifest.json",
    ]);
    const reg = await ModelRegistry.load(dir, { threads: 1 });
    try {
      expect(reg.forProfile("pa")?.manifest.name).toBe("a");
      expect(reg.forProfile("pc")?.manifest.name).toBe("b");
      expect(reg.forProfile("cmapss-v2")).toBeUndefined();
      expect(reg.forProfile(undefined)).toBeUndefined();
      expect(reg.describe(dir).map((d) => d.manifest)).toEqual([
        "m0/model.manifest.json",
        "m1/model.manifest.json",
      ]);
    } finally {
      await reg.release();
    }
  });

  it("error: an ONNX file whose sha256 differs from the manifest is refused before a session exists", async () => {
    const dir = tempModels();
    const onnx = join(dir, "m0", "fd001.onnx");
    const b = readFileSync(onnx);
    b[b.length - 10] = b[b.length - 10]! ^ 0xff;
    writeFileSync(onnx, b);
    const err = await ModelRegistry.load(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelHashMismatchError);
    expect(err).toBeInstanceOf(VigilError);
    expect((err as ModelHashMismatchError).code).toBe("MODEL_HASH_MISMATCH");
    expect((err as ModelHashMismatchError).shortMessage).toMatch(
      new RegExp(`sha256 [0-9a-f]{64} \\(${b.length} B\\) does not match the manifest's`),
    );
  });

  it("error: a manifest pinning another hash is refused", async () => {
    const dir = tempModels([(m) => (m.model.sha256 = "0".repeat(64))]);
    await expect(ModelRegistry.load(dir)).rejects.toBeInstanceOf(ModelHashMismatchError);
  });

  it("error: a manifest that does not match the schema names the failing field", async () => {
    const dir = tempModels([(m) => ((m as unknown as Record<string, unknown>).task = "magic")]);
    const err = (await ModelRegistry.load(dir).catch((e: unknown) => e)) as ModelManifestError;
    expect(err).toBeInstanceOf(ModelManifestError);
    expect(err.code).toBe("MODEL_MANIFEST_INVALID");
    expect(err.details).toContain("/task");
  });

  it("error: inconsistent shape and inverted hysteresis are refused", async () => {
    await expect(ModelRegistry.load(tempModels([(m) => (m.inputs.window = 30)]))).rejects.toThrow(
      /disagrees with window 30/,
    );
    await expect(ModelRegistry.load(tempModels([(m) => (m.alerts[0]!.clear = 40)]))).rejects.toThrow(
      /hysteresis/,
    );
    await expect(ModelRegistry.load(tempModels([(m) => (m.alerts[0]!.output = "score")]))).rejects.toThrow(
      /unknown output "score"/,
    );
  });

  it("input: an absurd input window is refused by a sentence, not by a failed allocation of maxBatch windows", async () => {
    // 3000 rows × 30 values: within the schema's 4096 rows, above MAX_WINDOW_VALUES.
    const wide = tempModels([(m) => ((m.inputs.window = 3000), (m.inputs.shape[1] = 3000))]);
    await expect(ModelRegistry.load(wide)).rejects.toThrow(
      new RegExp(`input window of 3000 rows × 30 values is 90000 values; at most ${MAX_WINDOW_VALUES}`),
    );
    const err = (await ModelRegistry.load(
      tempModels([(m) => ((m.inputs.window = 2_000_000), (m.inputs.shape[1] = 2_000_000))]),
    ).catch((e: unknown) => e)) as ModelManifestError;
    expect(err).toBeInstanceOf(ModelManifestError);
    expect(err.details).toMatch(/\/inputs\/window must be <= 4096/);
  });

  it("error: a broken inputs.baseline block is refused with a typed error naming it", async () => {
    const load = (edit: (m: ModelManifest) => void): Promise<unknown> =>
      ModelRegistry.load(tempModels([edit])).catch((e: unknown) => e);
    const unknownFeature = (await load((m) => (m.inputs.baseline!.features[0] = "s1"))) as ModelManifestError;
    expect(unknownFeature).toBeInstanceOf(ModelManifestError);
    // s1 is an input channel but not a feature: the message names the features.
    expect(unknownFeature.shortMessage).toMatch(/baseline feature "s1" is not one of the input features/);
    // Without the block the tensor's 29 values per row no longer add up.
    const dropped = (await load((m) => delete m.inputs.baseline)) as ModelManifestError;
    expect(dropped).toBeInstanceOf(ModelManifestError);
    expect(dropped.shortMessage).toMatch(/disagrees with window 60 × 15 values per row/);
    const zeroRows = (await load((m) => (m.inputs.baseline!.rows = 0))) as ModelManifestError;
    expect(zeroRows.code).toBe("MODEL_MANIFEST_INVALID");
    expect(zeroRows.details).toContain("/inputs/baseline/rows");
  });

  it("error: two manifests claiming one profile are refused", async () => {
    const dir = tempModels([
      (m) => (m.devices.profiles = ["x", "shared"]),
      (m) => (m.devices.profiles = ["shared"]),
    ]);
    const err = await ModelRegistry.load(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelProfileConflictError);
    expect((err as VigilError).shortMessage).toMatch(/"shared" is claimed by both/);
  });

  it("error: a manifest whose tensor name is not the model's input, or a missing folder", async () => {
    await expect(ModelRegistry.load(tempModels([(m) => (m.inputs.tensor = "x")]))).rejects.toThrow(
      ModelLoadError,
    );
    await expect(ModelRegistry.load("/nonexistent/models")).rejects.toThrow(/models folder not found/);
  });
});

describe("model file choice (config models.precision, manifest model.variants / model.prefer)", () => {
  const fd001 = fd001Manifest();
  const int8 = fd001.model.variants!.find((v) => v.precision === "int8")!;

  /** FD001's float32 and int8 files under a manifest with `prefer`; `corrupt` flips a byte of the int8 copy. */
  function folder(prefer: Record<string, "float32" | "int8">, corrupt = false): string {
    const dir = mkdtempSync(join(tmpdir(), "vigil-models-"));
    const m = fd001Manifest();
    m.model.prefer = prefer;
    copyFileSync(join(CMAPSS_DIR, m.model.file), join(dir, m.model.file));
    const b = readFileSync(join(CMAPSS_DIR, int8.file));
    if (corrupt) b[b.length - 5] = b[b.length - 5]! ^ 0xff;
    writeFileSync(join(dir, int8.file), b);
    writeFileSync(join(dir, "fd001.manifest.json"), JSON.stringify(m));
    return join(dir, "fd001.manifest.json");
  }

  it("behavior: int8 asked for loads the variant, verified against its own sha256, which the leaves commit to", async () => {
    const m = await loadModel(FD001_MANIFEST, { precision: "int8" });
    try {
      expect(m.onnxPath.endsWith(int8.file)).toBe(true);
      expect(m.precision).toBe("int8");
      expect(m.sha256).toBe(int8.sha256);
      expect(Buffer.from(m.modelHash).toString("hex")).toBe(int8.sha256);
      // The data-quality stage is compiled from the manifest at load time.
      expect(m.quality.declared).toBe(true);
      expect(m.quality.names).toContain("s9");
    } finally {
      await m.session!.release();
    }
  });

  it("behavior: auto follows model.prefer for the CPU, then its default; float32 forces the main file", async () => {
    const path = folder({ arm64: "int8", default: "float32" });
    const cases: Array<[RegistryOptions, string]> = [
      [{ arch: "arm64" }, "int8"],
      [{ arch: "x64" }, "float32"],
      [{ arch: "arm64", precision: "float32" }, "float32"],
      [{ arch: "x64", precision: "int8" }, "int8"],
    ];
    for (const [opts, want] of cases) {
      const m = await loadModel(path, opts);
      await m.session!.release();
      expect([opts, m.precision, m.sha256]).toEqual([
        opts,
        want,
        want === "int8" ? int8.sha256 : fd001.model.sha256,
      ]);
    }
    // A model without an int8 variant loads its main file when int8 is asked for.
    const rot = await loadModel(join(REPO_ROOT, "models", "rotating", "rotating-v1.manifest.json"), {
      precision: "int8",
    });
    await rot.session!.release();
    expect(rot.precision).toBe("float32");
  });

  it("error: a variant whose bytes differ from its manifest entry is refused, naming the file", async () => {
    const err = await loadModel(folder({ default: "int8" }, true)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelHashMismatchError);
    expect((err as ModelHashMismatchError).shortMessage).toContain(int8.file);
  });

  it("args: config models.precision is auto by default and takes float32 or int8 only", () => {
    expect(resolveConfig({}).models.precision).toBe("auto");
    expect(resolveConfig({ models: { precision: "int8" } }).models.precision).toBe("int8");
    expect(() => resolveConfig({ models: { precision: "fp16" } })).toThrow(/models\.precision/);
  });
});
