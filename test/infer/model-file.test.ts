// Which ONNX file of a manifest to run on which CPU (manifest model.variants / model.prefer).
import { describe, expect, it } from "vitest";
import { selectModelFile, type ModelManifest } from "../../gateway/src/infer/features/manifest.ts";
import { fd001Manifest } from "./helpers.ts";

function withVariants(prefer?: Record<string, "float32" | "int8">): ModelManifest {
  const m = fd001Manifest();
  m.model.variants = [{ precision: "int8", file: "fd001.int8.onnx", sha256: "a".repeat(64), bytes: 10 }];
  if (prefer) m.model.prefer = prefer;
  else delete m.model.prefer;
  return m;
}

describe("selectModelFile", () => {
  it("follows model.prefer per architecture, then its default, then the main file", () => {
    const m = withVariants({ arm64: "int8", default: "float32" });
    expect(selectModelFile(m, "arm64")).toEqual({
      precision: "int8",
      file: "fd001.int8.onnx",
      sha256: "a".repeat(64),
      bytes: 10,
    });
    expect(selectModelFile(m, "x64").file).toBe(m.model.file);
    expect(selectModelFile(withVariants({ default: "int8" }), "x64").precision).toBe("int8");
    expect(selectModelFile(withVariants(), "arm64")).toMatchObject({
      precision: "float32",
      sha256: m.model.sha256,
    });
  });

  it("an operator's override wins; a precision the manifest lacks falls back to the main file", () => {
    const m = withVariants({ x64: "float32" });
    expect(selectModelFile(m, "x64", "int8").precision).toBe("int8");
    const plain = fd001Manifest();
    delete plain.model.variants;
    expect(selectModelFile(plain, "arm64", "int8")).toMatchObject({
      precision: "float32",
      file: plain.model.file,
    });
  });
});
